"""Hard Gumbel-softmax sampling with a straight-through gradient (paper Eq. 5-7).

Forward: h = one_hot(argmax(log_softmax(A) + g)); backward: d softmax((log_softmax(A) + g) / tau).
`draw` samples every row of the given alphas at once and reads the chosen indices back to the host
in ONE transfer, so a supernet that draws once per forward pays one host sync per step.

`sample_cells` turns a network's alphas into one `CellSample` per searched cell, with at most one
`draw` call per forward, in one of the `SAMPLING_MODES`:

- `cell`: a draw per cell (every edge of it) per forward, shared by the batch (the 2019 code).
- `batch`: a draw per cell type per forward, shared by every cell of that type and the batch (xautodl).
- `sample`: a draw per cell type per example: each example gets its own architecture, one normal
  and one reduction cell, used by every cell of that type (the paper's text, Sec. 3.2).
- `sample_cell`: a draw per cell per example.
- `darts`: no sampling; every op weighted by softmax(alpha) (the DARTS baseline).
- `gdas_all_ops`: the draws of `cell`, but every op runs and is weighted by the hard one-hot (the
  paper's ablation without the acceleration step: the same forward, 8x the cost, and a gradient to
  the alphas from every op).

`CellSample.apply` runs an edge: in the accelerated hard modes only the chosen op, times its hard
weight (exactly 1 in value, the soft gradient behind it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from .errors import GdasError

MAX_REDRAWS = 100


@dataclass
class Draw:
    """`hard`: one-hot weights (value exactly 0/1) carrying the soft gradient; `index`: chosen ops on the host."""

    hard: torch.Tensor
    index: torch.Tensor


def gumbel_noise(
    shape: torch.Size | tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    exponential = torch.empty(shape, device=like.device, dtype=like.dtype).exponential_(generator=generator)
    return -exponential.log()


def draw(
    alphas: torch.Tensor, tau: float, sample_shape: tuple[int, ...] = (), generator: torch.Generator | None = None
) -> Draw:
    """Sample one op per row of `alphas` (..., K), `sample_shape` times; re-draw if anything is non-finite."""
    log_probs = F.log_softmax(alphas, dim=-1)
    shape = torch.Size(sample_shape) + alphas.shape
    for _ in range(MAX_REDRAWS):
        logits = (log_probs + gumbel_noise(shape, alphas, generator)) / tau
        probs = F.softmax(logits, dim=-1)
        index = probs.argmax(dim=-1)
        bad = ~(torch.isfinite(logits).all() & torch.isfinite(probs).all())
        host = torch.cat([index.flatten(), bad.long().view(1)]).cpu()
        if not host[-1]:
            one_hot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
            # (p - p.detach()) is exactly 0 forward, so the values stay exactly 0/1; backward is d p.
            hard = one_hot + (probs - probs.detach())
            return Draw(hard=hard, index=host[:-1].view(index.shape))
    raise GdasError(
        f"Gumbel sampling gave non-finite values {MAX_REDRAWS} times: the alphas are NaN or infinite (the search "
        "diverged); the last checkpoint is kept: start a new run with a smaller --lr or --arch-lr"
    )


def soft_weights(alphas: torch.Tensor) -> torch.Tensor:
    """DARTS mode: softmax weights over all ops (no sampling)."""
    return F.softmax(alphas, dim=-1)


def soft_gumbel(alphas: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A soft Gumbel-softmax sample per row, softmax((log_softmax(A) + g) / tau): no one-hot, no host sync.

    What the 2019 RNN search drew (`F.gumbel_softmax(alphas, tau, hard=False)`; log_softmax only
    shifts each row, so the sample is the same), with our generator so a search stays reproducible.
    """
    noise = gumbel_noise(alphas.shape, alphas, generator)
    return F.softmax((F.log_softmax(alphas, dim=-1) + noise) / tau, dim=-1)


def linear_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """Tau for `epoch` (0-based), linear from tau_max at the first epoch to tau_min at the last."""
    if epochs <= 1:
        return tau_max
    return tau_max - (tau_max - tau_min) * epoch / (epochs - 1)


class EdgeOps(Protocol):
    """The candidate ops of one edge, by alpha column: an nn.ModuleList or a list of modules."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> nn.Module: ...

    def __iter__(self) -> Iterator[nn.Module]: ...


class CellSample(Protocol):
    """The architecture drawn for one cell: how each of its edges combines its candidate ops."""

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor: ...


@dataclass
class HardCellSample:
    """One op per edge for the whole batch; `hard` (E, K) is one-hot, `index` the chosen ops on the host."""

    hard: torch.Tensor
    index: list[int]

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor:
        k = self.index[edge]
        # The hard weight is exactly 1, but multiplying by it routes the gradient to every alpha of the edge.
        return ops[k](x) * self.hard[edge, k]


@dataclass
class ExampleCellSample:
    """One op per edge per example: `hard` (B, E, K), `index` (B, E) on the host.

    The examples that chose the same op run through it as one sub-batch, so an edge costs one op
    over the batch however the choices fall.
    """

    hard: torch.Tensor
    index: torch.Tensor

    def select(self, rows: slice) -> ExampleCellSample:
        """The sample restricted to some examples (a per-example loop uses this)."""
        return ExampleCellSample(self.hard[rows], self.index[rows])

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(self.index[:, edge], minlength=len(ops)).tolist()
        hard = self.hard[:, edge]
        chosen = hard.detach().argmax(dim=-1)  # the device copy of index[:, edge]: no host transfer
        weight = hard.gather(1, chosen.unsqueeze(1)).view(-1, *([1] * (x.dim() - 1)))
        if max(counts) == x.size(0):
            out = ops[counts.index(x.size(0))](x)
            return out * weight.to(out.dtype)  # keep bf16/fp16 activations under autocast
        order = torch.argsort(chosen, stable=True)
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
        groups = _Permute.apply(x, order, inverse).split(counts)
        out = torch.cat([ops[k](group) for k, group in enumerate(groups) if counts[k]])
        return _Permute.apply(out, inverse, order) * weight.to(out.dtype)


class _Permute(torch.autograd.Function):
    """Reorder the batch by a permutation; backward applies the inverse (index_select's backward would
    zero-fill and scatter-add, which costs a full extra pass per edge)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, order: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(0, order)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


@dataclass
class AllOpsCellSample:
    """Hard one-hot weights as `HardCellSample`, but every op runs: sum_k hard[k] * op_k(x).

    The forward value equals the chosen op's output; backward reaches every alpha through every
    op's output (and gives the unchosen ops' weights an exact-zero gradient)."""

    hard: torch.Tensor

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor:
        w = self.hard[edge]
        return sum(w[k] * op(x) for k, op in enumerate(ops))


@dataclass
class SoftCellSample:
    """DARTS mode: every op runs, weighted by softmax(alpha); `weights` is (E, K)."""

    weights: torch.Tensor

    def apply(self, edge: int, ops: EdgeOps, x: torch.Tensor) -> torch.Tensor:
        w = self.weights[edge]
        return sum(w[k] * op(x) for k, op in enumerate(ops))


SampleFn = Callable[[Mapping[str, torch.Tensor], Sequence[str], float, int, "torch.Generator | None"], list]


def _per_cell(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    tau: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> list[CellSample]:
    """A fresh draw for every cell (the 2019 code)."""
    result = draw(torch.stack([alphas[t] for t in cell_types]), tau, generator=generator)
    index = result.index.tolist()
    return [HardCellSample(result.hard[i], index[i]) for i in range(len(cell_types))]


def _per_cell_type(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    tau: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> list[CellSample]:
    """One draw per cell type, shared by every cell of that type (xautodl)."""
    types = list(dict.fromkeys(cell_types))
    result = draw(torch.stack([alphas[t] for t in types]), tau, generator=generator)
    index = result.index.tolist()
    shared = {t: HardCellSample(result.hard[i], index[i]) for i, t in enumerate(types)}
    return [shared[t] for t in cell_types]


def _per_example_cell_type(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    tau: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> list[CellSample]:
    """One draw per cell type per example, shared by every cell of that type (the paper's text)."""
    types = list(dict.fromkeys(cell_types))
    result = draw(torch.stack([alphas[t] for t in types]), tau, (batch_size,), generator)
    shared = {t: ExampleCellSample(result.hard[:, i], result.index[:, i]) for i, t in enumerate(types)}
    return [shared[t] for t in cell_types]


def _per_example_cell(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    tau: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> list[CellSample]:
    """A draw per cell per example."""
    result = draw(torch.stack([alphas[t] for t in cell_types]), tau, (batch_size,), generator)
    return [ExampleCellSample(result.hard[:, i], result.index[:, i]) for i in range(len(cell_types))]


def _softmax(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    tau: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> list[CellSample]:
    """DARTS: all ops weighted by softmax(alpha); no sampling, no host sync."""
    weights = {t: soft_weights(alphas[t]) for t in dict.fromkeys(cell_types)}
    return [SoftCellSample(weights[t]) for t in cell_types]


def _per_cell_all_ops(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    tau: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> list[CellSample]:
    """The draws of `cell`, every op evaluated (the ablation without the acceleration step)."""
    result = draw(torch.stack([alphas[t] for t in cell_types]), tau, generator=generator)
    return [AllOpsCellSample(result.hard[i]) for i in range(len(cell_types))]


SAMPLING_MODES: dict[str, SampleFn] = {
    "cell": _per_cell,
    "batch": _per_cell_type,
    "sample": _per_example_cell_type,
    "sample_cell": _per_example_cell,
    "darts": _softmax,
    "gdas_all_ops": _per_cell_all_ops,
}


def sample_cells(
    alphas: Mapping[str, torch.Tensor],
    cell_types: Sequence[str],
    mode: str,
    tau: float,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> list[CellSample]:
    """One CellSample per entry of `cell_types` (keys of `alphas`), drawn at granularity `mode`."""
    try:
        sample = SAMPLING_MODES[mode]
    except KeyError:
        raise ValueError(f"unknown sampling mode {mode!r}; known: {', '.join(SAMPLING_MODES)}") from None
    return sample(alphas, cell_types, tau, batch_size, generator)
