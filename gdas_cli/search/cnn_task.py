"""The CNN search as an engine task, and `run_search`, what `gdas search cnn` calls.

Per step: a W step on a train-half batch, then an A step on a valid-half batch (search.step).
Per epoch: cosine lr and linear tau set at the start; the alphas recorded at the end. Files the
engine does not write (alphas.jsonl, genotypes.jsonl, split.json, genotype.json) are rewritten from
the task state after every epoch and on resume, so they always match the checkpoint.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..bench import Bench
from ..checkpoint import WEIGHTS_FILE, write_json, write_jsonl
from ..data import (
    DATASETS,
    FOLDER_PREFIX,
    Augment,
    PairedBatches,
    dataset_names,
    load_images,
    make_batches,
    published_dataset,
    split_indices,
)
from ..engine import EngineConfig, Runtime, Task, run_task
from ..errors import GdasError
from ..files import atomic_write_text
from ..genotype import Genotype, to_arch_str
from ..jsonio import parse_json
from ..rundir import ALPHAS_FILE, GENOTYPE_FILE, GENOTYPES_FILE, RunDir, run_record
from ..sampler import linear_tau
from ..spaces import get_space
from ..weights import load_state_strict, read_header, read_tensors, save_tensors
from .config import SearchConfig, check_config
from .derive import alphas_sha256
from .history import with_steps
from .spaces import build_supernet, check_supernet, search_of, searched_genotype
from .step import Supernet, search_step

WEIGHTS_FORMAT = "gdas-search-v1"


class SearchTask(Task):
    """GDAS CNN search: the supernet, its two optimizers, the sampler's generator and the alpha history.

    The result is the final epoch's genotype, as paper Alg. 1 ends and both released codes report it
    (xautodl's GDAS.py logs its last epoch's genotype), so the run chooses no best checkpoint.
    """

    kind = "search"
    network = "cnn"
    resume_may_change = frozenset({"data_dir", "workers", "nas_bench"})  # where the data is and how it is read
    refuses = {
        "compile": "a search runs a newly drawn path every step, which torch.compile would recompile (or fall "
        "back to eager) every time; --compile is for gdas train",
    }

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self.history: list[dict[str, Any]] = []  # per finished epoch: epoch, tau, alphas (CPU tensors)
        self.split: tuple[list[int], list[int]] = ([], [])
        self._genotypes: dict[tuple[int, str, str], Genotype] = {}

    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def run_record(self) -> dict[str, Any]:
        # the A steps run on batches of the valid half: their loss and top-1 are the search's validation figures
        return run_record(
            "gdas search cnn",
            dataset=self.config.dataset,
            space=self.config.space,
            figures={
                "train": {"loss": "train_loss", "top1": "train_top1"},
                "valid": {"loss": "train_arch_loss", "top1": "train_arch_top1"},
            },
            records={"alphas": ALPHAS_FILE, "genotypes": GENOTYPES_FILE},
            result=GENOTYPE_FILE,
        )

    # ---- set-up

    def setup(self, rt: Runtime) -> None:
        cfg = self.config
        data = load_images(cfg.dataset, cfg.data_dir or "data", image_size=cfg.image_size, test=False)
        cfg.mean, cfg.std = [float(v) for v in data.mean], [float(v) for v in data.std]
        classes = data.extra.get("classes")
        cfg.label_names = [str(name) for name in classes] if classes else None
        self.split = split_indices(len(data.train), cfg.split_seed if cfg.split_seed is not None else cfg.seed)
        # both halves get the training augmentation, as in the 2019 code
        base = data.augment or Augment()
        flip = base.flip if cfg.hflip is None else cfg.hflip
        augment = Augment(crop_padding=base.crop_padding, flip=flip, cutout=cfg.cutout)
        batches = functools.partial(
            make_batches,
            data,
            "train",
            batch_size=cfg.batch_size,
            device=rt.device,
            train=True,
            rank=rt.rank,
            world_size=rt.world_size,
            augment=augment,
            num_workers=cfg.workers,
            memory_format=rt.memory_format,
        )
        train = batches(seed=cfg.seed, indices=self.split[0])
        valid = batches(seed=cfg.seed + 1, indices=self.split[1])
        self.batches = PairedBatches(train, valid)
        if len(self.batches) == 0:
            raise GdasError(f"--dataset {cfg.dataset}: too few images for one batch of {cfg.batch_size} per half")
        self.net = build_supernet(cfg, data.num_classes)
        self.model = rt.prepare_model(self.net, find_unused_parameters=True, compile=False)
        # one generator, seeded alike on every rank: all DDP ranks sample the same architecture
        self.generator = torch.Generator(device=rt.device).manual_seed(cfg.seed)
        self.net.generator = self.generator
        self.weight_optimizer = torch.optim.SGD(
            self.net.weights(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
        self.arch_optimizer = torch.optim.Adam(
            self.net.alphas(),
            lr=cfg.arch_lr,
            betas=(cfg.arch_betas[0], cfg.arch_betas[1]),
            weight_decay=cfg.arch_weight_decay,
        )
        self.rt = rt
        self.bench = Bench.open(Path(cfg.nas_bench)) if cfg.nas_bench else None

    def train_batches(self) -> PairedBatches:
        return self.batches

    # ---- epochs and steps

    def start_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        lr = cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
        for group in self.weight_optimizer.param_groups:
            group["lr"] = lr
        tau = linear_tau(epoch, cfg.epochs, cfg.tau_max, cfg.tau_min)
        self.net.set_tau(tau)
        return {"lr": lr, "tau": tau}

    def train_step(self, batch: Any, rt: Runtime) -> dict[str, torch.Tensor]:
        train, valid = batch
        return search_step(
            self.model,
            self.net,
            self.weight_optimizer,
            self.arch_optimizer,
            train,
            valid,
            rt,
            self.config.grad_clip,
            grad_clip_with_alphas=self.config.grad_clip_with_alphas,
        )

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        alphas = {t: a.detach().float().cpu().clone() for t, a in self.net.arch_parameters().items()}
        self.history = [h for h in self.history if h["epoch"] <= epoch]
        self.history.append({"epoch": epoch + 1, "tau": self.net.tau, "alphas": alphas})
        record: dict[str, Any] = {"alphas_sha256": alphas_sha256(alphas)}
        if self.bench is not None:
            record.update(bench_record(self.bench, self.config.space, alphas))
        return record

    # ---- state

    def state_dict(self) -> dict[str, Any]:
        return {
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "arch_optimizer": self.arch_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "tau": self.net.tau,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        self.generator.set_state(state["generator"])
        self.net.set_tau(state["tau"])
        self.history = list(state["history"])

    def save_weights(self, directory: Path) -> None:
        save_search_weights(self.net, self.config, Path(directory) / WEIGHTS_FILE)

    def load_weights(self, directory: Path) -> None:
        path = Path(directory) / WEIGHTS_FILE
        state, _ = read_search_weights(path)
        load_state_strict(
            self.net, {k: v.to(self.rt.device) for k, v in state.items()}, "this search network", str(path)
        )

    # ---- derived files

    def genotype_of(self, record: dict[str, Any], run_dir: Path) -> Genotype:
        """The paper-rule genotype of one epoch's record (cached: after_epoch asks for all of them)."""
        key = (record["epoch"], alphas_sha256(record["alphas"]), str(run_dir))
        if key not in self._genotypes:
            self._genotypes[key] = epoch_genotype(self.config, record, run_dir.name)
        return self._genotypes[key]

    def epoch_views(self, run_dir: Path, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The alphas of the epoch of history[-1] and the genotype derived from them (as genotypes.jsonl has it)."""
        epoch = history[-1]["epoch"]
        record = next(r for r in with_steps(self.history, history) if r["epoch"] == epoch)
        return {"alphas": record["alphas"], "genotype": self.genotype_of(record, Path(run_dir))}

    def after_epoch(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        run = RunDir(Path(run_dir))
        records = with_steps(self.history, history)
        genotypes = [self.genotype_of(r, run.path) for r in records]
        write_jsonl(
            run.alphas_file,
            [
                {
                    "epoch": r["epoch"],
                    "step": r["step"],
                    "tau": r["tau"],
                    "alphas": {t: a.tolist() for t, a in r["alphas"].items()},
                }
                for r in records
            ],
        )
        write_jsonl(
            run.genotypes_file,
            [{"epoch": r["epoch"], "genotype": g.to_dict()} for r, g in zip(records, genotypes, strict=True)],
        )
        if not run.split_file.is_file():
            seed = self.config.split_seed if self.config.split_seed is not None else self.config.seed
            write_json(run.split_file, {"seed": seed, "train": self.split[0], "valid": self.split[1]})
        if genotypes and records[-1]["epoch"] == self.config.epochs:
            atomic_write_text(run.genotype_file, genotypes[-1].to_json())


def bench_record(bench: Bench, space: str, alphas: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The epoch's derived cell looked up in the benchmark, as the released GDAS.py logs it each epoch: its
    arch string and every data set's recorded top-1 (hp 200, the mean over seeds), flat for the epoch line."""
    arch = to_arch_str(search_of(space).derive(alphas, get_space(space).default_rule, name="epoch", version="1.0.0"))
    found = bench.lookup(arch)
    record: dict[str, Any] = {"bench_arch": arch}
    for dataset, result in found["datasets"].items():
        slug = dataset.lower().replace("-", "_")
        record.update({f"bench_{slug}_{split}_top1": value for split, value in result["accuracy"].items()})
    return record


def provenance(config: SearchConfig, record: dict[str, Any], run_name: str | None) -> dict[str, Any]:
    """Where a searched genotype came from: enough to find the run (by its folder name, never a local
    path, since genotypes get published) and check its alphas."""
    return {
        "source": "gdas search cnn",
        "run": run_name,
        "space": config.space,
        "dataset": published_dataset(config.dataset),
        "seed": config.seed,
        "split_seed": config.split_seed if config.split_seed is not None else config.seed,
        "epoch": record["epoch"],
        "epochs": config.epochs,
        "recipe": config.recipe,
        "sampling": config.sampling,
        "layout": config.layout,
        "ops": config.ops,
        "frc": config.frc,
        "tau": record["tau"],
        "alphas_sha256": alphas_sha256(record["alphas"]),
        "gdas_version": __version__,
    }


def epoch_genotype(
    config: SearchConfig,
    record: dict[str, Any],
    run_name: str | None,
    *,
    rule: str | None = None,
    name: str = "searched",
    version: str = "1.0.0",
    max_skip: int | None = None,
) -> Genotype:
    """The genotype of one epoch's alphas (`record`: epoch, tau, alphas and the A steps taken, `step`) under
    `rule` (default: the space's) and `max_skip`, with how far the alphas moved and the share of parameter-free
    ops (search.spaces.searched_genotype)."""
    return searched_genotype(
        config.space,
        record["alphas"],
        rule=rule,
        arch_lr=config.arch_lr,
        steps=record.get("step"),
        name=name,
        version=version,
        provenance=provenance(config, record, run_name),
        max_skip=max_skip,
    )


# ------------------------------------------------------------------------------------------ weights


def save_search_weights(net: Supernet, config: SearchConfig, path: Path) -> None:
    """The supernet's weights and alphas as safetensors, with the search config in the header."""
    save_tensors(net, path, {"format": WEIGHTS_FORMAT, "gdas_search": json.dumps(config.to_dict())})


def read_search_weights(path: Path) -> tuple[dict[str, torch.Tensor], SearchConfig]:
    """Tensors and config of a search checkpoint; a missing, truncated or foreign file is a GdasError."""
    path = Path(path)
    if not path.is_file():
        raise GdasError(f"{path}: no such search checkpoint file")
    metadata = read_header(path)
    state = read_tensors(path)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise GdasError(f"{path}: not a gdas search checkpoint (header format {metadata.get('format')!r})")
    if "gdas_search" not in metadata:
        raise GdasError(f"{path}: the header has no gdas_search config; not a complete search checkpoint")
    data = parse_json(metadata["gdas_search"], f"{path} (header gdas_search)")
    if not isinstance(data, dict):
        raise GdasError(f"{path}: the header's search config is not a JSON object")
    config = SearchConfig.from_dict(data, str(path))
    return state, config


# ------------------------------------------------------------------------------------------ entry


def check_dataset(spec: str) -> None:
    if spec not in DATASETS and not spec.startswith(FOLDER_PREFIX):
        raise GdasError(f"--dataset: {spec!r} is not a known dataset; known: {', '.join(dataset_names())}")


def check_search(config: SearchConfig) -> None:
    """Everything that can be checked without data: each problem is a GdasError naming its option."""
    check_dataset(config.dataset)
    check_config(config)
    check_supernet(config)


def run_search(
    config: SearchConfig,
    engine: EngineConfig,
    *,
    resume: bool | str = False,
    on_start: Callable[[], None] | None = None,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Check everything that can be checked without data, then run the search on the engine
    (on `runtime` when given: engine.run_task)."""
    check_search(config)
    task = SearchTask(config)
    return run_task(task, engine, resume=resume, on_start=on_start, runtime=runtime)
