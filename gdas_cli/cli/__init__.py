"""The `gdas` command: one Typer app assembled from one module per command group."""

from __future__ import annotations

import os
import sys

import typer

from .. import __version__
from ._app import make_app
from .bench import bench
from .derive import derive
from .eval import eval_command
from .export import export_command
from .genotypes import app as genotypes_app
from .plot import app as plot_app
from .runs import app as runs_app
from .search import app as search_app
from .train import app as train_app

app = make_app(
    "GDAS neural architecture search: search cells, derive genotypes, train, evaluate and publish.\n\n"
    "Examples:\n\n"
    "  gdas search cnn --frc --dataset digits --epochs 2 --run-dir runs/demo\n\n"
    "  gdas derive runs/demo -o my_cell.json\n\n"
    "  gdas train cifar10 --genotype my_cell.json --data-dir ~/data\n\n"
    "  gdas eval runs/train-cifar10-<time>\n\n"
    "  gdas export runs/train-cifar10-<time> --push-to-hub org/my-gdas --tag v1\n\n"
    "  gdas genotypes info gdas_frc --net imagenet\n\n"
    "  gdas search cnn --space nas-bench-201 --dataset digits\n\n"
    "  gdas runs list",
    completion=True,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gdas {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


app.add_typer(search_app, name="search")
app.command("derive")(derive)
app.add_typer(train_app, name="train")
app.command("eval")(eval_command)
app.command("export")(export_command)
app.add_typer(genotypes_app, name="genotypes")
app.add_typer(plot_app, name="plot")
app.add_typer(runs_app, name="runs")
app.command("bench")(bench)


def main() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        app(prog_name="gdas")
        return
    # A torchrun worker ends here once its process group is torn down: it leaves without running C++ static
    # destructors, where a gloo worker can abort at exit ("terminate called without an active exception")
    # after a run that finished and saved everything
    try:
        app(prog_name="gdas")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
