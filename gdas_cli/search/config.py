"""The resolved configuration of a CNN search, and the recipes it starts from.

Resolution, lowest first: dataclass defaults (the paper's), the recipe (`paper` or `xautodl`), the
sizing rule for data sets other than the paper's (`sizing.search_sizes`: folders, the built-in
digits), then every option the user gave. Each value's source (you, rule, paper, 2019 code, 2020
code) is kept in `sources`, which the plan shows. The result is saved as `config.json` in the run
directory and compared on `--resume`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..data import default_hflip, flip_source
from ..engine import check_finite, config_from_dict
from ..errors import GdasError
from ..limits import MAX_CELLS_PER_STAGE
from ..limits import MAX_SEARCH_CHANNELS as MAX_CHANNELS
from ..sizing import DataFacts, Machine, plan_sources, search_sizes, uses_rule


@dataclass
class SearchConfig:
    """Everything that fixes a search run (the paper recipe by default)."""

    dataset: str = "cifar10"
    data_dir: str | None = None
    space: str = "darts"  # the search space (spaces.SPACES): darts or nas-bench-201
    recipe: str = "paper"
    epochs: int = 240
    batch_size: int = 128
    lr: float = 0.025
    lr_min: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = False
    grad_clip: float = 5.0
    grad_clip_with_alphas: bool = False  # xautodl: the W step's clip norm counts the alphas' gradients too
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    tau_max: float = 10.0
    tau_min: float = 1.0
    channels: int = 16
    cells_per_stage: int = 2
    frc: bool = False
    sampling: str = "cell"
    layout: str = "paper"
    ops: str = "paper"  # the supernet's op set (ops.SEARCH_OPS): the 2019 code's or xautodl's
    # NAS-Bench-201 supernets (xautodl's TinyNetworkGDAS): BN running statistics in the search cells, and
    # xautodl's gradient to the unchosen ops' weights (search/nb201_supernet.py)
    track_stats: bool = False
    unchosen_grads: bool = False
    nas_bench: str | None = None  # a NATS-Bench topology benchmark each epoch's cell is looked up in
    seed: int = 0
    split_seed: int | None = None
    image_size: int | None = None  # None: the data set's own side
    hflip: bool | None = None  # None: the data set's default (CIFAR and folders flip, digits do not)
    cutout: int = 0  # the 2019 code searches without cutout
    limit_train_batches: int | None = None
    workers: int = 0
    # filled in from the data when the search starts: what its images were normalised with
    mean: list[float] | None = None
    std: list[float] | None = None
    label_names: list[str] | None = None
    sources: dict[str, str] = dataclasses.field(default_factory=dict)  # each setting's source, for the plan

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> SearchConfig:
        config = config_from_dict(cls, data, source, "search configuration")
        config.arch_betas = tuple(config.arch_betas)
        return config


RECIPES: dict[str, dict[str, Any]] = {
    # The paper (Sec. 4.1) plus the 2019 code's Adam betas, ops, sampling and weights-only clip.
    "paper": {
        "epochs": 240,
        "batch_size": 128,
        "weight_decay": 3e-4,
        "nesterov": False,
        "tau_min": 1.0,
        "layout": "paper",
        "ops": "paper",
        "sampling": "cell",
        "grad_clip_with_alphas": False,
    },
    # xautodl 1.0.0 as its scripts run it: 250 epochs, batch 256, wd 5e-4, nesterov, tau to 0.1, the
    # 6-cell layout with a BN-ReLU head, its ops, one draw per cell type, and a clip over all parameters.
    "xautodl": {
        "epochs": 250,
        "batch_size": 256,
        "weight_decay": 5e-4,
        "nesterov": True,
        "tau_min": 0.1,
        "layout": "xautodl",
        "ops": "xautodl",
        "sampling": "batch",
        "grad_clip_with_alphas": True,
    },
    # The released GDAS search of the NAS-Bench-201 space (AutoDL-Projects scripts-search/NAS-Bench-201-algos/
    # GDAS.sh, exps/NAS-Bench-201-algos/GDAS.py, configs/nas-benchmark/algos/GDAS.config; docs/nas-bench-201.md):
    # TinyNetworkGDAS with C=16, N=5, 240 epochs of batch 64, SGD 0.025 nesterov wd 5e-4 cosine to 1e-3,
    # Adam 3e-4 wd 1e-3, tau 10 -> 0.1, a clip over all parameters, one draw per forward.
    "nas-bench-201": {
        "epochs": 240,
        "batch_size": 64,
        "lr": 0.025,
        "lr_min": 1e-3,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "nesterov": True,
        "grad_clip": 5.0,
        "grad_clip_with_alphas": True,
        "arch_lr": 3e-4,
        "arch_betas": (0.5, 0.999),
        "arch_weight_decay": 1e-3,
        "tau_max": 10.0,
        "tau_min": 0.1,
        "channels": 16,
        "cells_per_stage": 5,
        "sampling": "batch",
        "track_stats": False,  # GDAS.sh's usage line: `GDAS.sh cifar10 0 -1`
        "unchosen_grads": True,
    },
}
# The recipes of each search space, its default first.
SPACE_RECIPES: dict[str, tuple[str, ...]] = {"darts": ("paper", "xautodl"), "nas-bench-201": ("nas-bench-201",)}
# settings that belong to one space's supernet: given for another space they are refused
SPACE_SETTINGS: dict[str, frozenset[str]] = {
    "darts": frozenset({"frc", "layout"}),
    "nas-bench-201": frozenset({"track_stats", "unchosen_grads", "nas_bench"}),
}

# Where each default of the paper recipe comes from (README "Search a cell"); the xautodl recipe's own
# values come from the 2020 code.
PAPER_SOURCES: dict[str, str] = {
    "epochs": "paper",
    "batch_size": "2019 code",
    "lr": "paper",
    "lr_min": "paper",
    "momentum": "paper",
    "weight_decay": "paper",
    "nesterov": "2019 code",
    "grad_clip": "2019 code",
    "grad_clip_with_alphas": "2019 code",
    "arch_lr": "paper",
    "arch_betas": "2019 code",
    "arch_weight_decay": "paper",
    "tau_max": "paper",
    "tau_min": "paper",
    "channels": "paper",
    "cells_per_stage": "paper",
    "frc": "paper",
    "sampling": "2019 code",
    "layout": "2019 code",
    "ops": "2019 code",
    "image_size": "data",
    "hflip": "2019 code",
    "cutout": "2019 code",
    "workers": "ours",
    "seed": "ours",
    "track_stats": "2020 code",
    "unchosen_grads": "2020 code",
}
PLANNED = tuple(PAPER_SOURCES)  # the settings a plan lists
NOT_PLANNED = {"darts": {"track_stats", "unchosen_grads"}, "nas-bench-201": {"frc", "layout", "ops"}}


def recipe_sources(recipe: str) -> dict[str, str]:
    """The source of each value of `recipe`: the paper's table, with the 2020 code's own values (xautodl's
    DARTS recipe, the released NAS-Bench-201 one)."""
    return PAPER_SOURCES if recipe == "paper" else {**PAPER_SOURCES, **dict.fromkeys(RECIPES[recipe], "2020 code")}


def resolve_config(
    recipe: str | None,
    dataset: str,
    overrides: dict[str, Any],
    facts: DataFacts | None = None,
    machine: Machine | None = None,
) -> SearchConfig:
    """Defaults < recipe (default: the space's first) < the sizing rule (data sets but the paper's, given
    `facts` and `machine`) < `overrides` (the options the user gave; None = not given). `sources` says
    where each value came from."""
    given = {k: v for k, v in overrides.items() if v is not None}
    space = given.get("space", "darts")
    if space not in SPACE_RECIPES:
        raise GdasError(f"--space: {space!r} must be one of {', '.join(SPACE_RECIPES)} (RNN cells: gdas search rnn)")
    recipe = recipe or SPACE_RECIPES[space][0]
    if recipe not in SPACE_RECIPES[space]:
        raise GdasError(
            f"--recipe: {recipe!r} is not a recipe of the {space} space ({', '.join(SPACE_RECIPES[space])})"
        )
    for other, settings in SPACE_SETTINGS.items():
        stray = sorted(settings & set(given)) if other != space else []
        if stray:
            raise GdasError(f"--{stray[0].replace('_', '-')}: a setting of the {other} space's supernet, not {space}'s")
    sized = facts is not None and machine is not None and uses_rule(dataset)
    rule = search_sizes(facts, machine, space) if sized and facts is not None and machine is not None else {}
    config = SearchConfig(recipe=recipe, dataset=dataset, **{**RECIPES[recipe], **rule, **given})
    planned = [key for key in PLANNED if key not in NOT_PLANNED[space]]
    config.sources = plan_sources(planned, recipe_sources(recipe), rule, given)
    if config.hflip is None:
        config.hflip, config.sources["hflip"] = default_hflip(dataset), flip_source(dataset)
    if config.image_size is None and facts is not None:
        config.image_size = facts.image_size
    return config


def check_config(config: SearchConfig) -> None:
    """Option-level checks, each naming the option, before anything is built or written."""
    check_finite(config)
    beta1, beta2 = config.arch_betas
    rules = [
        (config.epochs >= 1, f"--epochs: {config.epochs} must be >= 1"),
        (config.batch_size >= 2, f"--batch-size: {config.batch_size} must be >= 2 (batch norm needs 2 examples)"),
        (config.lr > 0 and config.lr_min >= 0, "--lr/--lr-min must be positive"),
        (config.tau_max > 0 and config.tau_min > 0, "--tau-max/--tau-min must be positive"),
        (config.channels >= 2 and config.channels % 2 == 0, f"--channels: {config.channels} must be even and >= 2"),
        (
            not config.frc or config.channels % 8 == 0,
            f"--channels: {config.channels} must be a multiple of 8 with --frc "
            "(grouped convs of the fixed reduction cell)",
        ),
        (config.cells_per_stage >= 1, f"--cells-per-stage: {config.cells_per_stage} must be >= 1"),
        (config.limit_train_batches is None or config.limit_train_batches >= 1, "--limit-train-batches must be >= 1"),
        (config.image_size is None or 8 <= config.image_size <= 1024, "--image-size must be in 8..1024"),
        (config.cutout >= 0, f"--cutout: {config.cutout} must be >= 0 (0: off)"),
        (0 <= config.momentum < 1, f"--momentum: {config.momentum} must be in [0, 1)"),
        (config.weight_decay >= 0, f"--weight-decay: {config.weight_decay} must be >= 0"),
        (config.grad_clip >= 0, f"--grad-clip: {config.grad_clip} must be >= 0 (0: no clipping)"),
        (config.arch_lr > 0, f"--arch-lr: {config.arch_lr} must be positive"),
        (0 <= beta1 < 1 and 0 <= beta2 < 1, f"--arch-beta1/--arch-beta2: {beta1}, {beta2} must be in [0, 1)"),
        (config.arch_weight_decay >= 0, f"--arch-weight-decay: {config.arch_weight_decay} must be >= 0"),
        (config.tau_min <= config.tau_max, f"--tau-min: {config.tau_min} must not exceed --tau-max {config.tau_max}"),
        (config.workers >= 0, f"--workers: {config.workers} must be >= 0"),
        (config.channels <= MAX_CHANNELS, f"--channels: {config.channels} must be at most {MAX_CHANNELS}"),
        (
            config.cells_per_stage <= MAX_CELLS_PER_STAGE,
            f"--cells-per-stage: {config.cells_per_stage} must be at most {MAX_CELLS_PER_STAGE}",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise GdasError(message)
