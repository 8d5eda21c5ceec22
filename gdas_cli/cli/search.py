"""`gdas search cnn|rnn`: run a GDAS search into a run directory."""

from __future__ import annotations

from ._app import make_app

app = make_app(
    "Search a cell with GDAS.\n\n"
    "Examples:\n\n"
    "  gdas search cnn --frc --dataset digits --epochs 2\n\n"
    "  gdas search rnn --dataset ptb --data-dir ~/data/ptb"
)
