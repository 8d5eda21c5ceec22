"""`gdas plot alphas`: op probabilities of every edge across the epochs of a search run.

Every panel shares one y axis that starts at 0 and reaches at least twice the uniform probability 1/K,
with 1/K drawn as a dashed line: alphas that barely moved stay visibly flat on it instead of being
stretched over the whole panel, so noise does not look like a trend.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from ..plot import _OP_COLOURS, _check_output, _pyplot, save_figure
from ..spaces import space_of_role
from .history import AlphaRecord

EDGE_COLUMNS = 7


def _edge_label(edge: int, n_inputs: int) -> str:
    """`node 3 <- 1`: the edge's target node and source state, numbered as in genotype files."""
    offset, node = 0, 0
    while edge >= offset + n_inputs + node:
        offset += n_inputs + node
        node += 1
    return f"node {node + n_inputs} <- {edge - offset}"


def _space(cell_type: str) -> tuple[tuple[str, ...], int]:
    """The op names and the number of cell inputs for a cell type's alphas (its space's)."""
    space = space_of_role(cell_type)
    return space.ops, space.n_inputs


def plot_alpha_history(records: list[AlphaRecord], output: Path, title: str = "", note: str = "") -> None:
    """One small panel per edge and cell type: softmax(alpha) of each op against the epoch; `note` (how far
    the alphas moved, the noise verdict) goes under the title."""
    _check_output(output)
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in records]
    probs = [r.probabilities() for r in records]
    cell_types = list(records[-1].alphas)
    n_edges = records[-1].alphas[cell_types[0]].shape[0]
    rows_per_type = -(-n_edges // EDGE_COLUMNS)
    fig, axes = plt.subplots(
        rows_per_type * len(cell_types),
        EDGE_COLUMNS,
        sharex=True,
        sharey=True,
        figsize=(2.2 * EDGE_COLUMNS, 1.8 * rows_per_type * len(cell_types)),
        squeeze=False,
    )
    for t, cell_type in enumerate(cell_types):
        ops, n_inputs = _space(cell_type)
        for slot in range(rows_per_type * EDGE_COLUMNS):
            ax = axes[t * rows_per_type + slot // EDGE_COLUMNS][slot % EDGE_COLUMNS]
            if slot >= n_edges:
                ax.axis("off")
                continue
            for k, op in enumerate(ops):
                ax.plot(
                    epochs,
                    [p[cell_type][slot, k].item() for p in probs],
                    color=_OP_COLOURS.get(op, "black"),
                    lw=1.2,
                    marker=".",
                    markersize=4,
                    label=op,
                )
            ax.axhline(1.0 / len(ops), color="black", lw=0.8, ls="--", zorder=0)
            ax.set_title(f"{cell_type}: {_edge_label(slot, n_inputs)}", fontsize=7)
            ax.tick_params(labelsize=6)
    highest = max(float(p[t].max()) for p in probs for t in cell_types)
    uniform = max(1.0 / len(_space(t)[0]) for t in cell_types)
    axes[0][0].set_ylim(0.0, min(1.0, max(2 * uniform, 1.1 * highest)))
    handles, labels = axes[0][0].get_legend_handles_labels()
    # the title heads the legend, so the two never overlap whatever the figure height
    fig.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        fontsize=7,
        frameon=False,
        title="\n".join(textwrap.wrap(f"{title or 'op probabilities per edge'} (dashed: uniform). {note}", 140)),
        title_fontsize=9,
    )
    axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.supxlabel("epoch", fontsize=8)
    try:
        save_figure(fig, output)
    finally:
        plt.close(fig)
