"""Recurrent alphas -> a discrete `rnn` genotype (derive rule `rnn`, paper T=1; docs/sources.md, "Derive").

Edges are in the flat order node0 {s0}, node1 {s0, s1}, node2 {s0, s1, s2}, ... (36 rows for 8
steps). Over P = softmax(alpha), each node keeps the ONE input j whose best non-`none` probability
is highest (ties: the lower j) and that edge's best non-`none` op (ties: the earlier op). Unlike the
2019 code, `none` is never chosen: a node that outputs zero would make the final cell degenerate.
concat is every node, 1..steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import GdasError
from ..genotype import Cell, Edge, Genotype
from ..ops import RNN_PRIMITIVES
from .derive import best_op, non_none

RNN_STEPS = 8
_CHOICES = non_none(RNN_PRIMITIVES)


def rnn_edge_count(steps: int) -> int:
    """1 + 2 + ... + steps: node i reads states 0..i."""
    return steps * (steps + 1) // 2


def derive_rnn_edges(probs: torch.Tensor | Sequence[Sequence[float]], steps: int = RNN_STEPS) -> list[tuple[int, int]]:
    """(input state j, op index k) per node."""
    rows = probs.detach().double().cpu().tolist() if isinstance(probs, torch.Tensor) else [list(r) for r in probs]
    expected = rnn_edge_count(steps)
    if len(rows) != expected or any(len(row) != len(RNN_PRIMITIVES) for row in rows):
        got = f"({len(rows)}, {len(rows[0]) if rows else 0})"
        raise GdasError(f"recurrent alphas must be ({expected}, {len(RNN_PRIMITIVES)}) for {steps} steps, got {got}")
    edges, offset = [], 0
    for i in range(steps):
        node = rows[offset : offset + i + 1]
        scores = [row[best_op(row, _CHOICES)] for row in node]
        j = max(range(i + 1), key=lambda n: (scores[n], -n))  # highest score; ties keep the lower input
        edges.append((j, best_op(node[j], _CHOICES)))
        offset += i + 1
    return edges


def derive_rnn_cell(probs: torch.Tensor | Sequence[Sequence[float]], steps: int = RNN_STEPS) -> Cell:
    nodes = tuple((Edge(RNN_PRIMITIVES[k], j),) for j, k in derive_rnn_edges(probs, steps))
    return Cell(nodes, tuple(range(1, steps + 1)))


def derive_rnn_genotype(
    probs: torch.Tensor | Sequence[Sequence[float]],
    *,
    steps: int = RNN_STEPS,
    name: str = "searched_rnn",
    version: str = "1.0.0",
    provenance: dict | None = None,
) -> Genotype:
    """A validated `rnn` Genotype with derive rule `rnn`."""
    cell = derive_rnn_cell(probs, steps)
    genotype = Genotype(
        name, version, "darts_rnn", recurrent=cell, derive_rule="rnn", provenance=dict(provenance or {})
    )
    return Genotype.from_dict(genotype.to_dict(), source="derived genotype (check --name/--version)")
