"""The NAS-Bench-201 topology space (NATS-Bench "tss"): its ops, its edges and its arch strings.

A cell has nodes 0..3; node 0 is the cell input, node i (1..3) sums one op applied to every node
j < i, and node 3 is the output: 6 edges. An architecture is written as the released code and the
benchmark APIs write it, one `|op~j|` group per node joined by `+`::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

In Python it is `Nodes`: for node i = 1..3 the tuple of its edges (op, j), j = 0..i-1 in order.
This module is torch-free so the CLI can read and check arch strings without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import GdasError

# The released order (xautodl's SearchSpaceNames["nas-bench-201"]); it is the alphas' column order
# and decides argmax ties.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NODES = 4
# (target i, source j) per alpha row: xautodl numbers edges by its sorted "i<-j" keys, which for
# single-digit nodes is node-major with j ascending.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

Edge = tuple[str, int]
Nodes = tuple[tuple[Edge, ...], ...]

_SHOWN = 120  # characters of a bad string quoted in an error


def edge_index(i: int, j: int) -> int:
    """The alpha row of the edge from node j into node i."""
    return EDGES.index((i, j))


def looks_like_arch_str(text: str) -> bool:
    """True for text meant as an arch string (it starts with `|`); a genotype name or path never does."""
    return isinstance(text, str) and text.startswith("|")


def _earlier(node: int) -> str:
    """The nodes `node` may read, in words."""
    return "node 0" if node == 1 else f"nodes 0..{node - 1}"


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _parse_index(token: str, node: int, where: str) -> int:
    """A node index as the released strings print it: decimal digits, no sign, no leading zero."""
    if not (token.isascii() and token.isdigit()) or (len(token) > 1 and token[0] == "0"):
        raise GdasError(f"{where}: node {node} has input index {token!r}; it may read {_earlier(node)}")
    return int(token)


def _parse_edge(token: str, node: int, where: str) -> Edge:
    if token.count("~") != 1:
        raise GdasError(f"{where}: node {node} has edge {token!r}; an edge is written op~index, e.g. nor_conv_3x3~0")
    op, index = token.split("~")
    if op not in OPS:
        raise GdasError(f"{where}: node {node} has unknown op {op!r}; known: {', '.join(OPS)}")
    return op, _parse_index(index, node, where)


def _check_inputs(edges: Sequence[Edge], node: int, where: str) -> None:
    """Node `node` reads every earlier node once, in order (the released strings' form)."""
    inputs = [j for _, j in edges]
    if inputs == list(range(node)):
        return
    too_far = [j for j in inputs if j >= node]
    if too_far:
        raise GdasError(f"{where}: node {node} reads node {too_far[0]}; it may read only {_earlier(node)}")
    missing = [j for j in range(node) if j not in inputs]
    if len(inputs) != node or missing:
        read = ", ".join(map(str, inputs)) or "nothing"
        raise GdasError(f"{where}: node {node} must read {_earlier(node)} once each, it reads {read}")
    raise GdasError(f"{where}: node {node} must list its inputs in order 0..{node - 1}, got {inputs}")


def _parse_node(group: str, node: int, where: str) -> tuple[Edge, ...]:
    if len(group) < 2 or group[0] != "|" or group[-1] != "|":
        raise GdasError(f"{where}: node {node} is {group!r}; a node is written |op~j|...| with bars at both ends")
    tokens = group[1:-1].split("|")
    if "" in tokens:
        raise GdasError(f"{where}: node {node} has an empty edge (two bars in a row) in {group!r}")
    edges = tuple(_parse_edge(token, node, where) for token in tokens)
    _check_inputs(edges, node, where)
    return edges


def parse_arch_str(text: str) -> Nodes:
    """The nodes an arch string describes; anything malformed is a GdasError naming what is wrong."""
    if not isinstance(text, str):
        raise GdasError(f"an arch string must be text, got {type(text).__name__}")
    where = f"arch string {_quoted(text)}"
    if any(c.isspace() for c in text):
        raise GdasError(f"{where}: contains whitespace; write it as |op~j|+|op~j|op~j|+|op~j|op~j|op~j|")
    groups = text.split("+")
    if len(groups) != NODES - 1:
        raise GdasError(f"{where}: has {len(groups)} node(s) joined by '+', the space has {NODES - 1}")
    return tuple(_parse_node(group, node, where) for node, group in enumerate(groups, 1))


def check_nodes(nodes: Any) -> Nodes:
    """`nodes` as canonical tuples, checked: 3 nodes, node i holds (op, j) for j = 0..i-1, known ops."""
    if not isinstance(nodes, (tuple, list)) or len(nodes) != NODES - 1:
        raise GdasError(f"a NAS-Bench-201 cell has {NODES - 1} nodes, got {nodes!r}")
    result = []
    for node, edges in enumerate(nodes, 1):
        where = f"cell {nodes!r}"
        if not isinstance(edges, (tuple, list)) or not all(
            isinstance(e, (tuple, list)) and len(e) == 2 and isinstance(e[0], str) for e in edges
        ):
            raise GdasError(f"{where}: node {node} must be a sequence of (op, input) pairs, got {edges!r}")
        for op, j in edges:
            if op not in OPS:
                raise GdasError(f"{where}: node {node} has unknown op {op!r}; known: {', '.join(OPS)}")
            if not isinstance(j, int) or isinstance(j, bool):
                raise GdasError(f"{where}: node {node} has input {j!r}; an input is an int ({_earlier(node)})")
        canonical = tuple((op, j) for op, j in edges)
        _check_inputs(canonical, node, where)
        result.append(canonical)
    return tuple(result)


def format_arch_str(nodes: Nodes) -> str:
    """The arch string of `nodes` (checked), as xautodl's `Structure.tostr()` prints it."""
    return "+".join("|" + "|".join(f"{op}~{j}" for op, j in edges) + "|" for edges in check_nodes(nodes))


def edge_ops(nodes: Nodes) -> tuple[str, ...]:
    """The op of each edge in `EDGES` (alpha row) order."""
    return tuple(op for edges in check_nodes(nodes) for op, _ in edges)


def nodes_from_edge_ops(ops: Sequence[str]) -> Nodes:
    """The cell whose edge e (in `EDGES` order) applies `ops[e]`."""
    if len(ops) != len(EDGES):
        raise GdasError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops")
    nodes = tuple(tuple((ops[edge_index(i, j)], j) for j in range(i)) for i in range(1, NODES))
    return check_nodes(nodes)
