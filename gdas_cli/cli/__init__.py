"""The `gdas` command: one Typer app assembled from one module per command group."""

from __future__ import annotations

from ._app import make_app
from .genotypes import app as genotypes_app
from .search import app as search_app
from .derive import derive
from .export import export_command
from .plot import app as plot_app
from .train import app as train_app
from .eval import eval_command

app = make_app(
    "GDAS neural architecture search: search cells, derive genotypes, train, evaluate and publish.\n\n"
    "Examples:\n\n"
    "  gdas genotypes list\n\n"
    "  gdas genotypes info gdas_frc --net imagenet"
)
app.add_typer(genotypes_app, name="genotypes")
app.add_typer(search_app, name="search")
app.command("derive")(derive)
app.command("export")(export_command)
app.add_typer(plot_app, name="plot")
app.add_typer(train_app, name="train")
app.command("eval")(eval_command)
from . import lm  # noqa: E402,F401  registers search rnn and train ptb|wt2|demo-text


def main() -> None:
    app()
