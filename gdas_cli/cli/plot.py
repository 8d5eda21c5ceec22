"""`gdas plot alphas RUN_DIR -o FILE`: charts of a search run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import make_app
from ._output import console, print_json

app = make_app("Charts of runs.\n\nExamples:\n\n  gdas plot alphas runs/search-digits -o alphas.png")


@app.command("alphas")
def alphas(
    run_dir: Annotated[Path, typer.Argument(help="A search run directory (holds alphas.jsonl).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write: .png, .svg or .pdf.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: what was written.")] = False,
) -> None:
    """Plot softmax(alpha) of every op on every edge across the epochs of a search.

    The y axis starts at 0 with the uniform probability dashed, so alphas that barely moved look flat; the \
title says how far they moved and whether that is distinguishable from noise.

    Examples:

      gdas plot alphas runs/search-digits -o alphas.png

      gdas plot alphas runs/rnn-search -o alphas.svg
    """
    from ..movement import summary_line
    from ..rundir import guard_output
    from ..search.history import load_alpha_history
    from ..search.plots import plot_alpha_history
    from ..search.source import derive_from_source

    guard_output(output, overwrite=overwrite, reads=[run_dir])
    records = load_alpha_history(run_dir)
    movement = derive_from_source(run_dir, epoch=records[-1].epoch).provenance.get("movement")
    note = f"Epoch {records[-1].epoch}: {summary_line(movement)}" if movement else ""
    plot_alpha_history(records, output, title=f"{run_dir.name}: op probabilities per edge", note=note)
    if as_json:
        print_json({"output": str(output), "epochs": len(records), "movement": movement})
        return
    console.print(f"wrote {output} ({len(records)} epochs)", highlight=False, markup=False)
