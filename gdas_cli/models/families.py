"""The final networks of every search space, registered by the space's name (`spaces.SPACES`).

A `Family` says which macro networks (`NetworkArgs.net`) a space's genotypes build, the widths each
defaults to, what `gdas genotypes info --net` counts them on, and how to build one; `build_network` and
`default_args` look the genotype's space up instead of branching on it. Language models (the
`darts_rnn` space) are built by `models.rnn` from a corpus's vocabulary, so they have no image family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, overload

from torch import nn

from ..errors import GdasError
from ..genotype import Genotype
from .nb201 import NB201Classifier
from .networks import NB201_NET, CellFeatures, CellNetwork, NetworkArgs, build_cell_network, cell_network_args

# the image classifiers genotypes build: DARTS cell networks and NAS-Bench-201 networks
Network = CellNetwork | NB201Classifier


@dataclass(frozen=True)
class Target:
    """A network `gdas genotypes info --net NAME` counts: its macro network, classes and input side."""

    net: str
    classes: int
    side: int


@dataclass(frozen=True)
class Family:
    """The image networks of one search space."""

    nets: tuple[str, ...]
    min_layers: int  # cells (DARTS: the two reductions need 3), or cells per stage (NAS-Bench-201)
    build: Callable[..., nn.Module]
    widths: Callable[[Genotype, str, int], NetworkArgs]  # the defaults of (genotype, net, classes)
    targets: Mapping[str, Target]
    # mult-adds as the space's own tables count them: NAS-Bench-201's FLOPs (xautodl's get_model_infos)
    # also count the classifier's bias additions
    counts_bias: bool = False


def _nb201(genotype: Genotype, args: NetworkArgs, **options: Any) -> NB201Classifier:
    if options.pop("features_only", False) or options.pop("out_indices", None) is not None:
        raise GdasError("features_only: NAS-Bench-201 networks have no feature-pyramid backbone here")
    return NB201Classifier(genotype, args, **options)


def _nb201_widths(genotype: Genotype, net: str, num_classes: int) -> NetworkArgs:
    """The benchmark's network: C=16, N=5 cells per stage, no auxiliary head (NAS-Bench-201 Sec. 2.1)."""
    if net != NB201_NET:
        raise GdasError(f"{genotype.ref}: a NAS-Bench-201 genotype builds the {NB201_NET!r} network, not {net!r}")
    return NetworkArgs(net=NB201_NET, C=16, layers=5, num_classes=num_classes, auxiliary=False)


FAMILIES: dict[str, Family] = {
    "darts": Family(
        nets=("cifar", "imagenet"),
        min_layers=3,
        build=build_cell_network,
        widths=cell_network_args,
        targets={
            "cifar10": Target("cifar", 10, 32),
            "cifar100": Target("cifar", 100, 32),
            "imagenet": Target("imagenet", 1000, 224),
        },
    ),
    "nas-bench-201": Family(
        nets=(NB201_NET,),
        min_layers=1,
        build=_nb201,
        widths=_nb201_widths,
        targets={
            "cifar10": Target(NB201_NET, 10, 32),
            "cifar100": Target(NB201_NET, 100, 32),
            "imagenet16-120": Target(NB201_NET, 120, 16),
        },
        counts_bias=True,
    ),
}


def family_of(genotype: Genotype) -> Family:
    """The image networks of the genotype's space; a space without any is one GdasError."""
    if genotype.space not in FAMILIES:
        raise GdasError(
            f"{genotype.ref}: a {genotype.space} genotype builds no image network "
            f"(language models: gdas train ptb|wt2|demo-text)"
        )
    return FAMILIES[genotype.space]


def default_args(genotype: Genotype, net: str, num_classes: int) -> NetworkArgs:
    """The default widths of the genotype's network `net` (the paper's, or the benchmark's)."""
    return family_of(genotype).widths(genotype, net, num_classes)


@overload
def build_network(
    genotype: Genotype,
    args: NetworkArgs,
    *,
    drop_path_rate: float = ...,
    features_only: Literal[False] = ...,
    out_indices: None = ...,
    pretrained_cfg: Mapping[str, Any] | None = ...,
) -> Network: ...


@overload
def build_network(
    genotype: Genotype,
    args: NetworkArgs,
    *,
    drop_path_rate: float = ...,
    features_only: Literal[True],
    out_indices: Sequence[int] | None = ...,
    pretrained_cfg: Mapping[str, Any] | None = ...,
) -> CellFeatures: ...


def build_network(
    genotype: Genotype,
    args: NetworkArgs,
    *,
    drop_path_rate: float = 0.0,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
) -> Network | CellFeatures:
    """The final network of `genotype` with `args`, as timm's `create_model` options go (its space's family):

    `drop_path_rate`: the initial drop-path probability (training ramps `drop_path_prob` itself);
    `features_only`: a backbone returning the `out_indices` feature levels (DARTS networks);
    `pretrained_cfg`: fields over the network's `pretrained_cfg` defaults (see `pretrained_cfg_for`).
    """
    family = family_of(genotype)
    if args.net not in family.nets:
        raise GdasError(
            f"{genotype.ref}: a {genotype.space} genotype builds {' or '.join(family.nets)} networks, not {args.net!r}"
        )
    options: dict[str, Any] = {"drop_path_rate": drop_path_rate, "pretrained_cfg": pretrained_cfg}
    if features_only or out_indices is not None:
        options.update(features_only=features_only, out_indices=out_indices)
    return cast(Network | CellFeatures, family.build(genotype, args, **options))
