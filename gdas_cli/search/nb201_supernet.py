"""The GDAS supernet of the NAS-Bench-201 space, equal to xautodl 1.0.0's `TinyNetworkGDAS`.

The macro network of `models.nb201` with every cell a search cell whose 6 edges hold all 5 ops
(affine-free BN, so the convs carry xautodl's bias), and ONE alpha matrix (6 x 5, rows in
`nb201.EDGES` order, columns in `nb201.OPS` order) shared by every searched cell. Sampling is the
project's (`sampler.sample_cells`) over the single cell type "cell": the default `batch` mode is
xautodl's one hard Gumbel-softmax draw per forward for the whole batch and every cell.

One detail of xautodl's `NAS201SearchCell.forward_gdas` is kept (`unchosen_weights=True`): an edge
returns hard[k] * op_k(x) PLUS the hard weights of the unchosen ops. Those are exactly 0, so the
forward is unchanged, but each unchosen op's weight then gets the gradient sum(dL/d node) and passes
it to the alphas. xautodl's DARTS-space supernet (and this project's `SearchNetwork`) multiplies the
chosen op only; `unchosen_weights=False` does that here.

In the modes with one draw for the whole batch (`batch`, `cell`) an edge computes that product and sum
without touching the op's output (`_ChosenEdge`): the hard weights are exactly 1 and 0, so the output is
the op's own and only the weights' gradients need work. Node sums start from their first edge, not from
0. Both leave every value and gradient bit for bit as xautodl computes them (tests/test_nas_bench_201.py)
and save three or four elementwise passes over each edge's output per step (benchmarks/nb201_step.py).

It has `SearchNetwork`'s interface, so `search.step.search_step` runs it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ..errors import GdasError
from ..models.nb201 import (
    NB201_OPS,
    ResNetBasicBlock,
    check_macro_args,
    last_act,
    layer_plan,
    node_inputs,
    stem,
)
from ..nb201 import EDGES, OPS, Nodes
from ..sampler import SAMPLING_MODES, CellSample, EdgeOps, ExampleCellSample, HardCellSample, sample_cells
from .nb201_derive import derive_nb201
from .supernet import ALPHA_STD

CELL_TYPE = "cell"


class _ChosenEdge(torch.autograd.Function):
    """`out * weights[k]` (+ the unchosen weights `sum_{j != k} weights[j]` with `unchosen`), for one-hot
    `weights`: the value is `out` itself, returned as a view, no product or sum computed. Backward gives
    `out` the gradient unchanged (times 1) and `weights` what the product-and-sum form gives, summed by
    the same reductions: sum(grad * out) at k (plus 0 * sum(grad) with `unchosen`), sum(grad) at the
    unchosen ops with `unchosen`, else 0."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, weights: torch.Tensor, k: int, unchosen: bool) -> torch.Tensor:
        ctx.k, ctx.unchosen, ctx.weights_dtype, ctx.num_ops = k, unchosen, weights.dtype, weights.shape[-1]
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(out)
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        grad_weights = None
        if ctx.needs_input_grad[1]:
            (out,) = ctx.saved_tensors
            # as the product's backward (sum_to a 0-dim weight) and the broadcast sum's (sum_to its (1, 1, 1) view)
            chosen = (grad * out).sum().to(ctx.weights_dtype)
            if ctx.unchosen:
                rest = grad.sum_to_size([1] * (grad.dim() - 1)).reshape(()).to(ctx.weights_dtype)
                grad_weights = rest.expand(ctx.num_ops).clone()
                grad_weights[ctx.k] = chosen + rest * 0.0
            else:
                grad_weights = chosen.new_zeros(ctx.num_ops)
                grad_weights[ctx.k] = chosen
        return (grad if ctx.needs_input_grad[0] else None), grad_weights, None, None


@dataclass
class ChosenEdgeSample:
    """A draw for the whole batch whose edges run the chosen op only, weighted by `_ChosenEdge`; with
    `unchosen_weights` each edge also adds the unchosen ops' hard weights (module docstring)."""

    inner: HardCellSample
    unchosen_weights: bool

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor:
        k = self.inner.index[edge]
        return cast(torch.Tensor, _ChosenEdge.apply(ops[k](x), self.inner.hard[edge], k, self.unchosen_weights))


@dataclass
class UnchosenWeightsSample:
    """A hard sample whose edges also add the unchosen ops' hard weights, as xautodl's forward_gdas.

    hard * (1 - hard.detach()) is 0 in value at every op and has gradient 1 exactly at the unchosen
    ones, so the edge's value stays the chosen op's output while each unchosen weight receives the
    sum of the edge output's gradient (per example in the per-example modes).
    """

    inner: HardCellSample | ExampleCellSample  # the supernet uses it for the per-example draws

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor:
        out = self.inner.apply(edge, ops, x)
        weights = self.inner.hard[..., edge, :]  # (K,) for the batch, (B, K) per example
        unchosen = (weights * (1.0 - weights.detach())).sum(-1)
        return out + unchosen.view(*unchosen.shape, *([1] * (out.dim() - 1))).to(out.dtype)


class NB201SearchCell(nn.Module):
    """A cell whose 6 edges each hold all 5 ops (alpha-column order); node i sums its edges' outputs."""

    def __init__(self, C: int, affine: bool = False, track_running_stats: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(NB201_OPS[name](C, affine, track_running_stats) for name in OPS) for _ in EDGES
        )
        self._inputs = node_inputs()

    def forward(self, x: torch.Tensor, sample: CellSample) -> torch.Tensor:
        states = [x]
        for reads in self._inputs:
            # from the first edge on: sum() would start at 0 and copy the first output once more
            node = sample.apply(reads[0][0], self._ops(reads[0][0]), states[reads[0][1]])
            for e, j in reads[1:]:
                node = node + sample.apply(e, self._ops(e), states[j])
            states.append(node)
        return states[-1]

    def _ops(self, edge: int) -> EdgeOps:
        return cast(nn.ModuleList, self.edges[edge])  # one ModuleList per edge, built in __init__


class NB201SearchNetwork(nn.Module):
    """The supernet. `forward(x)` draws an architecture (one `draw` call) and returns logits.

    `track_running_stats`: of the search cells' BN (xautodl's GDAS.sh passes 0 or 1); the stem, the
    ResNet blocks and the head keep affine BN with running statistics, as xautodl builds them.
    """

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        *,
        track_running_stats: bool = False,
        sampling: str = "batch",
        unchosen_weights: bool = True,
    ) -> None:
        super().__init__()
        check_macro_args(C, N, num_classes)
        if num_classes < 1:
            raise GdasError(f"a search network needs at least one class, got {num_classes}")
        if sampling not in SAMPLING_MODES:
            raise GdasError(f"--sampling: {sampling!r} must be one of {', '.join(SAMPLING_MODES)}")
        self.sampling, self.unchosen_weights = sampling, unchosen_weights
        self.tau = 10.0
        self.generator: torch.Generator | None = None
        # built in xautodl's order (stem, cells, head, then the alphas) so a seed gives its initial values
        self.stem = stem(C)
        self.cells = nn.ModuleList()
        self.cell_types: list[str | None] = []
        C_prev = C
        for C_curr, reduction in layer_plan(C, N):
            if reduction:
                self.cells.append(ResNetBasicBlock(C_prev, C_curr, 2))
            else:
                self.cells.append(NB201SearchCell(C_curr, affine=False, track_running_stats=track_running_stats))
            self.cell_types.append(None if reduction else CELL_TYPE)
            C_prev = C_curr
        self.last_act = last_act(C_prev)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.alphas_cell = nn.Parameter(ALPHA_STD * torch.randn(len(EDGES), len(OPS)))

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        return {CELL_TYPE: self.alphas_cell}

    def alphas(self) -> list[nn.Parameter]:
        return [self.alphas_cell]

    def weights(self) -> Iterator[nn.Parameter]:
        """Every parameter except the alphas (what the W optimizer updates)."""
        return (p for p in self.parameters() if p is not self.alphas_cell)

    def set_tau(self, tau: float) -> None:
        self.tau = float(tau)

    def probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha), detached on the CPU: what derive and the plots read."""
        return {CELL_TYPE: torch.softmax(self.alphas_cell.detach().float(), dim=-1).cpu()}

    def derive(self) -> Nodes:
        """The cell the current alphas give under the released rule (`derive_nb201`).

        It reads the alphas themselves, as xautodl's `genotype()` does: a float32 softmax can round
        two close alphas to one probability, and the tie would then go to the lower op.
        """
        return derive_nb201(self.alphas_cell.detach())

    def sample(self, batch_size: int) -> list[CellSample | None]:
        """Draw the architecture of every searched cell (None for the ResNet blocks) in one `draw` call."""
        searched = [t for t in self.cell_types if t is not None]
        drawn = iter(
            self._with_unchosen(s)
            for s in sample_cells(self.arch_parameters(), searched, self.sampling, self.tau, batch_size, self.generator)
        )
        return [None if t is None else next(drawn) for t in self.cell_types]

    def _with_unchosen(self, sample: CellSample) -> CellSample:
        """xautodl's edge sum in the modes that run one op per edge (module docstring); the batch-wide
        draws weighted by `_ChosenEdge` either way."""
        if isinstance(sample, HardCellSample):
            return ChosenEdgeSample(sample, self.unchosen_weights)
        if self.unchosen_weights and isinstance(sample, ExampleCellSample):
            return UnchosenWeightsSample(sample)
        return sample

    def forward_sampled(self, x: torch.Tensor, samples: Sequence[CellSample | None]) -> torch.Tensor:
        feature = self.stem(x)
        for cell, sample in zip(self.cells, samples, strict=True):
            feature = cell(feature) if sample is None else cell(feature, sample)
        return self.classifier(torch.flatten(self.global_pool(self.last_act(feature)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_sampled(x, self.sample(x.size(0)))
