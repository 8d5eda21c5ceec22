"""Training curves of one or several runs, overlaid: `gdas plot curves` (matplotlib, torch-free).

One panel per metric recorded by some run (loss, top-1, perplexity), epochs on x. Each run has one
colour, each split one line style (train solid, valid dashed, test dotted), so a run's splits and the
runs' curves read apart at a glance; the legend names both. Every line's gid is `run|split|metric`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .plot import _check_output, _pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Points = list[tuple[int, float]]
Curves = dict[str, dict[str, Points]]  # metric -> split -> (epoch, value)

PANELS = {"loss": "loss", "top1": "top-1 (%)", "ppl": "perplexity"}
STYLES = {"train": "-", "valid": "--", "test": ":"}
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")


def draw_curves(runs: Sequence[tuple[str, Curves]]) -> Figure:
    """The figure of `runs`: (name, curves) in legend order."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    metrics = [m for m in PANELS if any(m in curves for _, curves in runs)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for index, (name, curves) in enumerate(runs):
            for split, points in curves.get(metric, {}).items():
                line = ax.plot(
                    [epoch for epoch, _ in points],
                    [value for _, value in points],
                    color=COLOURS[index % len(COLOURS)],
                    ls=STYLES[split],
                    lw=1.5,
                    marker="." if len(points) <= 30 else None,
                    markersize=5,
                    label=f"{name} {split}",
                )[0]
                line.set_gid(f"{name}|{split}|{metric}")
        ax.set_title(PANELS[metric], fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    run_handles = [
        Line2D([], [], color=COLOURS[i % len(COLOURS)], lw=3, label=name) for i, (name, _) in enumerate(runs)
    ]
    splits = [s for s in STYLES if any(s in by_split for _, curves in runs for by_split in curves.values())]
    split_handles = [Line2D([], [], color="black", ls=STYLES[s], lw=1.5, label=s) for s in splits]
    handles = run_handles + split_handles
    fig.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return fig


def plot_curves(runs: Sequence[tuple[str, Curves]], output: Path) -> None:
    """Draw `runs` (draw_curves) into a .png, .svg or .pdf file, written atomically."""
    output = Path(output)
    _check_output(output)
    fig = draw_curves(runs)
    try:
        save_figure(fig, output)
    finally:
        _pyplot().close(fig)
