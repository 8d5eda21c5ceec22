"""Candidate operations of the DARTS/NASNet space, in the exact layer order of the 2019 GDAS code.

`OPS` maps an op name to a factory `(C, stride, affine) -> nn.Module`. `PRIMITIVES` is the search
space in the original order (it decides argmax tie-breaking); the table also holds the ops that only
published baseline cells use.

`XAUTODL_OPS` is the same space as xautodl 1.0.0 builds it for its search networks (pools without BN,
conv biases where it passes `bias=not affine`), in xautodl's op order. `SEARCH_OPS` names the op sets
a supernet can be built from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .errors import GdasError
from .spaces import DARTS_OPS, RNN_OPS

PRIMITIVES: tuple[str, ...] = DARTS_OPS  # the DARTS space's search ops, in the 2019 code's order
RNN_PRIMITIVES: tuple[str, ...] = RNN_OPS  # the recurrent space, in the order of the 2019 code


class Zero(nn.Module):
    """The `none` op: zeros of the output shape (subsampled first at stride 2)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Identity):
    """Marks the parameter-free identity so drop-path can skip it, as the original code does."""


class ReLUConvBN(nn.Sequential):
    def __init__(
        self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, affine: bool = True, *, bias: bool = False
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=padding, bias=bias),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise dilated conv, pointwise conv, BN: one pass. `bias` goes on the pointwise conv only."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
        *,
        bias: bool = False,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=bias),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """The separable block applied twice; only the first depthwise conv is strided."""

    def __init__(
        self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, affine: bool = True, *, bias: bool = False
    ) -> None:
        super().__init__(
            DilConv(C_in, C_in, kernel, stride, padding, dilation=1, affine=affine, bias=bias),
            DilConv(C_in, C_out, kernel, 1, padding, dilation=1, affine=affine, bias=bias),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs, the second on a one-pixel diagonal shift."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True, *, bias: bool = False) -> None:
        super().__init__()
        if C_out % 2:
            raise GdasError(f"FactorizedReduce needs an even channel count, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=bias)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=bias)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class FactorizedConv(nn.Sequential):
    """ReLU, 1xk conv strided along width, kx1 conv strided along height, BN (conv_7x1_1x7 and kin)."""

    def __init__(self, C: int, kernel: int, stride: int, affine: bool = True) -> None:
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, kernel), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(C, C, (kernel, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )


def _pool_bn(pool: nn.Module, C: int) -> nn.Sequential:
    # The 2019 code hard-codes a non-affine BN after each pool, in search and in final training.
    return nn.Sequential(pool, nn.BatchNorm2d(C, affine=False))


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: _pool_bn(nn.MaxPool2d(3, stride=stride, padding=1), C),
    "avg_pool_3x3": lambda C, stride, affine: _pool_bn(
        nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False), C
    ),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": lambda C, stride, affine: FactorizedConv(C, 7, stride, affine),
    "conv_3x1_1x3": lambda C, stride, affine: FactorizedConv(C, 3, stride, affine),
}


# xautodl 1.0.0's DARTS space (`cell_operations.py`), under our names and in its order: none,
# skip_connect, dua_sepc_3x3, dua_sepc_5x5, dil_sepc_3x3, dil_sepc_5x5, avg_pool_3x3, max_pool_3x3.
# Its pools have no BN, and every conv it builds with an affine-free BN gets a bias (`bias=not
# affine`), except the depthwise convs of the separable blocks.
XAUTODL_OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "skip_connect": lambda C, stride, affine: (
        Identity() if stride == 1 else FactorizedReduce(C, C, affine, bias=not affine)
    ),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine, bias=not affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine, bias=not affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine, bias=not affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine, bias=not affine),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
}


@dataclass(frozen=True)
class SearchOps:
    """How a supernet builds its layers: the candidate ops of an edge and the layers around them.

    `order`: the ops of an edge in the order they are built (the code's search-space order); the
    alphas' columns stay in PRIMITIVES order whatever it is. `bias`: a bias on the convs of the
    affine-free preprocessing and fixed reduction cell. `frc_affine`: the fixed reduction cell's BN.
    """

    ops: Mapping[str, OpFactory]
    order: tuple[str, ...]
    bias: bool
    frc_affine: bool

    @property
    def columns(self) -> tuple[int, ...]:
        """For each op of PRIMITIVES (each alpha column), its place in `order`."""
        return tuple(self.order.index(name) for name in PRIMITIVES)

    def build(self, name: str, C: int, stride: int) -> nn.Module:
        """Op `name` as a search edge holds it (affine-free BN)."""
        return self.ops[name](C, stride, False)


SEARCH_OPS: dict[str, SearchOps] = {
    # The 2019 code: its op table, affine-free search layers without biases, an affine FRC.
    "paper": SearchOps(OPS, PRIMITIVES, bias=False, frc_affine=True),
    # xautodl 1.0.0 (NASNetworkGDAS, NASNetworkGDAS_FRC): affine=False throughout, so conv biases too.
    "xautodl": SearchOps(XAUTODL_OPS, tuple(XAUTODL_OPS), bias=True, frc_affine=False),
}


def build_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Instantiate op `name`; unknown names are a user error, since they come from genotype files."""
    try:
        factory = OPS[name]
    except KeyError:
        raise GdasError(f"unknown op {name!r}; known ops: {', '.join(OPS)}") from None
    return factory(C, stride, affine)


class FixedReductionCell(nn.Module):
    """The paper's hand-designed reduction cell (FRC, Fig. 3), in its post-2019-03 form.

    Two grouped 1x3/3x1 conv branches on s0 and s1 and two stride-2 max pools, concatenated to 4C.
    The grouped convs need C % 8 == 0.
    """

    multiplier = 4

    def __init__(self, C: int, affine: bool = True, *, bias: bool = False) -> None:
        super().__init__()
        if C % 8:
            raise GdasError(f"the fixed reduction cell needs channels divisible by 8, got {C}")
        self.conv_branches = nn.ModuleList([self._conv_branch(C, affine, bias) for _ in range(2)])
        self.pool_branches = nn.ModuleList(
            [nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.BatchNorm2d(C, affine=affine)) for _ in range(2)]
        )

    @staticmethod
    def _conv_branch(C: int, affine: bool, bias: bool) -> nn.Sequential:
        return nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 3), stride=(1, 2), padding=(0, 1), groups=8, bias=bias),
            nn.Conv2d(C, C, (3, 1), stride=(2, 1), padding=(1, 0), groups=8, bias=bias),
            nn.BatchNorm2d(C, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 1, bias=bias),
            nn.BatchNorm2d(C, affine=affine),
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        branches = [
            self.conv_branches[0](s0),
            self.conv_branches[1](s1),
            self.pool_branches[0](s0),
            self.pool_branches[1](s1),
        ]
        if self.training and drop_prob > 0:
            branches = [drop_path(b, drop_prob) for b in branches]
        return torch.cat(branches, dim=1)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples with probability `drop_prob`, rescaling the survivors (ScheduledDropPath)."""
    keep = 1.0 - drop_prob
    # A comparison rather than bernoulli_(keep): torch.compile then need not specialise on the float.
    mask = (torch.rand(x.size(0), 1, 1, 1, device=x.device) < keep).to(x.dtype)
    return x / keep * mask
