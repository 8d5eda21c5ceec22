"""`gdas plot alphas RUN_DIR -o FILE`, `gdas plot curves RUN... -o FILE`: charts of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import make_app
from ._output import console, print_json

app = make_app(
    "Charts of runs.\n\nExamples:\n\n  gdas plot alphas runs/search-digits -o alphas.png\n\n"
    "  gdas plot curves runs/train-a runs/train-b -o curves.png"
)


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


@app.command("curves")
def curves(
    runs: Annotated[list[Path], typer.Argument(help="One or more run folders (their metrics.jsonl).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write: .png, .svg or .pdf.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
) -> None:
    """Plot loss and top-1 (perplexity for language models) against the epoch, for one run or several overlaid.

    Each run gets a colour and each split a line style: train solid, valid dashed, test dotted, wherever the \
run recorded it (a CNN search's valid curves are its A steps on the valid half). Reads the records only, not \
the weights: a running run is drawn up to its last finished epoch.

    Examples:

      gdas plot curves runs/train-digits -o curves.png

      gdas plot curves runs/search-a runs/search-b runs/search-c -o searches.svg
    """
    from ..curves import plot_curves
    from ..errors import GdasError
    from ..rundir import guard_output
    from ..runs import curves as run_curves
    from ..runs import read_run

    guard_output(output, overwrite=overwrite, reads=runs)
    summaries = [read_run(run) for run in runs]
    names = [s.name for s in summaries]
    if len(set(names)) < len(names):  # folders of the same name in different places: their paths
        names = [str(run) for run in runs]
    drawn = []
    for run, name, summary in zip(runs, names, summaries, strict=True):
        points = run_curves(summary)
        if summary.parts:
            raise GdasError(f"{run}: a parent run, no records of its own; plot its runs: {', '.join(summary.parts)}")
        if not points:
            raise GdasError(f"{run}: no finished epoch in its records yet; nothing to plot")
        drawn.append((name, points))
    plot_curves(drawn, output)
    console.print(f"wrote {output} ({len(drawn)} run(s))", highlight=False)
