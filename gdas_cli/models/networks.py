"""Final CIFAR and ImageNet-mobile networks built from a CNN genotype, their layouts, and timm's model interface.

A network is a pure function of (genotype, widths, classes). `CellNetwork` follows timm's classifier
interface: `forward(x)` returns logits in train and eval mode; `forward_features`, `forward_head`,
`reset_classifier`, `get_classifier`, `num_classes`, `num_features`, `feature_info` and a plain-dict
`pretrained_cfg`. The auxiliary head is reached only through `forward_train(x) -> (logits, aux | None)`;
`TrainForward` wraps a network so that DDP and torch.compile, which call `forward`, run that instead.
`build_network(..., features_only=True, out_indices=...)` builds a `CellFeatures` backbone, whose
`forward` returns a list of feature maps, as timm's `features_only` models do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple, Protocol, cast, overload

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
    def from_dict(cls, data: Any, source: str) -> NetworkArgs:
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


@dataclass(frozen=True)
class Layout:
    """A network family: its stem, auxiliary head, and the input it expects (its `pretrained_cfg` defaults)."""

    stem: Callable[[int], tuple[nn.Module, nn.Module | None, int]]
    stem_reduction: int  # stride of stem0's output
    cell_reduction: int  # stride of the first cell's input s1
    aux_stride: int  # pool stride of the auxiliary head
    aux_bn: bool  # BN after the auxiliary head's 2x2 conv
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float


# The statistics gdas_cli.data normalises with (models/ imports nothing above it; a test keeps them equal).
CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ImageNet evaluation resizes to 256 and centre-crops 224 (crop_pct 0.875) with torchvision's default
# bilinear resize; CIFAR images are used whole.
NETS: dict[str, Layout] = {
    "cifar": Layout(_cifar_stem, 1, 1, 3, True, 32, CIFAR_MEAN, CIFAR_STD, "bilinear", 1.0),
    "imagenet": Layout(_imagenet_stem, 4, 8, 2, False, 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear", 0.875),
}
NB201_NET = "nb201"  # the NAS-Bench-201 space's one macro network (models/nb201.py)


@dataclass(frozen=True)
class InputDefaults:
    """What a macro network expects of an image by default: its `pretrained_cfg` before a loader's facts."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    crop_pct: float
    first_conv: str
    data: str  # the data loader's family (data.load_images' `net`): cifar (small images) or imagenet


INPUTS: dict[str, InputDefaults] = {
    **{
        name: InputDefaults(n.image_size, n.mean, n.std, n.interpolation, n.crop_pct, "stem0.0", name)
        for name, n in NETS.items()
    },
    # the benchmark's CIFAR input
    NB201_NET: InputDefaults(32, CIFAR_MEAN, CIFAR_STD, "bilinear", 1.0, "stem.0", "cifar"),
}


def pretrained_cfg_for(args: NetworkArgs, **fields: Any) -> dict[str, Any]:
    """timm's `pretrained_cfg` as a plain dict: the macro network's input defaults, with `fields` on top.

    A loader passes what it knows of the weights (`dataset`, `label_names`, `license`, `source`, ...);
    a key that is not one of the defaults' keys is an error.
    """
    if args.net not in INPUTS:
        raise GdasError(f"unknown network {args.net!r}; known: {', '.join(INPUTS)}")
    layout = INPUTS[args.net]
    cfg: dict[str, Any] = {
        "input_size": (3, layout.image_size, layout.image_size),
        "interpolation": layout.interpolation,
        "crop_pct": layout.crop_pct,
        "mean": layout.mean,
        "std": layout.std,
        "num_classes": args.num_classes,
        "label_names": None,
        "dataset": None,
        "license": None,
        "source": None,
        "first_conv": layout.first_conv,
        "classifier": "classifier",
    }
    unknown = sorted(set(fields) - set(cfg))
    if unknown:
        raise GdasError(f"pretrained_cfg: unknown field(s) {', '.join(unknown)}; known: {', '.join(cfg)}")
    cfg.update(fields)
    labels = cfg["label_names"]
    if labels is not None and len(labels) != cfg["num_classes"]:
        raise GdasError(f"pretrained_cfg: {len(labels)} label_names for {cfg['num_classes']} classes")
    return cfg


class FeatureInfo(list):
    """timm's `feature_info`: one dict per level (`num_chs`, `reduction`, `module`) with column helpers."""

    @overload
    def channels(self, idx: None = None) -> list[int]: ...
    @overload
    def channels(self, idx: int) -> int: ...
    def channels(self, idx: int | None = None) -> list[int] | int:
        return self._column("num_chs", idx)

    @overload
    def reduction(self, idx: None = None) -> list[int]: ...
    @overload
    def reduction(self, idx: int) -> int: ...
    def reduction(self, idx: int | None = None) -> list[int] | int:
        return self._column("reduction", idx)

    @overload
    def module_name(self, idx: None = None) -> list[str]: ...
    @overload
    def module_name(self, idx: int) -> str: ...
    def module_name(self, idx: int | None = None) -> list[str] | str:
        return self._column("module", idx)

    def _column(self, key: str, idx: int | None) -> Any:
        return [level[key] for level in self] if idx is None else self[idx][key]


def _layout(net: str) -> Layout:
    if net not in NETS:
        raise GdasError(f"unknown network {net!r}; known: {', '.join(NETS)}")
    return NETS[net]


def _check(genotype: Genotype, args: NetworkArgs, drop_path_rate: float) -> Layout:
    if genotype.space != "darts":
        raise GdasError(f"{genotype.ref}: a {genotype.space} genotype cannot build a {args.net} network")
    layout = _layout(args.net)
    if args.layers < 3 or args.C < 2 or args.num_classes < 0:
        raise GdasError(f"network needs layers >= 3, C >= 2 and classes >= 0 (0: no classifier), got {args}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise GdasError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    return layout


def _reductions(args: NetworkArgs) -> tuple[int, int]:
    return args.layers // 3, 2 * args.layers // 3


def _level_cells(args: NetworkArgs) -> list[int]:
    """The cell whose output is each feature level (-1: the stem): the stem, then, as timm's stages,
    the deepest cell at each stride (the last cell before each reduction cell, and the last cell)."""
    first, second = _reductions(args)
    return [-1, first - 1, second - 1, args.layers - 1]


class _Body(NamedTuple):
    stem0: nn.Module
    stem1: nn.Module | None
    cells: nn.ModuleList
    aux_head: AuxiliaryHead | None
    feature_info: FeatureInfo


def _build_body(genotype: Genotype, args: NetworkArgs, layout: Layout, num_cells: int, aux_classes: int) -> _Body:
    """The stem and the first `num_cells` cells, with the auxiliary head created right after its cell
    (the 2019 code's order, so a seed gives the same initial weights)."""
    stem0, stem1, stem_channels = layout.stem(args.C)
    info = [{"num_chs": stem_channels, "reduction": layout.stem_reduction, "module": "stem0"}]
    reductions, levels = _reductions(args), _level_cells(args)
    C_prev_prev, C_prev, C_curr = stem_channels, stem_channels, args.C
    reduction_prev = stem1 is not None  # the ImageNet stem already halves s0 relative to s1
    stride, cells, aux_head = layout.cell_reduction, nn.ModuleList(), None
    for i in range(num_cells):
        reduction = i in reductions
        if reduction:
            C_curr, stride = C_curr * 2, stride * 2
        cell = build_cell(
            genotype,
            c_prev_prev=C_prev_prev,
            c_prev=C_prev,
            c=C_curr,
            reduction=reduction,
            reduction_prev=reduction_prev,
        )
        cells.append(cell)
        C_prev_prev, C_prev, reduction_prev = C_prev, cell.multiplier * C_curr, reduction
        if i == reductions[1] and aux_classes:
            aux_head = AuxiliaryHead(C_prev, aux_classes, layout.aux_stride, layout.aux_bn)
        if i in levels:
            info.append({"num_chs": C_prev, "reduction": stride, "module": f"cells.{i}"})
    return _Body(stem0, stem1, cells, aux_head, FeatureInfo(info))


class _CellStack(nn.Module):
    """The stem and cells that CellNetwork and CellFeatures share, with the same weight names."""

    def __init__(
        self,
        genotype: Genotype,
        args: NetworkArgs,
        *,
        drop_path_rate: float,
        pretrained_cfg: Mapping[str, Any] | None,
        num_cells: int,
        aux_classes: int,
    ) -> None:
        super().__init__()
        layout = _check(genotype, args, drop_path_rate)
        self.genotype, self.args = genotype, args
        self.pretrained_cfg = pretrained_cfg_for(args, **(pretrained_cfg or {}))
        body = _build_body(genotype, args, layout, num_cells, aux_classes)
        self.stem0, self.stem1 = body.stem0, body.stem1
        self.drop_path_prob = drop_path_rate  # the training task ramps it per epoch
        self.cells = body.cells
        self.aux_head = body.aux_head
        self.feature_info = body.feature_info

    def _stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, (s0 if self.stem1 is None else self.stem1(s0))


def _classifier(in_features: int, num_classes: int, like: nn.Module | None = None) -> nn.Module:
    """A linear classifier, or Identity for 0 classes (timm's headless model), on `like`'s device and dtype."""
    if num_classes == 0:
        return nn.Identity()
    param = next(like.parameters(), None) if like is not None else None
    if param is None:
        return nn.Linear(in_features, num_classes)
    return nn.Linear(in_features, num_classes, device=param.device, dtype=param.dtype)


class CellNetwork(_CellStack):
    """Stem, `layers` cells with reductions at layers//3 and 2*layers//3, global pool, linear classifier.

    `forward(x)` returns logits in train and eval mode; `forward_train(x)` adds the auxiliary head's
    logits. `num_classes` 0 builds no classifier and no auxiliary head (`forward` gives pooled features).
    """

    def __init__(
        self,
        genotype: Genotype,
        args: NetworkArgs,
        *,
        drop_path_rate: float = 0.0,
        pretrained_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        if args.num_classes == 0:
            args = replace(args, auxiliary=False)
        aux_classes = args.num_classes if args.auxiliary else 0
        super().__init__(
            genotype,
            args,
            drop_path_rate=drop_path_rate,
            pretrained_cfg=pretrained_cfg,
            num_cells=args.layers,
            aux_classes=aux_classes,
        )
        self.aux_index = _reductions(args)[1]
        self.num_features: int = self.feature_info.channels(-1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _classifier(self.num_features, args.num_classes)

    @property
    def num_classes(self) -> int:
        return self.args.num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last cell's feature map (`num_features` channels), before global pooling."""
        s0, s1 = self._stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return s1

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool and classifier; with `pre_logits`, the pooled `num_features` vector."""
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and the auxiliary head's logits (None without one) from one pass, for the training loss."""
        s0, s1 = self._stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.aux_head is not None:
                aux_logits = self.aux_head(s1)
        return self.forward_head(s1), aux_logits

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Fresh classifiers (main and auxiliary) for `num_classes`; 0 removes both, as timm's Identity head.

        The other weights are kept. `pretrained_cfg` still describes where the weights came from, as in timm.
        """
        if global_pool not in (None, "avg"):
            raise GdasError(f"global_pool {global_pool!r}: these networks pool by average only ('avg')")
        if num_classes < 0:
            raise GdasError(f"num_classes must be >= 0, got {num_classes}")
        self.classifier = _classifier(self.num_features, num_classes, like=self.stem0)
        if num_classes == 0:
            self.aux_head = None
        elif self.aux_head is not None:
            self.aux_head.reset_classifier(num_classes)
        self.args = replace(self.args, num_classes=num_classes, auxiliary=self.aux_head is not None)


class CellFeatures(_CellStack):
    """A backbone: `forward(x)` returns the feature maps of the `feature_info` levels in `out_indices`.

    The levels are the stem, then the deepest cell at each stride (see `CellNetwork.feature_info`).
    Cells after the last chosen level are not built; weight names are CellNetwork's, so a classifier's
    state dict loads with `strict=False` (its head and later cells are the unexpected keys).
    """

    def __init__(
        self,
        genotype: Genotype,
        args: NetworkArgs,
        *,
        out_indices: Sequence[int] | None = None,
        drop_path_rate: float = 0.0,
        pretrained_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        levels = _level_cells(args)
        indices = _out_indices(out_indices, len(levels))
        taps = [levels[i] for i in indices]
        super().__init__(
            genotype,
            args,
            drop_path_rate=drop_path_rate,
            pretrained_cfg=pretrained_cfg,
            num_cells=max(taps) + 1,
            aux_classes=0,
        )
        self.out_indices = indices
        self.feature_info = FeatureInfo(self.feature_info[i] for i in indices)
        self._taps = taps

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s0, s1 = self._stem(x)
        features = [s0] if -1 in self._taps else []
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i in self._taps:
                features.append(s1)
        return features


def _out_indices(out_indices: Sequence[int] | None, count: int) -> tuple[int, ...]:
    """Levels 0..count-1 (negative counts from the end), sorted and without repeats; None: all."""
    if out_indices is None:
        return tuple(range(count))
    picked = tuple(out_indices) if isinstance(out_indices, (list, tuple, range)) else ()
    if not picked or not all(isinstance(i, int) and not isinstance(i, bool) and -count <= i < count for i in picked):
        raise GdasError(
            f"out_indices {out_indices!r}: a sequence of levels among 0..{count - 1} "
            "(0 the stem, then the deepest cell at each stride; negative from the end)"
        )
    return tuple(sorted({i % count for i in picked}))


class TrainForward(nn.Module):
    """Calls `network.forward_train` as its `forward`, so DDP and torch.compile (which run `forward`)
    see the auxiliary logits; the network's own `forward` keeps returning logits only."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return cast(_TrainsWithAux, self.network).forward_train(x)


class _TrainsWithAux(Protocol):
    """A network with an auxiliary-head training forward (every family's networks have one)."""

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def cell_network_args(genotype: Genotype, net: str, num_classes: int) -> NetworkArgs:
    """The paper's widths: CIFAR C=36 with 20 cells; ImageNet 14 cells, C=50, or 52 with the FRC (C % 8)."""
    if net == "cifar":
        return NetworkArgs(net="cifar", C=36, layers=20, num_classes=num_classes)
    if net == "imagenet":
        return NetworkArgs(net="imagenet", C=52 if genotype.uses_frc else 50, layers=14, num_classes=num_classes)
    raise GdasError(f"unknown network {net!r}; known: {', '.join(NETS)}")


def build_cell_network(
    genotype: Genotype,
    args: NetworkArgs,
    *,
    drop_path_rate: float = 0.0,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
) -> CellNetwork | CellFeatures:
    """The final network of `genotype` with `args`, as timm's `create_model` options go:

    `drop_path_rate`: the initial drop-path probability (training ramps `drop_path_prob` itself);
    `features_only`: a `CellFeatures` backbone returning the `out_indices` levels (default: all);
    `pretrained_cfg`: fields over the layout's `pretrained_cfg` defaults (see `pretrained_cfg_for`).
    """
    options: dict[str, Any] = {"drop_path_rate": drop_path_rate, "pretrained_cfg": pretrained_cfg}
    if features_only:
        return CellFeatures(genotype, args, out_indices=out_indices, **options)
    if out_indices is not None:
        raise GdasError("out_indices chooses feature maps: it needs features_only=True")
    return CellNetwork(genotype, args, **options)
