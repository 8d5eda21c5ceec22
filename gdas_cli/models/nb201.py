"""NAS-Bench-201 networks: the space's ops, its cell, and the benchmark's macro network.

Equal to xautodl 1.0.0's `TinyNetwork` (and, for the parts the supernet shares, `TinyNetworkGDAS`):
stem Conv3x3 + BN; N cells at C, a stride-2 `ResNetBasicBlock`, N cells at 2C, another, N cells
at 4C; BN + ReLU, global average pool, linear. Modules are created in xautodl's order, so the same
seed gives the same initial weights.

Weight names differ from xautodl's only where it wraps a Sequential in `.op` (dropped here), in
`lastact` (here `last_act`) and in the cell's `layers` (here `edges`, one per alpha row in
`nb201.EDGES` order); tests/test_nas_bench_201.py holds the mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..errors import GdasError
from ..genotype import Genotype
from ..nb201 import EDGES, NODES, Nodes, check_nodes, edge_ops
from ..ops import Identity, Zero
from .networks import NB201_NET, NetworkArgs, pretrained_cfg_for


class NorConv(nn.Sequential):
    """ReLU -> Conv(k, no bias) -> BN, xautodl's `ReLUConvBN`.

    As there, the conv has a bias exactly when the BN has no affine parameters (`bias=not affine`),
    which is the case in the search cells.
    """

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel: int,
        stride: int = 1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=kernel // 2, bias=not affine),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )


def _pool(C: int, affine: bool, track_running_stats: bool) -> nn.Module:
    # xautodl's POOLING with equal channels has no 1x1 preprocess; padding is not averaged in.
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


OpFactory = Callable[[int, bool, bool], nn.Module]

# name -> factory(C, affine, track_running_stats), in the space's order (nb201.OPS). Every edge of a cell maps
# C channels to C at stride 1, so no op needs a stride or a second width.
NB201_OPS: dict[str, OpFactory] = {
    "none": lambda C, affine, track: Zero(1),
    "skip_connect": lambda C, affine, track: Identity(),
    "nor_conv_1x1": lambda C, affine, track: NorConv(C, C, 1, 1, affine, track),
    "nor_conv_3x3": lambda C, affine, track: NorConv(C, C, 3, 1, affine, track),
    "avg_pool_3x3": _pool,
}


class ResNetBasicBlock(nn.Module):
    """xautodl's `ResNetBasicblock`: two NorConv 3x3 plus a shortcut (avg-pool + 1x1 conv at stride 2)."""

    def __init__(
        self, C_in: int, C_out: int, stride: int, affine: bool = True, track_running_stats: bool = True
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise GdasError(f"a ResNet basic block has stride 1 or 2, got {stride}")
        self.conv_a = NorConv(C_in, C_out, 3, stride, affine, track_running_stats)
        self.conv_b = NorConv(C_out, C_out, 3, 1, affine, track_running_stats)
        self.downsample: nn.Module | None
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(C_in, C_out, 1, bias=False))
        elif C_in != C_out:
            self.downsample = NorConv(C_in, C_out, 1, 1, affine, track_running_stats)
        else:
            self.downsample = None
        self.out_channels = C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


def node_inputs() -> list[list[tuple[int, int]]]:
    """For node i = 1..3, its (edge index, source node) pairs."""
    return [[(e, j) for e, (i, j) in enumerate(EDGES) if i == node] for node in range(1, NODES)]


class NB201Cell(nn.Module):
    """The inference cell: node i sums op_e(node j) over its edges e = (i, j); the output is node 3."""

    def __init__(self, nodes: Nodes, C: int, affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(NB201_OPS[op](C, affine, track_running_stats) for op in edge_ops(nodes))
        self._inputs = node_inputs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for reads in self._inputs:
            states.append(sum(self.edges[e](states[j]) for e, j in reads))
        return states[-1]


def layer_plan(C: int, N: int) -> list[tuple[int, bool]]:
    """(channels, is the stride-2 ResNet block) of each of the 3N + 2 layers after the stem."""
    plan = [(C, False)] * N
    for width in (2 * C, 4 * C):
        plan += [(width, True)] + [(width, False)] * N
    return plan


def stem(C: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))


def last_act(C: int) -> nn.Sequential:
    """BN + ReLU on the last cell's output (the cells end in a sum, so the head normalises first)."""
    return nn.Sequential(nn.BatchNorm2d(C), nn.ReLU(inplace=False))


def check_macro_args(C: int, N: int, num_classes: int) -> None:
    if C < 1:
        raise GdasError(f"channels: C={C} must be >= 1")
    if N < 1:
        raise GdasError(f"cells per stage: N={N} must be >= 1")
    if num_classes < 0:
        raise GdasError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")


def _classifier(in_features: int, num_classes: int, like: nn.Module | None = None) -> nn.Module:
    """Linear, or Identity for 0 classes (timm's headless model), on `like`'s device and dtype."""
    if num_classes == 0:
        return nn.Identity()
    param = next(like.parameters(), None) if like is not None else None
    factory: dict[str, Any] = {} if param is None else {"device": param.device, "dtype": param.dtype}
    return nn.Linear(in_features, num_classes, **factory)


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of one cell (`nodes`, see `nb201.parse_arch_str`), timm's interface.

    `forward(x)` gives logits; `forward_head(x, pre_logits=True)` the pooled features (what
    xautodl's `TinyNetwork` returns first). `num_classes` 0 builds no classifier.
    """

    def __init__(self, nodes: Nodes, *, C: int = 16, N: int = 5, num_classes: int = 10) -> None:
        super().__init__()
        check_macro_args(C, N, num_classes)
        self.nodes, self.C, self.N = check_nodes(nodes), C, N
        self.stem = stem(C)
        self.cells = nn.ModuleList()
        C_prev = C
        for C_curr, reduction in layer_plan(C, N):
            self.cells.append(ResNetBasicBlock(C_prev, C_curr, 2) if reduction else NB201Cell(self.nodes, C_curr))
            C_prev = C_curr
        self.num_features: int = C_prev
        self.last_act = last_act(C_prev)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _classifier(C_prev, num_classes)
        self._num_classes = num_classes

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map after the last cell and BN-ReLU (`num_features` channels), before pooling."""
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.last_act(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool and classifier; with `pre_logits`, the pooled `num_features` vector."""
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh classifier for `num_classes` (0: none, the pooled features come out); other weights kept."""
        if global_pool not in (None, "avg"):
            raise GdasError(f"global_pool {global_pool!r}: this network pools by average only ('avg')")
        if num_classes < 0:
            raise GdasError(f"num_classes must be >= 0, got {num_classes}")
        self.classifier = _classifier(self.num_features, num_classes, like=self.stem)
        self._num_classes = num_classes


def genotype_nodes(genotype: Genotype) -> Nodes:
    """The `Nodes` of a nas-bench-201 genotype's cell."""
    if genotype.space != "nas-bench-201" or genotype.cell is None:
        raise GdasError(f"{genotype.ref}: a {genotype.space} genotype does not build a NAS-Bench-201 network")
    return tuple(tuple((edge.op, edge.input) for edge in node) for node in genotype.cell.nodes)


class NB201Classifier(NB201Network):
    """The benchmark's network of a nas-bench-201 genotype, as the engine, weights files and the Hub use it:
    built from (genotype, NetworkArgs) with `args.layers` the cells per stage (N), with `pretrained_cfg`,
    and `forward_train` (no auxiliary head here). The benchmark trains it without drop-path."""

    def __init__(
        self,
        genotype: Genotype,
        args: NetworkArgs,
        *,
        drop_path_rate: float = 0.0,
        pretrained_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        if args.net != NB201_NET:
            raise GdasError(
                f"{genotype.ref}: a NAS-Bench-201 genotype builds the {NB201_NET!r} network, not {args.net!r}"
            )
        if args.auxiliary:
            raise GdasError("--aux: the NAS-Bench-201 network has no auxiliary head (pass --no-aux)")
        if drop_path_rate:
            raise GdasError("drop_path_rate: the NAS-Bench-201 network has no drop-path (the benchmark trains without)")
        super().__init__(genotype_nodes(genotype), C=args.C, N=args.layers, num_classes=args.num_classes)
        self.genotype, self.args = genotype, args
        self.pretrained_cfg = pretrained_cfg_for(args, **(pretrained_cfg or {}))
        self.drop_path_prob = 0.0  # the training loop's ramp sets it; nothing here reads it
        self.aux_head: nn.Module | None = None

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self(x), None

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        self.args = replace(self.args, num_classes=num_classes)
