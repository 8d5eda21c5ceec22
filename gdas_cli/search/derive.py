"""Alphas -> a discrete genotype (reference section 6).

Rules (`DERIVE_RULES`), both over P = softmax(alpha) of one cell, edges in the flat order
node0 {0,1}, node1 {0,1,2}, ...:

- `paper` (the 2019 code, default): per node, score each input edge by its best non-`none`
  probability, keep the 2 best distinct inputs (ties: the lower input), op = argmax over
  non-`none` ops (ties: the earlier op in PRIMITIVES).
- `pairs` (the released xautodl code): per node, rank every (op, input) pair with a non-`none` op
  and keep the best 2; both may read the same input (our final networks then apply both ops).
  Ties: the lower input, then the earlier op in PRIMITIVES.

Within a node the kept edges are listed best first, as the original genotypes are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import torch

from ..errors import GdasError
from ..genotype import FRC, Cell, Edge, Genotype
from ..ops import PRIMITIVES

EDGES_PER_NODE = 2
Rows = Sequence[Sequence[float]]


def non_none(primitives: Sequence[str]) -> list[int]:
    """Indices of every op but `none`: derive never keeps `none`."""
    return [k for k, name in enumerate(primitives) if name != "none"]


_CHOICES = non_none(PRIMITIVES)


def best_op(row: Sequence[float], choices: Sequence[int] = _CHOICES) -> int:
    """argmax of `row` over `choices`; ties stay with the earlier op (the 2019 code's scan order)."""
    best = choices[0]
    for k in choices[1:]:
        if row[k] > row[best]:
            best = k
    return best


def _paper_node(rows: Rows) -> tuple[Edge, ...]:
    score = [row[best_op(row)] for row in rows]
    inputs = sorted(range(len(rows)), key=lambda j: -score[j])[:EDGES_PER_NODE]  # stable: ties keep lower j
    return tuple(Edge(PRIMITIVES[best_op(rows[j])], j) for j in inputs)


def _pairs_node(rows: Rows) -> tuple[Edge, ...]:
    pairs = [(row[k], j, k) for j, row in enumerate(rows) for k in _CHOICES]
    kept = sorted(pairs, key=lambda pair: -pair[0])[:EDGES_PER_NODE]  # stable: ties keep (j, k) order
    return tuple(Edge(PRIMITIVES[k], j) for _, j, k in kept)


DERIVE_RULES: dict[str, Callable[[Rows], tuple[Edge, ...]]] = {"paper": _paper_node, "pairs": _pairs_node}


def _as_rows(probs: torch.Tensor | Rows) -> list[list[float]]:
    if isinstance(probs, torch.Tensor):
        return probs.detach().double().cpu().tolist()
    return [[float(p) for p in row] for row in probs]


def derive_cell(probs: torch.Tensor | Rows, rule: str = "paper", steps: int = 4, multiplier: int = 4) -> Cell:
    """The discrete cell of one (edges, ops) probability matrix under `rule`."""
    if rule not in DERIVE_RULES:
        raise GdasError(f"--rule: {rule!r} must be one of {', '.join(DERIVE_RULES)}")
    rows = _as_rows(probs)
    expected = sum(2 + i for i in range(steps))
    if len(rows) != expected or any(len(row) != len(PRIMITIVES) for row in rows):
        raise GdasError(
            f"alphas must be ({expected}, {len(PRIMITIVES)}) for {steps} steps, got "
            f"({len(rows)}, {len(rows[0]) if rows else 0})"
        )
    nodes, offset = [], 0
    for i in range(steps):
        nodes.append(DERIVE_RULES[rule](rows[offset : offset + 2 + i]))
        offset += 2 + i
    return Cell(tuple(nodes), tuple(range(2 + steps - multiplier, 2 + steps)))


def derive_genotype(
    probs: Mapping[str, torch.Tensor | Rows],
    *,
    rule: str = "paper",
    frc: bool = False,
    steps: int = 4,
    multiplier: int = 4,
    name: str = "searched",
    version: str = "1.0.0",
    provenance: dict | None = None,
) -> Genotype:
    """A validated Genotype from per-cell-type probabilities (`normal`, and `reduce` unless `frc`)."""
    normal = derive_cell(probs["normal"], rule, steps, multiplier)
    reduce = FRC if frc else derive_cell(probs["reduce"], rule, steps, multiplier)
    genotype = Genotype(
        name, version, "darts", normal=normal, reduce=reduce, derive_rule=rule, provenance=dict(provenance or {})
    )
    # Round-trip through the validator so a bad --name or --version is caught here, naming the option.
    return Genotype.from_dict(genotype.to_dict(), source="derived genotype (check --name/--version)")


def alphas_sha256(alphas: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the float32 little-endian bytes of the alphas, cell types in sorted order."""
    digest = hashlib.sha256()
    for cell_type in sorted(alphas):
        tensor = torch.as_tensor(alphas[cell_type]).detach().to(torch.float32).cpu().contiguous()
        digest.update(cell_type.encode())
        digest.update(tensor.numpy().astype("<f4").tobytes())
    return digest.hexdigest()
