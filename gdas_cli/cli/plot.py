"""`gdas plot alphas RUN_DIR -o FILE`: charts of a search run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import make_app
from ._output import console

app = make_app("Charts of runs.\n\nExamples:\n\n  gdas plot alphas runs/search-digits -o alphas.png")


@app.command("alphas")
def alphas(
    run_dir: Annotated[Path, typer.Argument(help="A search run directory (holds alphas.jsonl).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write: .png, .svg or .pdf.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
) -> None:
    """Plot softmax(alpha) of every op on every edge across the epochs of a search.

    Examples:

      gdas plot alphas runs/search-digits -o alphas.png

      gdas plot alphas runs/rnn-search -o alphas.svg
    """
    from ..rundir import guard_output
    from ..search.history import load_alpha_history
    from ..search.plots import plot_alpha_history

    guard_output(output, overwrite=overwrite, reads=[run_dir])
    records = load_alpha_history(run_dir)
    plot_alpha_history(records, output, title=f"{run_dir}: op probabilities per edge")
    console.print(f"wrote {output} ({len(records)} epochs)", highlight=False)
