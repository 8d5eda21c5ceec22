"""Final CIFAR and ImageNet-mobile networks built from a CNN genotype, and their registry.

A network is a pure function of (genotype, widths, classes). In training mode with an auxiliary
head, `forward` returns `(logits, aux_logits)` (as torchvision's Inception does); otherwise logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch
from torch import nn

from ..errors import GdasError
from ..genotype import Genotype
from .cells import build_cell
from .heads import AuxiliaryHead


@dataclass(frozen=True)
class NetworkArgs:
    """Everything besides the genotype that fixes a final network's weights."""

    net: str = "cifar"
    C: int = 36
    layers: int = 20
    num_classes: int = 10
    auxiliary: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> "NetworkArgs":
        """Validate a JSON object of these fields (every field present and typed, none unknown)."""
        if not isinstance(data, dict):
            raise GdasError(f"{source}: network arguments must be a JSON object")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise GdasError(f"{source}: unknown network argument(s) {', '.join(unknown)}; known: {', '.join(names)}")
        missing = [name for name in names if name not in data]
        if missing:
            raise GdasError(f"{source}: missing network argument(s) {', '.join(missing)}")
        for key, value in data.items():
            want = _FIELD_TYPES[key]
            if not isinstance(value, want) or (want is int and isinstance(value, bool)):
                raise GdasError(f"{source}: network argument {key} must be {want.__name__}, got {value!r}")
        return cls(**data)


_FIELD_TYPES: dict[str, type] = {"net": str, "C": int, "layers": int, "num_classes": int, "auxiliary": bool}


def _cifar_stem(C: int) -> tuple[nn.Module, nn.Module | None, int]:
    stem = nn.Sequential(nn.Conv2d(3, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
    return stem, None, 3 * C


def _imagenet_stem(C: int) -> tuple[nn.Module, nn.Module | None, int]:
    stem0 = nn.Sequential(
        nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C),
    )
    stem1 = nn.Sequential(
        nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C)
    )
    return stem0, stem1, C


# net name -> (stem builder, aux pool stride, BN in aux head)
NETS: dict[str, tuple[Callable[[int], tuple[nn.Module, nn.Module | None, int]], int, bool]] = {
    "cifar": (_cifar_stem, 3, True),
    "imagenet": (_imagenet_stem, 2, False),
}


class CellNetwork(nn.Module):
    """Stem, `layers` cells with reductions at layers//3 and 2*layers//3, global pool, linear classifier."""

    def __init__(self, genotype: Genotype, args: NetworkArgs) -> None:
        super().__init__()
        if genotype.kind != "cnn":
            raise GdasError(f"{genotype.ref}: a {genotype.kind} genotype cannot build a {args.net} network")
        if args.net not in NETS:
            raise GdasError(f"unknown network {args.net!r}; known: {', '.join(NETS)}")
        if args.layers < 3 or args.C < 2 or args.num_classes < 1:
            raise GdasError(f"network needs layers >= 3, C >= 2 and classes >= 1, got {args}")
        self.genotype, self.args = genotype, args
        stem_builder, aux_stride, aux_bn = NETS[args.net]
        self.stem0, self.stem1, stem_channels = stem_builder(args.C)
        self.drop_path_prob = 0.0
        reductions = (args.layers // 3, 2 * args.layers // 3)
        C_prev_prev, C_prev, C_curr = stem_channels, stem_channels, args.C
        reduction_prev = self.stem1 is not None  # the ImageNet stem already halves s0 relative to s1
        self.cells = nn.ModuleList()
        self.aux_head: nn.Module | None = None
        for i in range(args.layers):
            reduction = i in reductions
            if reduction:
                C_curr *= 2
            cell = build_cell(
                genotype, c_prev_prev=C_prev_prev, c_prev=C_prev, c=C_curr, reduction=reduction,
                reduction_prev=reduction_prev,
            )
            self.cells.append(cell)
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            reduction_prev = reduction
            if i == reductions[1] and args.auxiliary:
                self.aux_index = i
                self.aux_head = AuxiliaryHead(C_prev, args.num_classes, aux_stride, aux_bn)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, args.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if self.aux_head is not None and self.training and i == self.aux_index:
                aux_logits = self.aux_head(s1)
        logits = self.classifier(torch.flatten(self.global_pool(s1), 1))
        return (logits, aux_logits) if aux_logits is not None else logits


def default_args(genotype: Genotype, net: str, num_classes: int) -> NetworkArgs:
    """The paper's widths: CIFAR C=36 with 20 cells; ImageNet 14 cells, C=50, or 52 with the FRC (C % 8)."""
    if net == "cifar":
        return NetworkArgs(net="cifar", C=36, layers=20, num_classes=num_classes)
    if net == "imagenet":
        return NetworkArgs(net="imagenet", C=52 if genotype.uses_frc else 50, layers=14, num_classes=num_classes)
    raise GdasError(f"unknown network {net!r}; known: {', '.join(NETS)}")


def build_network(genotype: Genotype, args: NetworkArgs) -> CellNetwork:
    return CellNetwork(genotype, args)
