"""The `gdas` command: one Typer app assembled from one module per command group."""

from __future__ import annotations

from ._app import make_app
from .genotypes import app as genotypes_app

app = make_app(
    "GDAS neural architecture search: search cells, derive genotypes, train, evaluate and publish.\n\n"
    "Examples:\n\n"
    "  gdas genotypes list\n\n"
    "  gdas genotypes info gdas_frc --net imagenet"
)
app.add_typer(genotypes_app, name="genotypes")


def main() -> None:
    app()
