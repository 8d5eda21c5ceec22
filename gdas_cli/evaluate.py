"""`gdas eval`: error, loss, parameters, mult-adds and speed of a trained CNN; perplexity of a language model.

`evaluate_checkpoint` takes a training run folder, a checkpoint folder or a weights file and hands
language-model weights to `evaluate_lm_run`; `evaluate_hub_model` fetches a published model first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .checkpoint import WEIGHTS_FILE
from .corpus import batchify, load_corpus
from .data import DATASETS, load_images, make_batches
from .engine import Runtime, config_from_dict, pick_device
from .errors import GdasError, reworded
from .genotype import Genotype
from .hub import load_hub_model, parse_ref
from .jsonio import parse_json, read_json
from .language import perplexity, stream_loss
from .metrics import count_mult_adds, count_parameters
from .models import FAMILIES, INPUTS
from .published import CONFIG_FILE, load_published_folder, published_folder, read_config
from .refs import load_genotype
from .rundir import AVERAGED_FILE, CHECKPOINTS, Resolved, RunDir, checkpoint_choice, chosen_checkpoint, resolve
from .training.image import evaluate_batches
from .training.lm import LMTrainConfig, load_language_model
from .weights import load_network, read_header, read_metadata

SPLITS = ("test", "valid", "train")


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
        header = parse_json(metadata.get("gdas_genotype", "{}"), f"{weights} (header genotype)")
    except GdasError:
        return "cnn"  # loading it later names the problem
    return str(header.get("kind", "cnn")) if isinstance(header, dict) else "cnn"


def evaluate_checkpoint(
    path: Path | str,
    *,
    dataset: str | None = None,
    split: str = "test",
    data_dir: Path | str | None = None,
    genotype: str | Genotype | None = None,
    which: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    download: bool = False,
    limit_batches: int = 0,
    test_batch_size: int | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy (%) and mean loss on `split` (<split>_top1, <split>_top5, <split>_loss), parameters
    and mult-adds as the paper counts them, images/s.

    A run folder is evaluated at the checkpoint it chose (`which` None; rundir.chosen_checkpoint: best with a
    validation split, else the final epoch) or at `which`; `split` "valid" is its held-out validation split.
    Images are sized and normalised as the weights were trained (the run's or export's recorded side, mean
    and std). `genotype` evaluates the weights as that genotype instead of the one in the file header (a
    strict load: weights that do not fit are an error naming both). `dataset` and `data_dir` default to the
    run's own. Language-model weights go to `evaluate_lm_run` (with `test_batch_size`).
    """
    if which is not None and which not in CHECKPOINTS:
        raise GdasError(f"--checkpoint: {which!r} must be one of {', '.join(CHECKPOINTS)}")
    exported = published_folder(Path(path))
    trained: dict[str, Any] = {}
    if exported is not None:  # what `gdas export` wrote: checked strictly, evaluated on the data set it names
        published = load_published_folder(exported)
        selection = read_config(exported / CONFIG_FILE, str(exported)).extra.get("checkpoint_choice")
        dataset = dataset or published.pretrained_cfg.get("dataset")
        if dataset is None:
            raise GdasError(f"{exported}: the export does not name its data set; pass --dataset")
        if dataset == "folder":
            raise GdasError(_own_folder_needed(str(exported), published.pretrained_cfg.get("label_names")))
        trained = _trained_as(published.pretrained_cfg)
        path = exported / WEIGHTS_FILE
    found = _resolve_checkpoint(Path(path), which)
    config = found.config()
    if (config or {}).get("kind") == "search":
        raise GdasError(
            f"{path}: a search run has no final network to evaluate; derive its cell with "
            f"`gdas derive {path}` and train it with `gdas train`"
        )
    weights = found.weights
    if _header_kind(weights, config) == "rnn":
        return evaluate_lm_run(
            Path(path), dataset=dataset, split=split, data_dir=data_dir, test_batch_size=test_batch_size
        )
    if split not in SPLITS:
        raise GdasError(f"--split: {split!r} must be one of {', '.join(SPLITS)}")
    if batch_size < 1:
        raise GdasError(f"--batch-size: must be at least 1, got {batch_size}")
    if limit_batches < 0:
        raise GdasError(f"--limit-batches: must be >= 0 (0: all), got {limit_batches}")
    stored, args = read_metadata(weights)
    chosen = load_genotype(genotype) if isinstance(genotype, str) else (genotype or stored)
    if chosen.space not in FAMILIES:
        raise GdasError(f"--genotype {chosen.ref}: a {chosen.kind} genotype builds no CNN")
    model = load_network(weights, chosen)
    task = (config or {}).get("task", {})
    dataset = dataset or task.get("dataset")
    if dataset is None:
        raise GdasError(f"--dataset: needed for {weights}, which is not inside a run folder")
    indices = _valid_indices(found, task) if split == "valid" else None
    data_dir = data_dir if data_dir is not None else task.get("data_dir", "data")
    recorded = trained or _trained_as(task)
    loader = INPUTS[args.net].data
    data = load_images(dataset, data_dir, download=download, net=loader, train=split != "test", **recorded)
    if data.num_classes != args.num_classes:
        raise GdasError(f"--dataset {dataset}: {data.num_classes} classes, but {weights} classifies {args.num_classes}")
    if data.net != loader:
        raise GdasError(
            f"--dataset {dataset}: its images suit the {data.net} network, {weights} is a {args.net} network"
        )
    rt = Runtime(device=pick_device(device, 0))
    model.to(rt.device)
    on = "train" if split == "valid" else split
    source = make_batches(data, on, batch_size=batch_size, device=rt.device, train=False, indices=indices)
    started = time.perf_counter()
    sums = evaluate_batches(model, source, rt, limit_batches)
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    seconds = time.perf_counter() - started
    n = sums["n"].item()
    if not n:
        raise GdasError(f"--dataset {dataset}: the {split} split is empty")
    size = data.image_size
    selection = (config or {}).get("selection")
    by = selection.get("by") if isinstance(selection, dict) and selection.get("by") else "valid_top1"
    return {
        "checkpoint": str(weights),
        "genotype": chosen.ref,
        "dataset": dataset,
        "split": split,
        "images": int(n),
        f"{split}_top1": sums["top1"].item() / n,  # accuracy in %, as metrics.jsonl records it
        f"{split}_top5": sums["top5"].item() / n,
        f"{split}_loss": sums["loss"].item() / n,
        "params": count_parameters(model),
        "mult_adds": count_mult_adds(model, (1, 3, size, size)),
        "images_per_s": round(n / seconds, 2),
        "device": str(rt.device),
        "network": args.to_dict(),
        "checkpoint_choice": selection if exported is not None else checkpoint_choice(found.which, task, by),
    }


def _trained_as(recorded: dict[str, Any]) -> dict[str, Any]:
    """The image side and (mean, std) the weights were trained with, from a run's task config or an export's
    pretrained_cfg: what `load_images` must use (none recorded: the data set's own)."""
    found: dict[str, Any] = {}
    side = recorded.get("image_size")
    size = recorded.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        side = size[-1]
    if isinstance(side, int) and not isinstance(side, bool):
        found["image_size"] = side
    mean, std = recorded.get("mean"), recorded.get("std")
    if isinstance(mean, (list, tuple)) and isinstance(std, (list, tuple)) and len(mean) == len(std) == 3:
        found["stats"] = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
    return found


def _valid_indices(found: Resolved, task: dict[str, Any]) -> list[int]:
    """The held-out validation images of the run (`gdas train --val-split`), from its split.json."""
    run = found.run
    if run is None or not task.get("val_split") or not run.split_file.is_file():
        where = run.path if run is not None else found.weights
        raise GdasError(
            f"--split valid: {where} has no validation split (train with --val-split N to hold images out); "
            "use --split test or train"
        )
    split = read_json(run.split_file, "split file")
    valid = split.get("valid") if isinstance(split, dict) else None
    if not isinstance(valid, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in valid):
        raise GdasError(f"{run.split_file}: 'valid' must be a list of image indices")
    return valid


def _own_folder_needed(label: str, classes: Any) -> str:
    names = f" (classes: {', '.join(map(str, classes))})" if isinstance(classes, list) and classes else ""
    return (
        f"{label}: trained on a local image folder{names}; pass --dataset folder:PATH, a folder whose "
        "test/ (or val/) holds those class folders"
    )


def _resolve_checkpoint(path: Path, which: str | None) -> Resolved:
    """resolve() at `which`, or at the checkpoint the run chose (its last when it has chosen none yet);
    with the reason a run has no checkpoint/best when one was asked for: nothing chose one."""
    run = RunDir(Path(path))
    if which is None:
        chosen = chosen_checkpoint(run.read_config()) if Path(path).is_dir() and run.exists() else "last"
        return resolve(path, prefer=("best", "last") if chosen == "best" else ("last",))
    try:
        return resolve(path, prefer=(which,))
    except GdasError:
        if (
            which == "best"
            and run.exists()
            and run.kind() == "train"
            and not run.read_config()["task"].get("val_split")
        ):
            raise GdasError(
                f"{path}: no checkpoint/best: the run was trained without --val-split, so no epoch was chosen "
                "(the test split never chooses); its result is the final epoch, --checkpoint last"
            ) from None
        raise


def evaluate_hub_model(
    spec: str, *, dataset: str | None = None, which: str | None = None, **options: Any
) -> dict[str, Any]:
    """`gdas eval --from-hub`: fetch (or read from the cache), verify strictly, then `evaluate_checkpoint`.

    `dataset` defaults to the one the published config.json names; `which` (a run's checkpoint
    choice) does not apply to a published model.
    """
    ref = parse_ref(spec)
    _, snapshot = load_hub_model(ref)
    weights = snapshot.files[WEIGHTS_FILE]
    config = read_config(snapshot.files[CONFIG_FILE], f"{ref.label}/{CONFIG_FILE}")
    named = config.extra.get("dataset")
    if not dataset and named == "folder":
        raise GdasError(_own_folder_needed(ref.label, (config.pretrained_cfg or {}).get("label_names")))
    if not dataset and named is not None and named not in DATASETS:
        raise GdasError(
            f"{ref.label}/{CONFIG_FILE}: dataset {named!r} is not a known data set "
            f"({', '.join(DATASETS)}); a published model never names a local path: pass --dataset"
        )
    dataset = dataset or named
    if not dataset:
        raise GdasError(f"{ref.label}: the model does not name the data set it was trained on; pass --dataset")
    label = f"{ref.label}/{WEIGHTS_FILE}"
    try:
        result = evaluate_checkpoint(weights, dataset=dataset, **options)
    except GdasError as err:
        raise reworded(err, str(err).replace(str(weights), label)) from None
    result.update(checkpoint=label, repo_id=ref.repo_id, revision=ref.revision or "main", commit=snapshot.commit)
    return result


def evaluate_lm_run(
    path: str | Path,
    dataset: str | None = None,
    split: str = "test",
    data_dir: str | Path | None = None,
    device: str = "cpu",
    test_batch_size: int | None = None,
) -> dict[str, Any]:
    """Validation and `split` perplexity of a language-model run's best weights (ASGD-averaged if any).

    `dataset`/`data_dir` default to the run's own; the corpus vocabulary must match the model's.
    `test_batch_size` defaults to the run's (1 is the 2019 code's paper-exact setting).
    Returns valid_loss, valid_ppl, <split>_loss, <split>_ppl (test or train), params and where the weights came
    from.
    """
    found = resolve(Path(path), prefer=("best", "last"))
    averaged = found.weights.parent / AVERAGED_FILE
    weights = averaged if Path(path).is_dir() and averaged.is_file() else found.weights
    config = found.config()
    task_data = config["task"] if config is not None else {}
    source = str(found.run.config_file) if found.run is not None else str(path)
    cfg = config_from_dict(LMTrainConfig, task_data, source) if task_data else LMTrainConfig()
    dataset = dataset or (cfg.dataset if task_data else None)
    if dataset is None:
        raise GdasError(f"{path}: no run config next to the weights; pass the dataset")
    if split not in SPLITS:
        raise GdasError(f"--split: {split!r} must be one of {', '.join(SPLITS)}")
    model = load_language_model(weights, device)
    corpus = load_corpus(dataset, str(data_dir) if data_dir else (cfg.data_dir if dataset == cfg.dataset else None))
    if len(corpus.vocab) != model.args.ntoken:
        raise GdasError(
            f"{dataset}: vocabulary of {len(corpus.vocab)} words, but {weights} was trained on "
            f"{model.args.ntoken}; evaluate on the corpus it was trained on"
        )
    recorded = task_data.get("corpus", {}).get("sha256")
    if recorded and dataset == cfg.dataset and recorded != corpus.fingerprint():
        raise GdasError(f"{dataset}: the corpus differs from the one the run trained on (sha256 mismatch)")
    valid = stream_loss(
        model,
        batchify(corpus.valid, cfg.eval_batch_size, "--eval-batch-size").to(device),
        cfg.bptt,
        description="valid",
    )
    result: dict[str, Any] = {
        "dataset": dataset,
        "genotype": model.genotype.ref,
        "weights": str(weights),
        "averaged": weights.name == AVERAGED_FILE,
        "params": count_parameters(model),
        "valid_loss": valid,
        "valid_ppl": perplexity(valid),
    }
    if split == "test":
        if test_batch_size is not None and test_batch_size < 1:
            raise GdasError(f"--test-batch-size: {test_batch_size} must be >= 1")
        streams = test_batch_size or cfg.test_batch_size
        test = stream_loss(
            model, batchify(corpus.test, streams, "--test-batch-size").to(device), cfg.bptt, description="test"
        )
        result.update({"test_loss": test, "test_ppl": perplexity(test)})
    elif split == "train":  # measured as the validation split is (no dropout), in as many streams
        train = stream_loss(
            model,
            batchify(corpus.train, cfg.eval_batch_size, "--eval-batch-size").to(device),
            cfg.bptt,
            description="train",
        )
        result.update({"train_loss": train, "train_ppl": perplexity(train)})
    return result
