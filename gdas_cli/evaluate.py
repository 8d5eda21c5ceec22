"""`gdas eval`: error, loss, parameters, mult-adds and speed of a trained checkpoint.

`evaluate_checkpoint` takes a training run folder, a checkpoint folder or a model.safetensors file;
language-model runs (genotype kind rnn) are handed to `gdas_cli.lm.evaluate_lm_run`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .checkpoint import find_checkpoint
from .data import load_images, make_batches
from .engine import Runtime, pick_device, read_run_config
from .errors import GdasError
from .genotype import Genotype, load_genotype
from .metrics import count_mult_adds, count_parameters
from .train import WEIGHTS_FILE, evaluate_batches
from .weights import load_network, read_header, read_metadata

SPLITS = ("test", "train")
CHECKPOINTS = ("last", "best")


def resolve_weights(path: Path, which: str = "last") -> tuple[Path, dict[str, Any] | None]:
    """The weights file behind `path` (run folder, checkpoint folder or file) and the run config if any."""
    path = Path(path).expanduser()
    if which not in CHECKPOINTS:
        raise GdasError(f"--checkpoint: {which!r} must be one of {', '.join(CHECKPOINTS)}")
    if path.is_file():
        run_dir = path.resolve().parent.parent.parent  # <run>/checkpoint/<which>/model.safetensors
        inside = path.resolve().parent.parent.name == "checkpoint" and (run_dir / "config.json").is_file()
        return path, read_run_config(run_dir) if inside else None
    if not path.is_dir():
        raise GdasError(f"{path}: no such run folder or checkpoint file")
    if (path / "config.json").is_file():
        folder = find_checkpoint(path / "checkpoint" / which)
        if folder is None:
            raise GdasError(f"{path}: the run has no checkpoint/{which} yet")
        return folder / WEIGHTS_FILE, read_run_config(path)
    if (path / WEIGHTS_FILE).is_file():
        run_dir = path.parent.parent
        config = read_run_config(run_dir) if (run_dir / "config.json").is_file() else None
        return path / WEIGHTS_FILE, config
    raise GdasError(f"{path}: neither a run folder (config.json) nor a checkpoint folder ({WEIGHTS_FILE})")


def _header_kind(weights: Path, config: dict[str, Any] | None) -> str:
    """cnn or rnn, from the run config or the weights header, without building anything."""
    if config is not None:
        if config.get("kind") == "lm":
            return "rnn"
        genotype = config.get("task", {}).get("genotype")
        if isinstance(genotype, dict) and "kind" in genotype:
            return str(genotype["kind"])
    metadata = read_header(weights)
    try:
        return str(json.loads(metadata.get("gdas_genotype", "{}")).get("kind", "cnn"))
    except (json.JSONDecodeError, AttributeError):
        return "cnn"


def evaluate_checkpoint(
    path: Path | str, *, dataset: str | None = None, split: str = "test", data_dir: Path | str | None = None,
    genotype: str | Genotype | None = None, which: str = "last", batch_size: int = 256, device: str = "auto",
    download: bool = False, limit_batches: int = 0,
) -> dict[str, Any]:
    """Top-1/top-5 error (%), mean loss, parameters and mult-adds as the paper counts them, images/s.

    `genotype` evaluates the weights as that genotype instead of the one in the file header (a strict
    load: weights that do not fit are an error naming both). `dataset` and `data_dir` default to the
    run's own.
    """
    weights, config = resolve_weights(Path(path), which)
    if (config or {}).get("kind") == "search":
        raise GdasError(f"{path}: a search run has no final network to evaluate; derive its cell with "
                        f"`gdas derive {path}` and train it with `gdas train`")
    if _header_kind(weights, config) == "rnn":
        return _evaluate_lm(Path(path), dataset, split, data_dir)
    if split not in SPLITS:
        raise GdasError(f"--split: {split!r} must be one of {', '.join(SPLITS)}")
    if batch_size < 1:
        raise GdasError(f"--batch-size: must be at least 1, got {batch_size}")
    stored, args = read_metadata(weights)
    chosen = load_genotype(genotype) if isinstance(genotype, str) else (genotype or stored)
    if chosen.kind != "cnn":
        raise GdasError(f"--genotype {chosen.ref}: a {chosen.kind} genotype builds no CNN")
    model = load_network(weights, chosen)
    task = (config or {}).get("task", {})
    dataset = dataset or task.get("dataset")
    if dataset is None:
        raise GdasError(f"--dataset: needed for {weights}, which is not inside a run folder")
    data_dir = data_dir if data_dir is not None else task.get("data_dir", "data")
    data = load_images(dataset, data_dir, download=download, net=args.net)
    if data.num_classes != args.num_classes:
        raise GdasError(f"--dataset {dataset}: {data.num_classes} classes, but {weights} classifies {args.num_classes}")
    if data.net != args.net:
        raise GdasError(f"--dataset {dataset}: its images suit the {data.net} network, "
                        f"{weights} is a {args.net} network")
    rt = Runtime(device=pick_device(device, 0))
    model.to(rt.device)
    source = make_batches(data, split, batch_size=batch_size, device=rt.device, train=False)
    started = time.perf_counter()
    sums = evaluate_batches(model, source, rt, limit_batches)
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    seconds = time.perf_counter() - started
    n = sums["n"].item()
    if not n:
        raise GdasError(f"--dataset {dataset}: the {split} split is empty")
    size = data.image_size
    return {
        "checkpoint": str(weights), "genotype": chosen.ref, "dataset": dataset, "split": split, "images": int(n),
        "top1_error": 100.0 - sums["top1"].item() / n, "top5_error": 100.0 - sums["top5"].item() / n,
        "loss": sums["loss"].item() / n, "params": count_parameters(model),
        "mult_adds": count_mult_adds(model, (1, 3, size, size)), "images_per_s": round(n / seconds, 2),
        "device": str(rt.device), "network": args.to_dict(),
    }


def _evaluate_lm(path: Path, dataset: str | None, split: str, data_dir: Path | str | None) -> dict[str, Any]:
    try:
        from .lm import evaluate_lm_run
    except ImportError:
        raise GdasError(f"{path}: a language-model (rnn) checkpoint; "
                        "RNN evaluation is unavailable in this install") from None
    return evaluate_lm_run(path, dataset=dataset, split=split, data_dir=data_dir)
