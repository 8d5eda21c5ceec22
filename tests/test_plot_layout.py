"""Cell drawings stay readable for every zoo genotype: no text overlaps other text or a node box,
and nothing is cut off by its axes or the figure."""

from __future__ import annotations

import itertools

import pytest
from matplotlib.patches import FancyBboxPatch

from gdas_cli.genotype import FRC, zoo_genotypes
from gdas_cli.plot import draw_genotype

ZOO = zoo_genotypes()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _inside(inner, outer) -> bool:
    return outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1


@pytest.fixture(scope="module", params=ZOO, ids=[g.ref for g in ZOO])
def drawn(request):
    """(genotype, figure, [(axes, text, extent)], [node box extents]) for one zoo genotype."""
    fig = draw_genotype(request.param)
    renderer = fig.canvas.get_renderer()
    texts = [(ax, text, text.get_window_extent(renderer)) for ax in fig.axes for text in ax.texts]
    nodes = [p.get_window_extent(renderer) for ax in fig.axes for p in ax.patches if isinstance(p, FancyBboxPatch)]
    return request.param, fig, texts, nodes


def test_no_text_overlaps_text(drawn):
    _, _, texts, _ = drawn
    for (_, a, box_a), (_, b, box_b) in itertools.combinations(texts, 2):
        assert not _overlap(box_a, box_b), f"{a.get_text()!r} overlaps {b.get_text()!r}"


def test_no_edge_label_overlaps_a_node(drawn):
    _, _, texts, nodes = drawn
    labels = [(text, box) for _, text, box in texts if text.get_bbox_patch() is not None]
    assert labels
    for (text, box), node in itertools.product(labels, nodes):
        assert not _overlap(box, node), f"{text.get_text()!r} overlaps a node box"


def test_every_text_is_inside_its_axes_and_the_figure(drawn):
    _, fig, texts, _ = drawn
    for ax, text, box in texts:
        assert _inside(box, ax.bbox), f"{text.get_text()!r} is cut by its axes"
        assert _inside(box, fig.bbox), f"{text.get_text()!r} is cut by the figure"


def test_every_edge_is_labelled_and_states_are_subscripted(drawn):
    genotype, _, texts, _ = drawn
    shown = sorted(text.get_text() for _, text, _ in texts if text.get_bbox_patch() is not None)
    cells = [cell for cell in genotype.cells().values() if cell != FRC]
    assert shown == sorted(edge.op for cell in cells for node in cell.nodes for edge in node)
    names = {text.get_text() for _, text, _ in texts}
    space = genotype.search_space  # each space's labels: c_{k-2}, c_{k-1} -> c_k; x_t, h_{t-1} -> h_t; c_{k-1} -> c_k
    expected = {*space.drawn_inputs, space.drawn_output, *space.drawn_feeds}
    assert len(expected) >= 2 and expected <= names
