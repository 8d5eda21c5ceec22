"""Cell drawings in the style of the paper's Fig. 4, with matplotlib (no Graphviz binary needed)."""

from __future__ import annotations

from pathlib import Path

from .errors import GdasError
from .files import atomic_write_bytes
from .genotype import FRC, Cell, Genotype

FORMATS = (".png", ".svg", ".pdf")
_OP_COLOURS = {
    "skip_connect": "#4c72b0", "sep_conv_3x3": "#dd8452", "sep_conv_5x5": "#c44e52", "sep_conv_7x7": "#8c564b",
    "dil_conv_3x3": "#55a868", "dil_conv_5x5": "#2ca02c", "max_pool_3x3": "#8172b3", "avg_pool_3x3": "#937860",
    "conv_7x1_1x7": "#da8bc3", "conv_3x1_1x3": "#e377c2", "none": "#bbbbbb",
    "tanh": "#dd8452", "relu": "#c44e52", "sigmoid": "#55a868", "identity": "#4c72b0",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise GdasError(f"--output {path}: the file must end in {', '.join(FORMATS)}")
    if not path.parent.exists():
        raise GdasError(f"--output {path}: folder {path.parent} does not exist")


def save_figure(fig, path: Path) -> None:
    """Write atomically, so a failed save leaves nothing behind."""
    atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:].lower(), bbox_inches="tight", dpi=150))


def _layout(cell: Cell, n_inputs: int) -> dict[int, tuple[float, float]]:
    """Inputs on the left, intermediate nodes on a rising diagonal, so edges rarely overlap."""
    pos = {i: (0.0, float(n_inputs - 1 - i) * 2.0) for i in range(n_inputs)}
    for i in range(len(cell.nodes)):
        pos[n_inputs + i] = (1.5 + 1.5 * i, 1.8 * ((i % 2) * 2 - 1) + (n_inputs - 1))
    return pos


def _label_point(source: tuple[float, float], target: tuple[float, float], bend: float) -> tuple[float, float]:
    """A point 60% along the arc, pushed sideways like the arc, so labels of edges into one node separate."""
    dx, dy = target[0] - source[0], target[1] - source[1]
    t = 0.6
    return source[0] + t * dx + bend * dy * 0.5, source[1] + t * dy - bend * dx * 0.5


def _draw_cell(ax, cell: Cell | str, title: str, kind: str) -> None:
    ax.set_title(title)
    ax.axis("off")
    if cell == FRC:
        ax.text(0.5, 0.5, "fixed reduction cell (FRC)\nsee paper Fig. 3", ha="center", va="center",
                transform=ax.transAxes, bbox={"boxstyle": "round", "fc": "#eeeeee"})
        return
    assert isinstance(cell, Cell)
    n_inputs = 2 if kind == "cnn" else 1
    names = ["c_{k-2}", "c_{k-1}"] if kind == "cnn" else ["h_{t-1}"]
    pos = _layout(cell, n_inputs)
    out = (1.5 + 1.5 * len(cell.nodes), n_inputs - 1.0)
    for i, node in enumerate(cell.nodes):
        target = pos[n_inputs + i]
        for k, edge in enumerate(node):
            source = pos[edge.input]
            bend = 0.25 * (k - (len(node) - 1) / 2) + 0.1
            ax.annotate("", xy=target, xytext=source, arrowprops={
                "arrowstyle": "-|>", "color": _OP_COLOURS.get(edge.op, "black"), "lw": 1.6,
                "connectionstyle": f"arc3,rad={bend}", "shrinkA": 14, "shrinkB": 14})
            mid = _label_point(source, target, bend)
            ax.text(*mid, edge.op, fontsize=7, ha="center", va="center", color=_OP_COLOURS.get(edge.op, "black"),
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    for state in cell.concat:
        ax.annotate("", xy=out, xytext=pos[state], arrowprops={
            "arrowstyle": "-|>", "color": "#999999", "lw": 0.8, "shrinkA": 14, "shrinkB": 14})
    for i, (x, y) in pos.items():
        label = names[i] if i < n_inputs else str(i)
        colour = "#a1c9f4" if i < n_inputs else "#8de5a1"
        ax.text(x, y, label, ha="center", va="center", bbox={"boxstyle": "round", "fc": colour})
    ax.text(*out, "c_{k}" if kind == "cnn" else "h_t", ha="center", va="center",
            bbox={"boxstyle": "round", "fc": "#ffb482"})
    xs = [p[0] for p in pos.values()] + [out[0]]
    ys = [p[1] for p in pos.values()] + [out[1]]
    ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
    ax.set_ylim(min(ys) - 1.5, max(ys) + 1.5)


def plot_genotype(genotype: Genotype, path: Path) -> None:
    """Draw every cell of `genotype` side by side into `path` (.png, .svg or .pdf)."""
    path = Path(path)
    _check_output(path)
    plt = _pyplot()
    cells = genotype.cells()
    fig, axes = plt.subplots(1, len(cells), figsize=(6.5 * len(cells), 4.5), squeeze=False)
    for ax, (role, cell) in zip(axes[0], cells.items()):
        _draw_cell(ax, cell, f"{genotype.ref}: {role} cell", genotype.kind)
    try:
        save_figure(fig, path)
    finally:
        plt.close(fig)
