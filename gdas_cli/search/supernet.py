"""The CNN search network (supernet) of GDAS: every edge holds all candidate ops, alphas pick one.

Layout `paper` (the 2019 code): stem, N normal, reduction, N normal, reduction, N normal, then
global pool and linear; C=16, N=2 gives the paper's 8 cells. Layout `xautodl` (the 2020 code):
N normal, reduction, N-1 normal, reduction, N-1 normal, with BN-ReLU before the pool. With `frc`
the reduction cells are the fixed reduction cell and only the normal alphas exist.

Op set `paper` (the 2019 code's ops) or `xautodl` (xautodl 1.0.0's: no BN after pools, conv biases,
an affine-free FRC, its op order); see `ops.SEARCH_OPS`. Whatever the op set, the alphas' columns
follow PRIMITIVES, so every file a search writes reads the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from ..errors import GdasError
from ..genotype import Genotype
from ..ops import (
    PRIMITIVES,
    SEARCH_OPS,
    FactorizedReduce,
    FixedReductionCell,
    ReLUConvBN,
    SearchOps,
)
from ..sampler import SAMPLING_MODES, CellSample, EdgeOps, sample_cells

ALPHA_STD = 1e-3
CELL_TYPES = ("normal", "reduce")


def edge_count(steps: int) -> int:
    """Edges of a cell: node i reads all 2 + i earlier states (14 for 4 steps)."""
    return sum(2 + i for i in range(steps))


def _preprocess(
    C_prev_prev: int,
    C_prev: int,
    C: int,
    reduction_prev: bool,
    affine: bool,
    bias: bool,
) -> tuple[nn.Module, nn.Module]:
    """A cell's two input layers: s0 halved by FactorizedReduce after a reduction, else 1x1 ReLU-conv-BN."""
    s0 = (
        FactorizedReduce(C_prev_prev, C, affine, bias=bias)
        if reduction_prev
        else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine, bias=bias)
    )
    return s0, ReLUConvBN(C_prev, C, 1, 1, 0, affine, bias=bias)


class SearchCell(nn.Module):
    """A cell whose 14 edges each hold every candidate op of `ops`, all with affine-free BN."""

    def __init__(
        self,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        steps: int,
        multiplier: int,
        ops: SearchOps = SEARCH_OPS["paper"],
    ) -> None:
        super().__init__()
        self.reduction, self.steps, self.multiplier = reduction, steps, multiplier
        self.preprocess0, self.preprocess1 = _preprocess(C_prev_prev, C_prev, C, reduction_prev, False, ops.bias)
        self.edges = nn.ModuleList()
        for node in range(steps):
            for j in range(2 + node):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(nn.ModuleList(ops.build(name, C, stride) for name in ops.order))
        # An edge holds its ops in build order; samples index them by alpha column (PRIMITIVES order).
        self.columns = None if ops.order == PRIMITIVES else ops.columns

    def edge_ops(self, edge: int) -> EdgeOps:
        """The candidate ops of `edge`, indexed like the alphas' columns."""
        ops = cast(nn.ModuleList, self.edges[edge])  # one ModuleList per edge, built in __init__
        return ops if self.columns is None else [ops[k] for k in self.columns]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, sample: CellSample) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.steps):
            node = sum(sample.apply(offset + j, self.edge_ops(offset + j), h) for j, h in enumerate(states))
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self.multiplier :], dim=1)


class FixedReductionSearchCell(nn.Module):
    """The FRC in a supernet; it takes no sample. The 2019 code hard-codes affine BN here, even in
    search; xautodl builds it affine-free, with conv biases."""

    multiplier = FixedReductionCell.multiplier
    reduction = True

    def __init__(
        self,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction_prev: bool,
        ops: SearchOps = SEARCH_OPS["paper"],
    ) -> None:
        super().__init__()
        bias = ops.bias and not ops.frc_affine
        self.preprocess0, self.preprocess1 = _preprocess(C_prev_prev, C_prev, C, reduction_prev, ops.frc_affine, bias)
        self.body = FixedReductionCell(C, ops.frc_affine, bias=bias)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, sample: CellSample | None = None) -> torch.Tensor:
        return self.body(self.preprocess0(s0), self.preprocess1(s1))


@dataclass(frozen=True)
class Layout:
    """Where the reductions sit (`reductions(N)` gives one flag per cell) and whether BN-ReLU precedes the pool."""

    reductions: Callable[[int], list[bool]]
    last_act: bool


LAYOUTS: dict[str, Layout] = {
    "paper": Layout(lambda N: [False] * N + [True] + [False] * N + [True] + [False] * N, last_act=False),
    "xautodl": Layout(lambda N: [False] * N + [True] + [False] * (N - 1) + [True] + [False] * (N - 1), last_act=True),
}


class SearchNetwork(nn.Module):
    """The supernet. `forward(x)` draws an architecture (one `draw` call) and returns logits."""

    def __init__(
        self,
        C: int = 16,
        N: int = 2,
        num_classes: int = 10,
        *,
        frc: bool = False,
        sampling: str = "cell",
        layout: str = "paper",
        ops: str = "paper",
        steps: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        check_network_args(C, N, num_classes, frc, sampling, layout, ops)
        self.sampling, self.steps, self.multiplier, self.frc, self.ops = sampling, steps, multiplier, frc, ops
        self.tau = 10.0
        self.generator: torch.Generator | None = None
        stem_channels = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels))
        self.cells, self.cell_types, C_prev = self._build_cells(stem_channels, C, LAYOUTS[layout].reductions(N))
        head: list[nn.Module] = [nn.BatchNorm2d(C_prev), nn.ReLU()] if LAYOUTS[layout].last_act else []
        self.last_act = nn.Sequential(*head)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        n_edges, op_set = edge_count(steps), SEARCH_OPS[ops]
        for cell_type in self.searched_types:
            alphas = ALPHA_STD * torch.randn(n_edges, len(PRIMITIVES))
            if op_set.order != PRIMITIVES:  # drawn in build order, as that op set's code does; kept by PRIMITIVES
                alphas = alphas[:, list(op_set.columns)]
            self.register_parameter(f"alphas_{cell_type}", nn.Parameter(alphas))

    def _build_cells(
        self, stem_channels: int, C: int, reductions: list[bool]
    ) -> tuple[nn.ModuleList, list[str | None], int]:
        cells, ops = nn.ModuleList(), SEARCH_OPS[self.ops]
        types: list[str | None] = []
        C_prev_prev, C_prev, C_curr, reduction_prev = stem_channels, stem_channels, C, False
        for reduction in reductions:
            C_curr = C_curr * 2 if reduction else C_curr
            cell: FixedReductionSearchCell | SearchCell
            if reduction and self.frc:
                cell = FixedReductionSearchCell(C_prev_prev, C_prev, C_curr, reduction_prev, ops)
                types.append(None)
            else:
                cell = SearchCell(
                    C_prev_prev, C_prev, C_curr, reduction, reduction_prev, self.steps, self.multiplier, ops
                )
                types.append("reduce" if reduction else "normal")
            cells.append(cell)
            C_prev_prev, C_prev, reduction_prev = C_prev, cell.multiplier * C_curr, reduction
        return cells, types, C_prev

    @property
    def searched_types(self) -> tuple[str, ...]:
        """The cell types that have alphas: normal and reduce, or only normal with the FRC."""
        return ("normal",) if self.frc else CELL_TYPES

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        return {t: getattr(self, f"alphas_{t}") for t in self.searched_types}

    def alphas(self) -> list[nn.Parameter]:
        return list(self.arch_parameters().values())

    def weights(self) -> Iterator[nn.Parameter]:
        """Every parameter except the alphas (what the W optimizer updates)."""
        arch = {id(p) for p in self.alphas()}
        return (p for p in self.parameters() if id(p) not in arch)

    def set_tau(self, tau: float) -> None:
        self.tau = float(tau)

    def probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell type, detached on the CPU: what derive and the plots read."""
        return {t: torch.softmax(a.detach().float(), dim=-1).cpu() for t, a in self.arch_parameters().items()}

    def genotype(self, rule: str = "paper", **kwargs: Any) -> Genotype:
        """The discrete genotype the current alphas give under derive `rule` (see search.derive)."""
        from .derive import derive_genotype

        return derive_genotype(
            self.probabilities(), rule=rule, frc=self.frc, steps=self.steps, multiplier=self.multiplier, **kwargs
        )

    def sample(self, batch_size: int) -> list[CellSample | None]:
        """Draw the architecture of every cell (None for FRC cells) in one `draw` call."""
        searched = [t for t in self.cell_types if t is not None]
        drawn = iter(
            sample_cells(self.arch_parameters(), searched, self.sampling, self.tau, batch_size, self.generator)
        )
        return [None if t is None else next(drawn) for t in self.cell_types]

    def forward_sampled(self, x: torch.Tensor, samples: Sequence[CellSample | None]) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell, sample in zip(self.cells, samples, strict=True):
            s0, s1 = s1, cell(s0, s1, sample)
        return self.classifier(torch.flatten(self.global_pool(self.last_act(s1)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_sampled(x, self.sample(x.size(0)))


def check_network_args(
    C: int,
    N: int,
    num_classes: int,
    frc: bool,
    sampling: str,
    layout: str,
    ops: str = "paper",
) -> None:
    if layout not in LAYOUTS:
        raise GdasError(f"--layout: {layout!r} must be one of {', '.join(LAYOUTS)}")
    if ops not in SEARCH_OPS:
        raise GdasError(f"ops: {ops!r} (set by --recipe) must be one of {', '.join(SEARCH_OPS)}")
    if sampling not in SAMPLING_MODES:
        raise GdasError(f"--sampling: {sampling!r} must be one of {', '.join(SAMPLING_MODES)}")
    if C < 2 or C % 2:
        raise GdasError(f"--channels: C={C} must be an even number >= 2")
    if frc and C % 8:
        raise GdasError(
            f"--channels: C={C} must be a multiple of 8 with --frc (grouped convs of the fixed reduction cell)"
        )
    if N < 1:
        raise GdasError(f"--cells-per-stage: N={N} must be >= 1")
    if num_classes < 1:
        raise GdasError(f"a search network needs at least one class, got {num_classes}")


def build_search_network(
    C: int = 16,
    N: int = 2,
    num_classes: int = 10,
    frc: bool = False,
    sampling: str = "cell",
    layout: str = "paper",
    ops: str = "paper",
) -> SearchNetwork:
    """The GDAS supernet with the paper's cell (steps 4, multiplier 4, stem 3C)."""
    return SearchNetwork(C, N, num_classes, frc=frc, sampling=sampling, layout=layout, ops=ops)
