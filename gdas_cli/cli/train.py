"""`gdas train DATASET --genotype REF`: train the final network of a genotype."""

from __future__ import annotations

from ._app import make_app

app = make_app(
    "Train the final network of a genotype with the paper's recipe.\n\n"
    "Examples:\n\n"
    "  gdas train digits --genotype gdas_frc --epochs 2\n\n"
    "  gdas train cifar10 --genotype gdas_frc --data-dir ~/data\n\n"
    "  gdas train ptb --genotype gdas_rnn --data-dir ~/data/ptb"
)
