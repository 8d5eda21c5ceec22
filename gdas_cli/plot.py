"""Cell drawings with matplotlib (no Graphviz binary needed).

A cell is drawn as an arc diagram: its states sit on one horizontal line in index order (the
inputs on the left, the output on the right), each op edge is an arc above the line labelled with
its op, and the states the output concatenates (CNN) or averages (RNN) join a bus below the line.
Arcs over nested spans never cross and no arc passes through a node. Every label's box is
measured with the renderer and slid along its arc to a spot clear of the other labels and the
nodes (and, where it can, of the other arcs); when some label finds no such spot, the states are
spread further apart and the cell laid out again. So drawings stay readable for any genotype.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import GdasError
from .files import atomic_write_bytes
from .genotype import Cell, Genotype
from .spaces import SearchSpace

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

FORMATS = (".png", ".svg", ".pdf")
_OP_COLOURS = {
    "skip_connect": "#4c72b0",
    "sep_conv_3x3": "#dd8452",
    "sep_conv_5x5": "#c44e52",
    "sep_conv_7x7": "#8c564b",
    "dil_conv_3x3": "#55a868",
    "dil_conv_5x5": "#2ca02c",
    "max_pool_3x3": "#8172b3",
    "avg_pool_3x3": "#937860",
    "conv_7x1_1x7": "#da8bc3",
    "conv_3x1_1x3": "#e377c2",
    "nor_conv_1x1": "#55a868",
    "nor_conv_3x3": "#dd8452",
    "none": "#bbbbbb",
    "tanh": "#dd8452",
    "relu": "#c44e52",
    "sigmoid": "#55a868",
    "identity": "#4c72b0",
}
_INPUT_COLOUR, _NODE_COLOUR, _OUTPUT_COLOUR, _NOTE_COLOUR = "#a1c9f4", "#8de5a1", "#ffb482", "#eeeeee"
_BUS_COLOUR = "#888888"
_BUS_WORDS = {"concat": "concat", "mean": "mean", "last": "output"}  # how a space's cell output is made

# All lengths below are in inches: each panel's data units are inches, so text measured by the
# renderer and the drawing share one scale whatever the figure's size.
EDGE_FONT, NODE_FONT, TITLE_FONT, BUS_FONT = 7.5, 10.0, 11.0, 7.5
_LABEL_PAD = 0.15  # the label bbox's pad, as a fraction of the font size (matplotlib's unit)
_ARC_RAD = 0.7  # arc3 curvature: an arc's apex rises _ARC_RAD / 2 times its length
_SAME_PAIR_RAD = 0.5  # a second edge between the same two states bulges this much higher
_END_STEP = 0.13  # the spacing of arc ends along a node's top edge
_GAP = 0.3  # the least free space between neighbouring states' boxes and label boxes
_CLEARANCE = 0.04  # labels keep this far from each other and from nodes
_MARGIN = 0.12  # blank border around a panel
_BUS_DROP = 0.35  # from the bottom of the node boxes down to the concat bus
_LABEL_FRACTIONS = (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82)
_SPACING_TRIES, _SPACING_GROWTH = 6, 1.25
_SAMPLE_STEP = 0.02  # arcs are sampled this densely to find the labels they run through

NodeKey = int | str
Measure = Callable[[str, float], tuple[float, float]]


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


@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def around(cls, centre: tuple[float, float], size: tuple[float, float]) -> _Box:
        (x, y), (w, h) = centre, size
        return cls(x - w / 2, y - h / 2, x + w / 2, y + h / 2)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def grown(self, by: float) -> _Box:
        return _Box(self.x0 - by, self.y0 - by, self.x1 + by, self.y1 + by)

    def overlaps(self, other: _Box) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.y0 < other.y1 and other.y0 < self.y1

    def union(self, other: _Box) -> _Box:
        return _Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


@dataclass(frozen=True)
class _Node:
    text: str
    centre: tuple[float, float]
    size: tuple[float, float]
    colour: str

    @property
    def box(self) -> _Box:
        return _Box.around(self.centre, self.size)


@dataclass(frozen=True)
class _Arc:
    """An op edge drawn from a point on the source's top edge to a point on the target's."""

    source: int
    target: int
    op: str
    rad: float
    start: tuple[float, float] = (0.0, 0.0)
    end: tuple[float, float] = (0.0, 0.0)

    @property
    def span(self) -> int:
        return self.target - self.source

    def point(self, t: float) -> tuple[float, float]:
        return _arc_point(self.start, self.end, self.rad, t)


@dataclass(frozen=True)
class _Bus:
    """Ticks from `states` down to a line at height `y` that runs right and up into the output node."""

    states: tuple[int, ...]
    y: float
    word: str
    word_box: _Box


@dataclass
class _Panel:
    title: str
    nodes: dict[NodeKey, _Node]
    arcs: list[_Arc] = field(default_factory=list)
    labels: list[_Box] = field(default_factory=list)  # one label box per arc
    feeds: list[tuple[NodeKey, NodeKey]] = field(default_factory=list)  # plain arrows: RNN inputs into state 0
    bus: _Bus | None = None
    fits: bool = True  # False when some label could not be placed clear of the others
    bounds: _Box = field(default_factory=lambda: _Box(0.0, 0.0, 0.0, 0.0))
    title_box: _Box = field(default_factory=lambda: _Box(0.0, 0.0, 0.0, 0.0))


def _arc_point(start: tuple[float, float], end: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """The point at parameter t of matplotlib's `arc3,rad=-rad` curve (a quadratic Bezier) from start to end."""
    (x0, y0), (x2, y2) = start, end
    cx, cy = (x0 + x2) / 2 - rad * (y2 - y0), (y0 + y2) / 2 + rad * (x2 - x0)
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t**2
    return a * x0 + b * cx + c * x2, a * y0 + b * cy + c * y2


def _label_size(measure: Measure, op: str) -> tuple[float, float]:
    w, h = measure(op, EDGE_FONT)
    pad = 2 * _LABEL_PAD * EDGE_FONT / 72
    return w + pad, h + pad


def _node(measure: Measure, text: str, centre: tuple[float, float], colour: str, ends: int = 0) -> _Node:
    """A node box fitting its text and, spread along its top edge, `ends` arc ends."""
    w, h = measure(text, NODE_FONT)
    return _Node(text, centre, (max(w + 0.16, 0.3, _END_STEP * (ends + 1)), h + 0.12), colour)


def _edge_ends(cell: Cell, n_inputs: int) -> Counter[int]:
    """How many arcs start or end at each state."""
    ends: Counter[int] = Counter()
    for i, node in enumerate(cell.nodes):
        for edge in node:
            ends[edge.input] += 1
            ends[n_inputs + i] += 1
    return ends


def _state_nodes(cell: Cell, space: SearchSpace, measure: Measure, spacing: float) -> dict[NodeKey, _Node]:
    """States on the line y = 0 in index order, in boxes of one size, and the output last.

    What feeds state 0 (an RNN cell's x_t and h_{t-1}) sits left of it.
    """
    n_inputs = space.n_inputs
    n_states = n_inputs + len(cell.nodes)
    names: dict[NodeKey, str] = dict(enumerate(space.drawn_inputs))
    names.update({i: str(i) for i in range(len(names), n_states)})
    names["out"] = space.drawn_output
    ends = _edge_ends(cell, n_inputs)
    sizes = [
        _node(measure, text, (0.0, 0.0), "", ends[key] if isinstance(key, int) else 0).size
        for key, text in names.items()
    ]
    size = (max(w for w, _ in sizes), max(h for _, h in sizes))
    nodes: dict[NodeKey, _Node] = {}
    for i, (key, text) in enumerate(names.items()):
        is_input = i < len(space.drawn_inputs)
        colour = _OUTPUT_COLOUR if key == "out" else _INPUT_COLOUR if is_input else _NODE_COLOUR
        nodes[key] = _Node(text, (i * spacing, 0.0), size, colour)
    if space.drawn_feeds:
        x_t, h_prev = (_node(measure, text, (0.0, 0.0), _INPUT_COLOUR) for text in space.drawn_feeds)
        rise = max(x_t.size[1], h_prev.size[1]) / 2 + _GAP / 2
        nodes["x"] = _Node(x_t.text, (-0.8 * spacing, rise), x_t.size, x_t.colour)
        nodes["h"] = _Node(h_prev.text, (-0.8 * spacing, -rise), h_prev.size, h_prev.colour)
    return nodes


def _bare_arcs(cell: Cell, n_inputs: int) -> list[_Arc]:
    """One arc per edge; repeated edges between the same two states bulge higher, so they stay apart."""
    seen: Counter[tuple[int, int]] = Counter()
    arcs = []
    for i, node in enumerate(cell.nodes):
        for edge in node:
            pair = (edge.input, n_inputs + i)
            arcs.append(_Arc(edge.input, n_inputs + i, edge.op, _ARC_RAD * (1 + _SAME_PAIR_RAD * seen[pair])))
            seen[pair] += 1
    return arcs


def _arcs(cell: Cell, n_inputs: int, nodes: dict[NodeKey, _Node]) -> list[_Arc]:
    """Arcs with their ends spread along each node's top edge, so no two arrows share an end.

    Left to right on a node: arriving arcs from the shortest (lowest) to the longest, then leaving
    arcs from the longest to the shortest, so arcs that share a node do not cross near it.
    """
    arcs = _bare_arcs(cell, n_inputs)
    slots: dict[int, list[tuple[int, str]]] = {}
    for k in sorted(range(len(arcs)), key=lambda k: (arcs[k].span, arcs[k].rad)):
        slots.setdefault(arcs[k].target, []).append((k, "end"))
    for k in sorted(range(len(arcs)), key=lambda k: (-arcs[k].span, -arcs[k].rad)):
        slots.setdefault(arcs[k].source, []).append((k, "start"))
    points: dict[tuple[int, str], tuple[float, float]] = {}
    for state, ends in slots.items():
        box = nodes[state].box
        for j, end in enumerate(ends):
            points[end] = (box.x0 + (box.x1 - box.x0) * (j + 1) / (len(ends) + 1), box.y1)
    return [replace(arc, start=points[(k, "start")], end=points[(k, "end")]) for k, arc in enumerate(arcs)]


def _arc_samples(arc: _Arc):
    """Points along the arc, a few hundredths of an inch apart, as an (n, 2) array."""
    import numpy as np

    length = abs(arc.end[0] - arc.start[0]) * (1 + arc.rad) + abs(arc.end[1] - arc.start[1])
    t = np.linspace(0.0, 1.0, max(8, int(length / _SAMPLE_STEP)))[:, None]
    (x0, y0), (x2, y2) = arc.start, arc.end
    control = np.array([(x0 + x2) / 2 - arc.rad * (y2 - y0), (y0 + y2) / 2 + arc.rad * (x2 - x0)])
    return (1 - t) ** 2 * np.array(arc.start) + 2 * t * (1 - t) * control + t**2 * np.array(arc.end)


def _arcs_crossed(box: _Box, others: list) -> int:
    """How many of the other arcs (as sample arrays) run through the box."""
    return sum(
        bool(((xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)).any())
        for xy in others
    )


def _free_spot(arc: _Arc, size: tuple[float, float], taken: list[_Box], others: list) -> _Box | None:
    """A spot along the arc whose box is clear of every taken box; of those, the one fewest other arcs
    run through (so a label reads as its own arc's), then the one nearest the arc's middle."""
    best: tuple[int, int, _Box] | None = None
    for rank, t in enumerate(_LABEL_FRACTIONS):
        box = _Box.around(arc.point(t), size)
        if any(box.grown(_CLEARANCE).overlaps(other) for other in taken):
            continue
        score = (_arcs_crossed(box.grown(_CLEARANCE), others), rank)
        if best is None or score < best[:2]:
            best = (*score, box)
    return None if best is None else best[2]


def _place_labels(arcs: list[_Arc], nodes: dict[NodeKey, _Node], measure: Measure) -> tuple[list[_Box], bool]:
    """Label boxes, one per arc, placed greedily: short arcs first, since they have the least room to slide."""
    taken = [node.box for node in nodes.values()]
    samples = [_arc_samples(arc) for arc in arcs]
    boxes: dict[int, _Box] = {}
    fits = True
    for k in sorted(range(len(arcs)), key=lambda k: (arcs[k].span, arcs[k].rad, arcs[k].target)):
        size = _label_size(measure, arcs[k].op)
        box = _free_spot(arcs[k], size, taken, samples[:k] + samples[k + 1 :])
        if box is None:
            fits = False
            box = _Box.around(arcs[k].point(0.5), size)
        boxes[k] = box
        taken.append(box)
    return [boxes[k] for k in range(len(arcs))], fits


def _bus(cell: Cell, space: SearchSpace, nodes: dict[NodeKey, _Node], measure: Measure) -> _Bus:
    bottom = min(nodes[state].box.y0 for state in cell.concat)
    y = bottom - _BUS_DROP
    word = _BUS_WORDS[space.output]
    size = measure(word, BUS_FONT)
    left = min(nodes[state].centre[0] for state in cell.concat)
    centre = ((left + nodes["out"].centre[0]) / 2, y - size[1] / 2 - 0.05)
    return _Bus(tuple(cell.concat), y, word, _Box.around(centre, size))


def _cell_panel_at(cell: Cell, space: SearchSpace, title: str, measure: Measure, spacing: float) -> _Panel:
    nodes = _state_nodes(cell, space, measure, spacing)
    arcs = _arcs(cell, space.n_inputs, nodes)
    labels, fits = _place_labels(arcs, nodes, measure)
    feeds: list[tuple[NodeKey, NodeKey]] = [("x", 0), ("h", 0)] if space.drawn_feeds else []
    panel = _Panel(title, nodes, arcs, labels, feeds, _bus(cell, space, nodes, measure), fits)
    return _framed(panel, measure)


def _spacing(cell: Cell, space: SearchSpace, measure: Measure) -> float:
    """Room enough between neighbouring states for the widest label and the widest node box."""
    widest_label = max(_label_size(measure, edge.op)[0] for node in cell.nodes for edge in node)
    widest_node = max(node.size[0] for node in _state_nodes(cell, space, measure, 0.0).values())
    return max(widest_label, widest_node) + _GAP


def _cell_panel(cell: Cell, space: SearchSpace, title: str, measure: Measure) -> _Panel:
    """Lay a cell out, spreading the states further apart until every label fits."""
    spacing = _spacing(cell, space, measure)
    for _ in range(_SPACING_TRIES):
        panel = _cell_panel_at(cell, space, title, measure, spacing)
        if panel.fits:
            break
        spacing *= _SPACING_GROWTH
    return panel


def _frc_panel(title: str, measure: Measure) -> _Panel:
    note = _node(measure, "fixed reduction cell (FRC)\nsee paper Fig. 3", (0.0, 0.0), _NOTE_COLOUR)
    return _framed(_Panel(title, {"frc": note}), measure)


def _framed(panel: _Panel, measure: Measure) -> _Panel:
    """Set the panel's bounds around everything drawn, with the title on top."""
    content = next(iter(panel.nodes.values())).box
    for box in [node.box for node in panel.nodes.values()] + panel.labels:
        content = content.union(box)
    for arc in panel.arcs:
        content = content.union(_Box.around(arc.point(0.5), (0.0, 0.1)))
    if panel.bus is not None:
        content = content.union(panel.bus.word_box)
    content = content.grown(_MARGIN)
    w, h = measure(panel.title, TITLE_FONT)
    panel.title_box = _Box(content.x0 + _MARGIN, content.y1, content.x0 + _MARGIN + w, content.y1 + h)
    panel.bounds = content.union(panel.title_box.grown(_MARGIN))
    return panel


def _draw_nodes(ax, panel: _Panel) -> dict[NodeKey, Patch]:
    from matplotlib.patches import FancyBboxPatch

    patches: dict[NodeKey, Patch] = {}
    for key, node in panel.nodes.items():
        box = node.box
        patch = FancyBboxPatch(
            (box.x0, box.y0),
            box.x1 - box.x0,
            box.y1 - box.y0,
            zorder=3,
            lw=1.0,
            boxstyle="round,pad=0,rounding_size=0.06",
            fc=node.colour,
            ec="black",
        )
        patches[key] = ax.add_patch(patch)
        ax.text(
            *node.centre, node.text, fontsize=NODE_FONT, ha="center", va="center", multialignment="center", zorder=4
        )
    return patches


def _draw_arcs(ax, panel: _Panel, patches: dict[NodeKey, Patch]) -> None:
    from matplotlib.patches import FancyArrowPatch

    for arc, label in zip(panel.arcs, panel.labels, strict=True):
        colour = _OP_COLOURS.get(arc.op, "black")
        ax.add_patch(
            FancyArrowPatch(
                arc.start,
                arc.end,
                connectionstyle=f"arc3,rad={-arc.rad}",
                arrowstyle="-|>",
                mutation_scale=11,
                lw=1.6,
                color=colour,
                zorder=2,
                shrinkA=0,
                shrinkB=0,
            )
        )
        ax.text(
            *label.centre,
            arc.op,
            fontsize=EDGE_FONT,
            color=colour,
            ha="center",
            va="center",
            zorder=5,
            bbox={"boxstyle": f"round,pad={_LABEL_PAD}", "fc": "white", "ec": colour, "lw": 0.6},
        )
    for source, target in panel.feeds:
        ax.add_patch(
            FancyArrowPatch(
                panel.nodes[source].centre,
                panel.nodes[target].centre,
                arrowstyle="-|>",
                mutation_scale=11,
                lw=1.2,
                color="black",
                zorder=2,
                patchA=patches[source],
                patchB=patches[target],
                shrinkA=1,
                shrinkB=1,
            )
        )


def _draw_bus(ax, panel: _Panel, patches: dict[NodeKey, Patch]) -> None:
    from matplotlib.patches import FancyArrowPatch

    bus = panel.bus
    if bus is None:
        return
    out = panel.nodes["out"]
    for state in bus.states:
        x = panel.nodes[state].centre[0]
        ax.plot([x, x], [panel.nodes[state].box.y0, bus.y], color=_BUS_COLOUR, lw=1.0, zorder=1)
    left = min(panel.nodes[state].centre[0] for state in bus.states)
    ax.plot([left, out.centre[0]], [bus.y, bus.y], color=_BUS_COLOUR, lw=1.0, zorder=1, solid_capstyle="round")
    ax.add_patch(
        FancyArrowPatch(
            (out.centre[0], bus.y),
            out.centre,
            arrowstyle="-|>",
            mutation_scale=11,
            lw=1.0,
            color=_BUS_COLOUR,
            zorder=1,
            patchB=patches["out"],
            shrinkA=0,
            shrinkB=1,
        )
    )
    ax.text(
        *bus.word_box.centre, bus.word, fontsize=BUS_FONT, color=_BUS_COLOUR, ha="center", va="center", style="italic"
    )


def _draw_panel(ax, panel: _Panel) -> None:
    ax.set_axis_off()
    ax.set_xlim(panel.bounds.x0, panel.bounds.x1)
    ax.set_ylim(panel.bounds.y0, panel.bounds.y1)
    patches = _draw_nodes(ax, panel)
    _draw_arcs(ax, panel, patches)
    _draw_bus(ax, panel, patches)
    ax.text(panel.title_box.x0, panel.title_box.centre[1], panel.title, fontsize=TITLE_FONT, ha="left", va="center")


def _measurer(fig) -> Measure:
    """Measure text in inches with the figure's own renderer."""
    renderer = fig.canvas.get_renderer()

    def measure(text: str, fontsize: float) -> tuple[float, float]:
        artist = fig.text(0, 0, text, fontsize=fontsize)
        extent = artist.get_window_extent(renderer)
        artist.remove()
        return extent.width / fig.dpi, extent.height / fig.dpi

    return measure


def draw_genotype(genotype: Genotype) -> Figure:
    """A matplotlib Figure (Agg canvas) with every cell of `genotype`, one panel per cell, top to bottom.

    Each panel's axes spans exactly its content at one inch per data unit, so no label is clipped
    and none overlaps another label or a node.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    measure = _measurer(fig)
    panels = [
        _frc_panel(f"{genotype.ref}: {role} cell", measure)
        if isinstance(cell, str)  # FRC, the only cell a string names
        else _cell_panel(
            cell, genotype.search_space, f"{genotype.ref}: {role} cell".replace("cell cell", "cell"), measure
        )
        for role, cell in genotype.cells().items()
    ]
    width = max(p.bounds.x1 - p.bounds.x0 for p in panels)
    height = sum(p.bounds.y1 - p.bounds.y0 for p in panels)
    fig.set_size_inches(width, height)
    top = height
    for panel in panels:
        w, h = panel.bounds.x1 - panel.bounds.x0, panel.bounds.y1 - panel.bounds.y0
        top -= h
        _draw_panel(fig.add_axes((0.0, top / height, w / width, h / height)), panel)
    return fig


def plot_genotype(genotype: Genotype, path: Path) -> None:
    """Draw every cell of `genotype`, top to bottom, into `path` (.png, .svg or .pdf)."""
    path = Path(path)
    _check_output(path)
    save_figure(draw_genotype(genotype), path)
