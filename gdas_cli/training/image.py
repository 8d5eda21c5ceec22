"""Final training of a genotype's network: the paper's recipes and the engine task that runs them."""

from __future__ import annotations

import functools
import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import WEIGHTS_FILE, write_json
from ..data import Augment, ImageData, default_hflip, flip_source, holdout_indices, load_images, make_batches
from ..engine import EngineConfig, Runtime, Task, check_finite, config_from_dict, run_task
from ..errors import GdasError
from ..genotype import MAX_NETWORK_CELLS, MAX_NETWORK_CHANNELS, Genotype, check_frc_channels
from ..metrics import topk_correct
from ..models import FAMILIES, INPUTS, Network, NetworkArgs, TrainForward, build_network, default_args
from ..progress import track
from ..rundir import RunDir, run_record
from ..sizing import DataFacts, Machine, plan_sources, train_sizes, uses_rule, workers
from ..weights import load_tensors_into, read_metadata, save_network


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of a final-training recipe; every field is a `gdas train` option."""

    net: str
    C: int | None  # None: the paper's width for the genotype (ImageNet: 50, or 52 with the FRC)
    layers: int
    epochs: int
    batch_size: int
    lr: float
    lr_min: float
    schedule: str  # cosine (to lr_min) | exponential (x lr_gamma per epoch)
    lr_gamma: float
    momentum: float
    nesterov: bool
    weight_decay: float
    grad_clip: float
    auxiliary: bool
    aux_weight: float
    drop_path: float
    label_smoothing: float
    cutout: int


RECIPES: dict[str, Recipe] = {
    # paper section 4.2 and the 2019 code (reference section 9.1): cosine to 1e-4, batch 96
    "cifar": Recipe(
        net="cifar",
        C=36,
        layers=20,
        epochs=600,
        batch_size=96,
        lr=0.025,
        lr_min=1e-4,
        schedule="cosine",
        lr_gamma=0.97,
        momentum=0.9,
        nesterov=False,
        weight_decay=3e-4,
        grad_clip=5.0,
        auxiliary=True,
        aux_weight=0.4,
        drop_path=0.2,
        label_smoothing=0.0,
        cutout=16,
    ),
    # ImageNet mobile setting (reference section 9.2)
    # the NAS-Bench-201 benchmark's own training of every cell (AutoDL-Projects configs/nas-benchmark/hyper-opts/
    # 200E.config; docs/nas-bench-201.md): TinyNetwork C=16, N=5, SGD 0.1 nesterov wd 5e-4, batch 256, cosine to 0,
    # 200 epochs, crop and flip, no clip, no auxiliary head, no drop-path, no cutout
    "nb201": Recipe(
        net="nb201",
        C=16,
        layers=5,
        epochs=200,
        batch_size=256,
        lr=0.1,
        lr_min=0.0,
        schedule="cosine",
        lr_gamma=0.97,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        grad_clip=0.0,
        auxiliary=False,
        aux_weight=0.0,
        drop_path=0.0,
        label_smoothing=0.0,
        cutout=0,
    ),
    "imagenet": Recipe(
        net="imagenet",
        C=None,
        layers=14,
        epochs=250,
        batch_size=128,
        lr=0.1,
        lr_min=0.0,
        schedule="exponential",
        lr_gamma=0.97,
        momentum=0.9,
        nesterov=True,
        weight_decay=3e-5,
        grad_clip=5.0,
        auxiliary=True,
        aux_weight=0.4,
        drop_path=0.0,
        label_smoothing=0.1,
        cutout=0,
    ),
}
SCHEDULES = ("cosine", "exponential")

# Where each value of the two recipes comes from (README "Train and evaluate"); a data set other than
# the paper's takes the CIFAR recipe with the sizing rule's values on top (sizing.train_sizes).
RECIPE_SOURCES: dict[str, dict[str, str]] = {
    "cifar": {
        "C": "paper",
        "layers": "paper",
        "epochs": "paper",
        "batch_size": "2019 code",
        "lr": "paper",
        "lr_min": "2019 code",
        "schedule": "paper",
        "momentum": "2019 code",
        "nesterov": "2019 code",
        "weight_decay": "2019 code",
        "grad_clip": "2019 code",
        "auxiliary": "paper",
        "aux_weight": "paper",
        "drop_path": "paper",
        "label_smoothing": "2019 code",
        "cutout": "2019 code",
    },
    "imagenet": {
        "C": "paper",
        "layers": "paper",
        "epochs": "paper",
        "batch_size": "paper",
        "lr": "paper",
        "schedule": "paper",
        "lr_gamma": "paper",
        "momentum": "2019 code",
        "nesterov": "2019 code",
        "weight_decay": "2019 code",
        "grad_clip": "2019 code",
        "auxiliary": "2019 code",
        "aux_weight": "2019 code",
        "drop_path": "2019 code",
        "label_smoothing": "2019 code",
        "cutout": "2019 code",
    },
}
RECIPE_SOURCES["nb201"] = dict.fromkeys(RECIPE_SOURCES["cifar"], "2020 code")
PLANNED = (*RECIPE_SOURCES["cifar"], "image_size", "hflip", "workers")
# the training recipe of a space's genotypes, where it is not the recipe of their network family
SPACE_RECIPES = {"nas-bench-201": "nb201"}


def recipe_for(dataset: str, net: str | None = None, space: str = "darts") -> Recipe:
    """A NAS-Bench-201 genotype -> the benchmark's recipe; imagenet -> the ImageNet recipe; any other set ->
    the recipe of its network family (CIFAR's by default)."""
    if space in SPACE_RECIPES:
        return RECIPES[SPACE_RECIPES[space]]
    return RECIPES[net or ("imagenet" if dataset == "imagenet" else "cifar")]


@dataclass
class TrainConfig:
    """The resolved task config, saved under "task" in config.json (a resumed run reads it back)."""

    dataset: str
    genotype: dict[str, Any]
    genotype_ref: str
    net: str
    C: int
    layers: int
    epochs: int
    batch_size: int
    lr: float
    lr_min: float
    schedule: str
    lr_gamma: float
    momentum: float
    nesterov: bool
    weight_decay: float
    grad_clip: float
    auxiliary: bool
    aux_weight: float
    drop_path: float
    label_smoothing: float
    cutout: int
    augment: bool = True
    data_dir: str = "data"
    download: bool = False
    workers: int = 4
    limit_eval_batches: int = 0
    init: dict[str, Any] | None = None  # where the starting weights came from (gdas train --init), provenance
    val_split: int = 0  # images held out of the training set to choose checkpoint/best (0: no best)
    split_seed: int | None = None  # the seed of that split (default: the run's seed), recorded
    num_classes: int | None = None  # filled in from the data
    # filled in from the data too: what a published model must record to be used on new images
    mean: list[float] | None = None
    std: list[float] | None = None
    label_names: list[str] | None = None
    image_size: int | None = None  # the square side images are resized to (None: the data set's own)
    hflip: bool | None = None  # flip training images (None: the data set's default)
    sources: dict[str, str] = field(default_factory=dict)  # each setting's source, for the plan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> TrainConfig:
        return config_from_dict(cls, data, source, "training config")


def make_config(
    dataset: str,
    genotype: Genotype,
    overrides: dict[str, Any],
    facts: DataFacts | None = None,
    machine: Machine | None = None,
) -> TrainConfig:
    """The recipe for `dataset` (with the sizing rule on top for a set other than the paper's, given its
    `facts` and the `machine`), every non-None value of `overrides` applied, validated; `sources` says
    where each value came from."""
    check_image_genotype(genotype, genotype.ref)
    given = {k: v for k, v in overrides.items() if v is not None}
    recipe = recipe_for(dataset, given.get("net"), genotype.space)
    uses = facts is not None and machine is not None and uses_rule(dataset) and recipe.net != "imagenet"
    rule = train_sizes(facts, machine, genotype.space) if uses and facts is not None and machine is not None else {}
    values = asdict(recipe)
    known = {f.name for f in fields(TrainConfig)}
    fixed = {"dataset", "genotype", "genotype_ref", "num_classes", "sources"}
    extra = {k: v for k, v in {**rule, **given}.items() if k not in values and k not in fixed and k in known}
    values.update({k: v for k, v in {**rule, **given}.items() if k in values})
    if values["C"] is None:
        values["C"] = default_args(genotype, values["net"], 1000).C
    config = TrainConfig(dataset=dataset, genotype=genotype.to_dict(), genotype_ref=genotype.ref, **values, **extra)
    config.sources = plan_sources(list(PLANNED), RECIPE_SOURCES[recipe.net], rule, given)
    if config.hflip is None:
        config.hflip, config.sources["hflip"] = default_hflip(dataset), flip_source(dataset)
    if config.image_size is None and facts is not None and config.net != "imagenet":
        config.image_size, config.sources["image_size"] = facts.image_size, "data"
    if "workers" not in given and "workers" not in rule and machine is not None:
        config.workers, config.sources["workers"] = workers(machine), "ours"
    validate_config(config, genotype)
    return config


def check_image_genotype(genotype: Genotype, ref: str) -> None:
    """A genotype whose space builds image networks (not a recurrent cell)."""
    if genotype.space not in FAMILIES:
        raise GdasError(
            f"--genotype {ref}: a {genotype.kind} genotype builds no CNN; use a cnn genotype (gdas genotypes list "
            "--kind cnn)"
        )


def validate_config(cfg: TrainConfig, genotype: Genotype) -> None:
    """Every bad value is one GdasError naming its option; checked before anything is loaded or written."""
    check_image_genotype(genotype, cfg.genotype_ref)
    family = FAMILIES[genotype.space]
    checks = [
        (cfg.epochs >= 1, "--epochs", cfg.epochs, "must be at least 1"),
        (cfg.batch_size >= 1, "--batch-size", cfg.batch_size, "must be at least 1"),
        (cfg.C >= 2, "--channels", cfg.C, "must be at least 2"),
        (cfg.layers >= family.min_layers, "--layers", cfg.layers, f"must be at least {family.min_layers}"),
        (cfg.lr > 0, "--lr", cfg.lr, "must be positive"),
        (cfg.lr_min >= 0, "--lr-min", cfg.lr_min, "must be >= 0"),
        (cfg.schedule in SCHEDULES, "--schedule", cfg.schedule, f"must be one of {', '.join(SCHEDULES)}"),
        (0 < cfg.lr_gamma <= 1, "--lr-gamma", cfg.lr_gamma, "must be in (0, 1]"),
        (0 <= cfg.momentum < 1, "--momentum", cfg.momentum, "must be in [0, 1)"),
        (cfg.weight_decay >= 0, "--weight-decay", cfg.weight_decay, "must be >= 0"),
        (cfg.grad_clip >= 0, "--grad-clip", cfg.grad_clip, "must be >= 0 (0: no clipping)"),
        (cfg.aux_weight >= 0, "--aux-weight", cfg.aux_weight, "must be >= 0"),
        (0 <= cfg.drop_path < 1, "--drop-path", cfg.drop_path, "must be in [0, 1)"),
        (0 <= cfg.label_smoothing < 1, "--label-smoothing", cfg.label_smoothing, "must be in [0, 1)"),
        (cfg.cutout >= 0, "--cutout", cfg.cutout, "must be >= 0"),
        (cfg.workers >= 0, "--workers", cfg.workers, "must be >= 0"),
        (cfg.limit_eval_batches >= 0, "--limit-eval-batches", cfg.limit_eval_batches, "must be >= 0"),
        (cfg.val_split >= 0, "--val-split", cfg.val_split, "must be >= 0 (0: no validation split)"),
        (cfg.net in family.nets, "--net", cfg.net, f"must be {' or '.join(family.nets)} for this genotype"),
        (cfg.image_size is None or 8 <= cfg.image_size <= 1024, "--image-size", cfg.image_size, "must be in 8..1024"),
        (cfg.C <= MAX_NETWORK_CHANNELS, "--channels", cfg.C, f"must be at most {MAX_NETWORK_CHANNELS}"),
        (cfg.layers <= MAX_NETWORK_CELLS, "--layers", cfg.layers, f"must be at most {MAX_NETWORK_CELLS}"),
    ]
    check_finite(cfg)
    check_frc_channels(genotype, cfg.C)
    if cfg.net == "cifar" and cfg.auxiliary and cfg.image_size not in (None, 32):
        raise GdasError(
            f"--image-size: {cfg.image_size} needs --no-aux (the CIFAR network's auxiliary head pools the 8x8 maps "
            "of 32x32 inputs)"
        )
    for ok, option, value, problem in checks:
        if not ok:
            raise GdasError(f"{option}: {problem}, got {value}")


def replan_cosine(scheduler: Any, optimizer: torch.optim.Optimizer, epochs: int) -> None:
    """An extended run (`--resume --epochs N`): the cosine of an N-epoch run from the current epoch on.

    The scheduler steps multiplicatively from the current learning rate, so the rate is reset to the
    N-epoch cosine's value at this epoch; the next steps then follow that cosine.
    """
    if scheduler.T_max == epochs:
        return
    scheduler.T_max = epochs
    done = scheduler.last_epoch
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        floor = scheduler.eta_min
        group["lr"] = floor + (base - floor) * (1 + math.cos(math.pi * done / epochs)) / 2


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """Stepped once per epoch: cosine from lr to lr_min over the epochs, or lr x lr_gamma per epoch."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs, cfg.lr_min)
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, cfg.lr_gamma)


class TrainTask(Task):
    """Final training: SGD with the recipe's schedule, auxiliary loss, drop-path ramp, clipping.

    With a validation split (`val_split` images held out of the training set, seeded), checkpoint/best
    is the epoch of the best validation top-1; the test split never chooses anything. Without one
    there is no best: the final epoch is the result, as the paper reports it.
    """

    kind = "train"
    resume_may_change = frozenset({"data_dir", "download", "workers"})  # where the data is and how it is read

    def __init__(self, cfg: TrainConfig, data: ImageData | None = None, init: Network | None = None) -> None:
        self.cfg = cfg
        self.init = init
        self.genotype = Genotype.from_dict(cfg.genotype, "config genotype")
        self.data = data
        self.best_metric = ("valid_top1", "max") if cfg.val_split else None
        self.split: tuple[list[int], list[int]] | None = None

    def config_dict(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def run_record(self) -> dict[str, Any]:
        figures = {"train": {"loss": "train_loss", "top1": "train_top1"}}
        if self.cfg.val_split:
            figures["valid"] = {"loss": "valid_loss", "top1": "valid_top1"}
        figures["test"] = {"loss": "test_loss", "top1": "test_top1"}
        space, ref = self.genotype.space, self.genotype.ref
        return run_record("gdas train", dataset=self.cfg.dataset, space=space, genotype=ref, figures=figures)

    def setup(self, rt: Runtime) -> None:
        cfg = self.cfg
        loader = INPUTS[cfg.net].data
        data = self.data or load_images(
            cfg.dataset, cfg.data_dir, download=cfg.download, net=loader, image_size=cfg.image_size
        )
        if data.net != loader:
            raise GdasError(
                f"--net {cfg.net}: {data.name} has {data.image_size}x{data.image_size} images, "
                f"which suit the {data.net} network"
            )
        cfg.num_classes = data.num_classes
        cfg.mean, cfg.std = [float(v) for v in data.mean], [float(v) for v in data.std]
        classes = data.extra.get("classes")
        cfg.label_names = [str(name) for name in classes] if classes else None
        self._build_model(rt, data.num_classes)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=cfg.nesterov and cfg.momentum > 0,
        )
        self.scheduler = make_scheduler(self.optimizer, cfg)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self._build_sources(rt, data)

    def _build_model(self, rt: Runtime, num_classes: int) -> None:
        cfg = self.cfg
        args = NetworkArgs(net=cfg.net, C=cfg.C, layers=cfg.layers, num_classes=num_classes, auxiliary=cfg.auxiliary)
        self.model: Network = build_network(self.genotype, args)
        if self.init is not None and self.cfg.init is not None:
            self.cfg.init["fresh"] = start_from(self.model, self.init, self.cfg.init.get("ref", "--init"))
        self.module = rt.prepare_model(TrainForward(self.model))  # DDP/compile run forward: here forward_train
        if rt.compile and cfg.drop_path > 0 and rt.is_main:
            # ops.drop_path draws its mask with a Python-float probability, which torch.compile bakes in
            print(
                "warning: --compile with --drop-path > 0 recompiles the network every epoch (the probability "
                "changes); torch falls back to eager after 8 recompiles",
                file=sys.stderr,
            )

    def _build_sources(self, rt: Runtime, data: ImageData) -> None:
        """Training batches augmented by the dataset's crop/flip plus the recipe's cutout; plain test batches."""
        cfg = self.cfg
        base = data.augment or Augment()
        flip = base.flip if cfg.hflip is None else cfg.hflip
        augment = Augment(crop_padding=base.crop_padding, flip=flip, cutout=cfg.cutout)
        batches = functools.partial(
            make_batches,
            data,
            batch_size=cfg.batch_size,
            device=rt.device,
            seed=rt.seed,
            rank=rt.rank,
            world_size=rt.world_size,
            num_workers=cfg.workers,
            memory_format=rt.memory_format,
        )
        self.train_source = batches("train", train=True, augment=augment, augmented=cfg.augment)
        self.test_source = batches("test", train=False)
        self.valid_source = None
        if cfg.val_split:
            if cfg.split_seed is None:
                cfg.split_seed = rt.seed
            self.split = holdout_indices(len(data.train), cfg.val_split, cfg.split_seed)
            self.train_source = batches(
                "train", train=True, augment=augment, augmented=cfg.augment, indices=self.split[0]
            )
            self.valid_source = batches("train", train=False, indices=self.split[1])

    def train_batches(self) -> Any:
        return self.train_source

    def start_epoch(self, epoch: int) -> dict[str, float]:
        # the 2019 code's ramp: 0 in the first epoch, drop_path * epoch / epochs after
        self.model.drop_path_prob = self.cfg.drop_path * epoch / self.cfg.epochs
        return {"lr": self.optimizer.param_groups[0]["lr"], "drop_path": self.model.drop_path_prob}

    def train_step(self, batch: Any, rt: Runtime) -> dict[str, torch.Tensor]:
        images, labels = batch
        self.module.train()
        with rt.autocast():
            logits, aux = self.module(images)
            loss = self.criterion(logits, labels)
            total = loss + self.cfg.aux_weight * self.criterion(aux, labels) if aux is not None else loss
        rt.backward_step(total, self.optimizer, self.model.parameters(), self.cfg.grad_clip)
        (top1,) = topk_correct(logits.detach(), labels, (1,))
        n = labels.new_tensor(labels.numel())
        return {"n": n, "loss": loss.detach() * n, "top1": top1 * 100.0}

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        self.scheduler.step()
        return {}

    def evaluate(self, epoch: int, rt: Runtime) -> dict[str, float]:
        rt.sync_buffers(self.model)  # every rank evaluates rank 0's network, the one that is saved
        record = {}
        splits = [("valid", self.valid_source)] if self.valid_source is not None else []
        for name, source in [*splits, ("test", self.test_source)]:
            sums = rt.all_reduce_sum(evaluate_batches(self.model, source, rt, self.cfg.limit_eval_batches))
            n = sums["n"].item()
            if n:
                record.update({f"{name}_{k}": sums[k].item() / n for k in ("loss", "top1", "top5")})
        return record

    def after_epoch(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        split_file = RunDir(run_dir).split_file
        if self.split is not None and not split_file.is_file():
            write_json(split_file, {"seed": self.cfg.split_seed, "train": self.split[0], "valid": self.split[1]})

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            replan_cosine(self.scheduler, self.optimizer, self.cfg.epochs)

    def save_weights(self, directory: Path) -> None:
        save_network(self.model, Path(directory) / WEIGHTS_FILE)

    def load_weights(self, directory: Path) -> None:
        path = Path(directory) / WEIGHTS_FILE
        genotype, args = read_metadata(path)  # the header check gdas eval makes, before any tensor is read
        if genotype != self.genotype or args != self.model.args:
            raise GdasError(
                f"{path}: weights of {genotype.ref} with {args}, but the run trains "
                f"{self.genotype.ref} with {self.model.args}"
            )
        device = next(self.model.parameters()).device
        load_tensors_into(self.model, Path(directory) / WEIGHTS_FILE, f"genotype {self.genotype.ref}", device)


def start_from(model: Network, source: Network, label: str) -> list[str]:
    """Copy `source`'s weights into `model` strictly; only heads the source cannot provide start fresh.

    A different class count gets fresh classifiers (main and auxiliary); an auxiliary head the source
    lacks starts fresh. Returns what started fresh. Any other difference is an error naming both.
    """
    if source.genotype != model.genotype:
        raise GdasError(f"--init {label}: weights of {source.genotype.ref}, but --genotype is {model.genotype.ref}")
    ours, theirs = model.args, source.args
    if (ours.net, ours.C, ours.layers) != (theirs.net, theirs.C, theirs.layers):
        raise GdasError(
            f"--init {label}: a {theirs.net} network with C={theirs.C} and {theirs.layers} cells, but this run builds "
            f"{ours.net} with C={ours.C} and {ours.layers} cells (pass --channels {theirs.C} --layers {theirs.layers})"
        )
    fresh = []
    if theirs.num_classes != ours.num_classes:
        source.reset_classifier(ours.num_classes)  # a copy's head: the caller's model is not ours to keep
        fresh.append("classifier")
    state = dict(source.state_dict())
    if model.aux_head is None:
        state = {k: v for k, v in state.items() if not k.startswith("aux_head.")}
    elif source.aux_head is None:
        fresh.append("aux_head")
    missing, unexpected = model.load_state_dict(state, strict=False)
    wrong = [k for k in missing if not k.startswith("aux_head.") or "aux_head" not in fresh] + list(unexpected)
    if wrong:
        raise GdasError(f"--init {label}: weights do not fit the network ({', '.join(wrong[:3])})")
    return fresh


@torch.no_grad()
def evaluate_batches(model: nn.Module, source: Any, rt: Runtime, limit: int = 0) -> dict[str, torch.Tensor]:
    """Sums over `source` of cross-entropy, top-1 and top-5 hits (as percentages) and the count, eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("n", "loss", "top1", "top5")}
    try:
        total = min(len(source), limit) if limit else len(source)
        for images, labels in track(itertools.islice(source.batches(0), total), "evaluate", total=total):
            with rt.autocast():
                logits = model(images)
            top1, top5 = topk_correct(logits, labels, (1, 5))
            sums["n"] += labels.numel()
            sums["loss"] += nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
            sums["top1"] += top1 * 100.0
            sums["top5"] += top5 * 100.0
    finally:
        model.train(was_training)
    return sums


def train(
    cfg: TrainConfig,
    engine: EngineConfig,
    *,
    resume: bool | str = False,
    data: ImageData | None = None,
    init: Network | None = None,
    on_start: Callable[[], None] | None = None,
    runtime: Runtime | None = None,
) -> dict:
    """Run (or resume) final training; returns the engine's summary. `init`: the weights to start from;
    `runtime`: the runtime to run on (engine.run_task)."""
    engine = replace(engine, epochs=cfg.epochs)
    return run_task(TrainTask(cfg, data, init), engine, resume=resume, on_start=on_start, runtime=runtime)
