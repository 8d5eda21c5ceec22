"""NAS-Bench-201 alphas -> a cell, by the released rule (xautodl's `TinyNetworkGDAS.genotype`).

Each edge keeps the argmax over ALL five ops, `none` included (unlike the DARTS-space rules, an
edge here may end up dropped); ties go to the lower op index in `nb201.OPS`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import GdasError
from ..nb201 import EDGES, OPS, Nodes, nodes_from_edge_ops
from .derive import best_op

_ALL_OPS = tuple(range(len(OPS)))


def _rows(probs: torch.Tensor | Sequence[Sequence[float]]) -> list[list[float]]:
    if isinstance(probs, torch.Tensor):
        return probs.detach().double().cpu().tolist()
    return [[float(p) for p in row] for row in probs]


def derive_nb201(probs: torch.Tensor | Sequence[Sequence[float]]) -> Nodes:
    """The cell of a (6, 5) matrix of per-edge op probabilities (or alphas: softmax keeps the argmax)."""
    rows = _rows(probs)
    if len(rows) != len(EDGES) or any(len(row) != len(OPS) for row in rows):
        shape = f"({len(rows)}, {len(rows[0]) if rows else 0})"
        raise GdasError(f"NAS-Bench-201 alphas must be ({len(EDGES)}, {len(OPS)}), got {shape}")
    if not all(math.isfinite(p) for row in rows for p in row):
        raise GdasError("NAS-Bench-201 alphas are not finite (the search diverged): no cell can be derived")
    return nodes_from_edge_ops([OPS[best_op(row, _ALL_OPS)] for row in rows])
