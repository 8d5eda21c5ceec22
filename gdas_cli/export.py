"""`gdas export`: a training run, a checkpoint or a genotype -> a publishable folder, and the Hub.

Sources: a folder `gdas export` wrote or a zoo weights folder (checked as strictly as `gdas eval` checks
it: sha256, genotype, header; its data set, normalisation, class names and stated results carry over), a
training run directory (its `checkpoint/best` weights when a validation split chose them
(`gdas train --val-split`), else `checkpoint/last`, the final epoch; with the
measured results of metrics.jsonl and the settings of config.json), a `.safetensors` weights file in
the weights.py format, or a genotype (a JSON file, a zoo name, or `hf-hub:org/name@rev`). A genotype
alone gives a genotype-only folder: genotype.json, cell.png and the card.

Everything is checked first (source, options, token and tag for a push, exporter packages); the
folder is then built in a temp folder beside the target and renamed into place, so a failed export
leaves nothing behind. ONNX and torch.export (`.pt2`) files are kept only if their outputs match
PyTorch's, and each has a sidecar JSON (`model.onnx.json`, `model.pt2.json`) with the same
`pretrained_cfg` as config.json: what an image must go through before it is fed to the graph.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard

from .checkpoint import WEIGHTS_FILE, write_json
from .data import published_dataset
from .errors import GdasEnvironmentError, GdasError, environment_cause, read_failure
from .genotype import HUB_PREFIX, Genotype, read_genotype_file
from .hub import CardFacts, HubModel, PushResult, Result, check_push, hub_class, push_folder, render_card
from .jsonio import read_json_object
from .models import pretrained_cfg_for
from .progress import track
from .published import (
    CARD_FILE,
    CONFIG_FILE,
    CONFIG_SCHEMA,
    default_files,
    genotype_only_cfg,
    load_published_folder,
    make_config,
    published_folder,
    read_config,
    write_genotype_files,
)
from .refs import load_genotype
from .rundir import RunDir, checkpoint_choice, chosen_checkpoint, guard_output, progress_of, read_metrics, resolve
from .weights import load_network, read_header, read_metadata

FORMATS = ("onnx", "pt2")
ONNX_FILE = "model.onnx"
ONNX_OPSET = 18
PT2_FILE = "model.pt2"
SIDECAR_SUFFIX = ".json"
# An exported graph must reproduce PyTorch's logits on a test batch within this tolerance.
ATOL, RTOL = 1e-4, 1e-3


@dataclass(frozen=True)
class ExportSource:
    """What is being exported, and what is known about it."""

    path: str
    kind: str  # run | export | weights | genotype
    genotype: Genotype
    weights: Path | None = None
    results: tuple[Result, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    # what the training run recorded about its data: mean, std, label_names (pretrained_cfg fields)
    data_facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportRequest:
    """The options of `gdas export`, as a config."""

    source: str
    output: Path | None = None
    formats: tuple[str, ...] = ()
    repo_id: str | None = None
    tag: str | None = None
    private: bool = False
    overwrite: bool = False
    dataset: str | None = None
    license: str | None = None  # None: none stated (the card says "other")


@dataclass(frozen=True)
class ExportResult:
    source: ExportSource
    folder: Path | None
    files: list[str]
    exports: dict[str, dict[str, Any]]
    push: PushResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.path,
            "kind": self.source.kind,
            "genotype": self.source.genotype.ref,
            "folder": str(self.folder) if self.folder else None,
            "files": self.files,
            "exports": self.exports,
            "push": None
            if self.push is None
            else {
                "repo_id": self.push.repo_id,
                "commit": self.push.commit,
                "tag": self.push.tag,
                "url": self.push.url,
            },
        }


# --- sources -----------------------------------------------------------------------------------


def resolve_source(ref: str | Path) -> ExportSource:
    """A run directory, a weights file, or a genotype reference; every problem is one GdasError."""
    if str(ref).startswith(HUB_PREFIX):
        return ExportSource(str(ref), "genotype", load_genotype(str(ref)))
    path = Path(ref)
    if path.is_dir():
        exported = published_folder(path)
        return _run_source(path) if exported is None else _published_source(exported)
    if path.is_file() and path.suffix == ".safetensors":
        genotype = _weights_genotype(path)
        run = resolve(path).run
        task = _task_of(_read_json_object(run.config_file)) if run is not None else _published_task(path.parent)
        dataset = published_dataset(task["dataset"]) if isinstance(task.get("dataset"), str) else None
        training = {"weights": f"checkpoint file {path.name}"}
        return ExportSource(
            str(path), "weights", genotype, path, training=training, dataset=dataset, data_facts=_data_facts(task)
        )
    if path.is_file() and path.suffix == ".json":
        return ExportSource(str(path), "genotype", read_genotype_file(path))
    if path.exists():
        raise GdasError(f"{path}: expected a training run directory, a .safetensors checkpoint or a genotype .json")
    if str(ref).endswith((".safetensors", ".json")) or os.sep in str(ref):
        raise GdasError(f"{path}: no such run directory, checkpoint or genotype file")
    return ExportSource(str(ref), "genotype", load_genotype(str(ref)))


def _weights_genotype(path: Path) -> Genotype:
    """The genotype in a CNN weights header; language-model weights get their own message."""
    try:
        genotype, _ = read_metadata(path)
    except GdasError:
        if _header_format(path) == "gdas-lm-weights-v1":
            raise GdasError(
                f"{path}: language-model (RNN) weights; gdas export publishes CNN weights only "
                "(export the genotype alone with: gdas export GENOTYPE.json)"
            ) from None
        raise
    return genotype


def _header_format(path: Path) -> str | None:
    try:
        return read_header(path).get("format")
    except GdasError:
        return None


def _run_source(run_dir: Path) -> ExportSource:
    run = RunDir(run_dir)
    config = _read_json_object(run.config_file)
    task = _task_of(config)
    # the checkpoint the run chose (gdas eval takes the same): best only when a validation split chose it,
    # else the final epoch, as the paper reports
    prefer = ("best", "last") if chosen_checkpoint(config) == "best" else ("last",)
    if not any((run.checkpoint(w) / WEIGHTS_FILE).is_file() for w in prefer):
        hint = f"; it holds a searched genotype: export {run.genotype_file}" if run.genotype_file.is_file() else ""
        raise GdasError(
            f"{run_dir}: no checkpoint/best/{WEIGHTS_FILE} or checkpoint/last/{WEIGHTS_FILE} "
            f"(not a training run?){hint}"
        )
    found = resolve(run_dir, prefer=prefer)
    which = found.which or "last"
    weights = found.weights
    genotype = _weights_genotype(weights)
    dataset = published_dataset(task["dataset"]) if isinstance(task.get("dataset"), str) else None
    records = read_metrics(run.metrics_file)
    record = _record_for(records, progress_of(weights.parent).get("epoch"))
    training = _training_facts(run_dir, which, config, task, record)
    training["checkpoint chosen on"] = checkpoint_choice(which, task)
    results = _results(record, dataset or "unknown", which, len(records)) if record else ()
    return ExportSource(str(run_dir), "run", genotype, weights, results, training, dataset, _data_facts(task))


def _published_source(folder: Path) -> ExportSource:
    """A folder `gdas export` wrote or a zoo weights folder, loaded as strictly as `gdas eval` loads it, with
    what its config.json and card record; a genotype-only export gives its genotype."""
    config = read_config(folder / CONFIG_FILE, f"{folder}/{CONFIG_FILE}")
    if config.args is None:
        return ExportSource(str(folder), "genotype", config.genotype)
    network = load_published_folder(folder)
    task = _published_task(folder)
    dataset = published_dataset(task["dataset"]) if isinstance(task.get("dataset"), str) else None
    training = {"weights": f"exported folder {folder.name}"}
    choice = config.extra.get("checkpoint_choice")
    if isinstance(choice, str) and choice:
        training["checkpoint chosen on"] = choice
    origin = network.pretrained_cfg.get("source")
    if isinstance(origin, str) and origin:
        training["source"] = origin
    results = _card_results(folder)
    weights = folder / WEIGHTS_FILE
    return ExportSource(str(folder), "export", network.genotype, weights, results, training, dataset, _data_facts(task))


_CARD_METRICS = {"top1-error": "top1_error", "top5-error": "top5_error"}


def _card_results(folder: Path) -> tuple[Result, ...]:
    """The results an exported folder's card states in its metadata (model-index), to be stated again."""
    path = folder / CARD_FILE
    if not path.is_file():
        return ()
    try:
        stated = ModelCard.load(path).data.eval_results or []
    except Exception as err:  # huggingface_hub raises YAML, value and type errors for malformed metadata
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise read_failure(err, path, f"{path}: unreadable card metadata ({first})") from None
    results = []
    for item in stated:
        metric = _CARD_METRICS.get(str(item.metric_type))
        if metric is None or not _is_number(item.metric_value) or not isinstance(item.dataset_type, str):
            raise GdasError(
                f"{path}: a stated result is not a top-1 or top-5 error in percent on a named data set "
                f"({item.metric_type}: {item.metric_value!r} on {item.dataset_type!r})"
            )
        split = item.dataset_split if isinstance(item.dataset_split, str) else "test"
        source = f"stated in {folder.name}/{CARD_FILE}"
        results.append(Result(metric, float(item.metric_value), item.dataset_type, split, source))
    return tuple(results)


def _task_of(config: dict[str, Any]) -> dict[str, Any]:
    task = config.get("task")
    return task if isinstance(task, dict) else {}


def _published_task(folder: Path) -> dict[str, Any]:
    """For weights in an exported folder: what its config.json's pretrained_cfg records, as a run's task would."""
    config = _read_json_object(folder / CONFIG_FILE)
    cfg = config.get("pretrained_cfg")
    if config.get("schema") != CONFIG_SCHEMA or not isinstance(cfg, dict):
        return {}
    task = {key: cfg[key] for key in ("dataset", "mean", "std", "label_names") if cfg.get(key) is not None}
    size = cfg.get("input_size")
    if isinstance(size, list) and len(size) == 3 and isinstance(size[-1], int):
        task["image_size"] = size[-1]
    return task


def _data_facts(task: dict[str, Any]) -> dict[str, Any]:
    """The normalisation, class names and image side a training run recorded (older runs recorded none)."""
    facts: dict[str, Any] = {}
    for key in ("mean", "std"):
        value = task.get(key)
        if isinstance(value, list) and value and all(_is_number(v) for v in value):
            facts[key] = tuple(float(v) for v in value)
    names = task.get("label_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        facts["label_names"] = list(names)
    side = task.get("image_size")
    if isinstance(side, int) and not isinstance(side, bool) and side > 0:
        facts["input_size"] = (3, side, side)
    return facts


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object, or {} when the file is missing; a malformed file is an error naming it."""
    return read_json_object(path) if path.is_file() else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record_for(records: list[dict[str, Any]], epoch: Any) -> dict[str, Any] | None:
    """The metrics record of the epoch a checkpoint holds (its progress.json), if it was evaluated."""
    for record in records:
        if record.get("epoch") == epoch and _is_number(record.get("test_top1")):
            return record
    return None


def _results(record: dict[str, Any], dataset: str, which: str, epochs_run: int) -> tuple[Result, ...]:
    choice = "chosen on the validation split" if which == "best" else "the final epoch"
    source = (
        f"measured by gdas train on the test split, epoch {record.get('epoch', '?')} ({which} checkpoint: {choice})"
    )
    found = []
    for key, metric in (("test_top1", "top1_error"), ("test_top5", "top5_error")):
        if _is_number(record.get(key)):
            found.append(Result(metric, round(100.0 - float(record[key]), 4), dataset, "test", source))
    return tuple(found)


def _training_facts(
    run_dir: Path, which: str, config: dict[str, Any], task: dict[str, Any], record: dict[str, Any] | None
) -> dict[str, Any]:
    engine = config.get("engine")
    if not isinstance(engine, dict):
        engine = {}
    facts: dict[str, Any] = {"training run": run_dir.name, "checkpoint": which}
    if record is not None:
        facts["checkpoint"] = f"{which} (epoch {record.get('epoch', '?')})"
    recipe: dict[str, Any] = {}
    if isinstance(task.get("dataset"), str):
        recipe["dataset"] = published_dataset(task["dataset"])
    recipe.update({k: task[k] for k in ("epochs", "batch_size", "lr", "cutout", "drop_path", "auxiliary") if k in task})
    if recipe:
        facts["recipe"] = recipe
    if "seed" in engine:
        facts["seed"] = engine["seed"]
    for key, label in (("gdas_version", "trained with gdas"), ("torch_version", "torch"), ("created", "started")):
        if key in config:
            facts[label] = config[key]
    return facts


# --- exporters ---------------------------------------------------------------------------------


def _require_modules(fmt: str) -> None:
    needed = {"onnx": ("onnx", "onnxscript"), "pt2": ()}[fmt]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise GdasError(f"--format {fmt} needs {' and '.join(missing)}: pip install 'gdas-cli[onnx]'")


def _compare(expected: torch.Tensor, got: torch.Tensor, what: str) -> float:
    got = torch.as_tensor(got, dtype=expected.dtype)
    if got.shape != expected.shape:
        raise GdasError(f"{what}: output shape {tuple(got.shape)} differs from PyTorch's {tuple(expected.shape)}")
    diff = (got - expected).abs()
    if not torch.all(diff <= ATOL + RTOL * expected.abs()):
        raise GdasError(f"{what}: outputs differ from PyTorch's by up to {diff.max().item():.2e}; nothing written")
    return float(diff.max().item())


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress and deprecation notes; the CLI prints its own summary."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _exporter_failure(what: str, err: Exception, path: Path) -> GdasError:
    """An exporter's failure in one line: the machine's (disk full while writing `path`) or the model's."""
    cause = environment_cause(err, path)
    if cause is not None:
        return GdasEnvironmentError(f"{path}: {cause}", path=path, cause=cause)
    return GdasError(f"{what} failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")


def export_onnx(model: torch.nn.Module, folder: Path, sample: torch.Tensor, check: torch.Tensor) -> dict[str, Any]:
    """model.onnx with a dynamic batch axis; compared with PyTorch by onnxruntime when it is installed."""
    path = Path(folder) / ONNX_FILE
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with _quiet():
            torch.onnx.export(
                model,
                (sample,),
                str(path),
                dynamo=True,
                opset_version=ONNX_OPSET,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes={"x": {0: batch}},
                external_data=False,
                verbose=False,
            )
    except Exception as err:  # the exporter raises many types; the user needs one line
        raise _exporter_failure("ONNX export", err, path) from None
    import onnx

    opset = next((o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")), ONNX_OPSET)
    info: dict[str, Any] = {"file": ONNX_FILE, "opset": opset, "input": "images", "output": "logits"}
    if importlib.util.find_spec("onnxruntime") is None:
        onnx.checker.check_model(str(path))
        info["checked"] = "onnx.checker only (onnxruntime is not installed, outputs not compared)"
        return info
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(check)
    (got,) = session.run(["logits"], {"images": check.numpy()})
    info["max_abs_diff"] = _compare(expected, torch.from_numpy(got), f"{ONNX_FILE} (onnxruntime)")
    info["checked"] = f"onnxruntime {onnxruntime.__version__}, batch of {check.shape[0]}"
    return info


def export_pt2(model: torch.nn.Module, folder: Path, sample: torch.Tensor, check: torch.Tensor) -> dict[str, Any]:
    """A torch.export ExportedProgram (dynamic batch), saved, reloaded, compared with PyTorch on another batch."""
    path = Path(folder) / PT2_FILE
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with _quiet():
            program = torch.export.export(model, (sample,), dynamic_shapes={"x": {0: batch}})
            torch.export.save(program, str(path))
    except Exception as err:  # the exporter raises many types; the user needs one line
        raise _exporter_failure("torch.export", err, path) from None
    # our own file, just written: loading it back is the round-trip check
    reloaded = torch.export.load(str(path)).module()
    with torch.no_grad():
        expected, got = model(check), reloaded(check)
    diff = _compare(expected, got, PT2_FILE)
    checked = f"torch.export.load, batch of {check.shape[0]}"
    return {"file": PT2_FILE, "input": "x", "output": "logits", "max_abs_diff": diff, "checked": checked}


EXPORTERS: dict[str, Callable[[torch.nn.Module, Path, torch.Tensor, torch.Tensor], dict[str, Any]]] = {
    "onnx": export_onnx,
    "pt2": export_pt2,
}


def _describe_export(fmt: str, info: dict[str, Any]) -> str:
    if fmt == "onnx":
        return f"ONNX, opset {info['opset']}, dynamic batch; checked: {info['checked']}" + (
            f" (max abs diff {info['max_abs_diff']:.1e})" if "max_abs_diff" in info else ""
        )
    return (
        "torch.export ExportedProgram (torch.export.load(path).module()), dynamic batch; "
        f"checked: {info['checked']} (max abs diff {info['max_abs_diff']:.1e})"
    )


def write_sidecar(folder: Path, info: dict[str, Any], cfg: dict[str, Any]) -> str:
    """`<file>.json` beside an exported graph: its input and output, and how to prepare an image for it."""
    name = info["file"] + SIDECAR_SUFFIX
    size = cfg["input_size"]
    sidecar = {
        "file": info["file"],
        "input": {
            "name": info["input"],
            "shape": ["batch", *size],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "preprocess": "resize (interpolation, crop_pct), scale to [0, 1], subtract mean, divide by std",
        },
        "output": {"name": info["output"], "shape": ["batch", cfg["num_classes"]], "meaning": "logits"},
        "pretrained_cfg": cfg,
    }
    write_json(Path(folder) / name, sidecar)
    return name


# --- building the folder -----------------------------------------------------------------------


def _test_batches(model: HubModel) -> tuple[torch.Tensor, torch.Tensor]:
    size = int(model.pretrained_cfg["input_size"][-1])
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, size, size, generator=generator), torch.randn(3, 3, size, size, generator=generator))


def build_folder(source: ExportSource, folder: Path, request: ExportRequest) -> tuple[list[str], dict[str, Any]]:
    """Write the published files of `source` into the (empty) `folder`; returns file names and export info."""
    folder = Path(folder)
    dataset = request.dataset or source.dataset
    known = {"dataset": dataset, "license": request.license, "source": _source_text(source)}
    if source.weights is None:
        write_genotype_files(source.genotype, folder)
        write_json(folder / CONFIG_FILE, make_config(source.genotype, None, None, genotype_only_cfg(**known)))
        facts = CardFacts(
            genotype=source.genotype,
            dataset=dataset,
            repo_id=request.repo_id,
            revision=request.tag,
            files=default_files(False),
            training=dict(source.training),
            license=request.license or "other",
        )
        render_card(facts).save(str(folder / CARD_FILE))
        return sorted(p.name for p in folder.iterdir()), {}
    network = load_network(source.weights)
    model = hub_class(network.genotype).from_network(network)
    model.eval()
    model.pretrained_cfg = pretrained_cfg_for(model.args, **known, **source.data_facts)
    sample, check = _test_batches(model)
    steps = track(request.formats, "export and verify", total=len(request.formats))
    exports = {fmt: EXPORTERS[fmt](model, folder, sample, check) for fmt in steps}
    files = default_files(True)
    for fmt, info in exports.items():
        files[info["file"]] = _describe_export(fmt, info)
        files[write_sidecar(folder, info, model.pretrained_cfg)] = f"what {info['file']} takes and gives"
    card = {
        "results": list(source.results),
        "training": dict(source.training),
        "dataset": dataset,
        "repo_id": request.repo_id,
        "revision": request.tag,
        "files": files,
        "license": request.license or "other",
    }
    model.save_pretrained(folder, model_card_kwargs=card)
    # what save_pretrained cannot know: the data set (`gdas eval --from-hub` defaults to it), the exports
    choice = source.training.get("checkpoint chosen on")
    extra = {"dataset": dataset, "exports": exports or None, "checkpoint_choice": choice}
    if any(extra.values()):
        config_path = folder / CONFIG_FILE
        config = read_json_object(config_path)
        config.update({k: v for k, v in extra.items() if v})
        write_json(config_path, config)
    return sorted(p.name for p in folder.iterdir()), exports


def _source_text(source: ExportSource) -> str:
    """pretrained_cfg's `source`: where these weights (or this genotype) came from."""
    if source.kind == "run":
        checkpoint = source.training.get("checkpoint", "")
        return f"gdas train run {source.training.get('training run', source.path)}, checkpoint {checkpoint}".strip()
    if source.kind == "weights":
        return f"checkpoint file {Path(source.path).name}"
    if source.kind == "export":
        return source.training.get("source") or f"exported folder {Path(source.path).name}"
    return f"genotype {source.genotype.ref}"


def _check_output(output: Path, overwrite: bool, source: str) -> None:
    reads = [Path(source)] if Path(source).exists() else []
    guard_output(output, overwrite=overwrite, reads=reads, folder=True)


def _make_readable(folder: Path) -> None:
    """Temp files are created private (0600/0700); a published folder gets the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def write_folder_atomically(output: Path, build: Callable[[Path], Any]) -> Any:
    """Run `build(tmp)` on a fresh folder beside `output`, then swap it in; on any failure remove it.

    A failure of the machine (disk full, read-only, file-size limit) names the file as it would have been
    in `output` and says what was kept.
    """
    output = Path(output).absolute()
    existed = output.exists()
    tmp: Path | None = None
    old = output.parent / f".{output.name}.old-{os.getpid()}"
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
        value = build(tmp)
        _make_readable(tmp)
        if output.exists():
            os.replace(output, old)
        try:
            os.replace(tmp, output)
        except OSError:
            if old.exists() and not output.exists():
                os.replace(old, output)
            raise
        return value
    except Exception as err:
        failed = getattr(err, "path", None) or getattr(err, "filename", None)
        cause = environment_cause(err, failed or tmp or output)
        if cause is None:
            raise
        where = output
        if failed is not None and tmp is not None and tmp in Path(failed).parents:
            where = output / Path(failed).relative_to(tmp)
        kept = f"the existing {output.name} is kept unchanged" if existed else f"{output.name} was not written"
        raise GdasEnvironmentError(f"--output {where}: {cause}; {kept}", path=where, cause=cause) from err
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _validate(request: ExportRequest, source: ExportSource) -> None:
    unknown = [f for f in request.formats if f not in FORMATS]
    if unknown:
        raise GdasError(f"--format {unknown[0]!r}: must be one of {', '.join(FORMATS)}")
    if request.output is None and request.repo_id is None:
        raise GdasError("give --output DIR, --push-to-hub ORG/NAME, or both")
    if request.repo_id is None and (request.tag or request.private):
        raise GdasError("--tag and --private go with --push-to-hub")
    if request.formats and source.weights is None:
        raise GdasError(f"{source.path}: --format needs weights; a genotype alone exports genotype.json and a card")
    for fmt in request.formats:
        _require_modules(fmt)
    if request.output is not None:
        _check_output(Path(request.output), request.overwrite, request.source)


def export(request: ExportRequest) -> ExportResult:
    """Check everything, build the folder (and push it as one commit, tagged); see the module docstring."""
    source = resolve_source(request.source)
    _validate(request, source)
    if request.repo_id is not None:
        check_push(request.repo_id, request.tag)

    if request.output is not None:
        folder = Path(request.output)
        files, exports = write_folder_atomically(folder, lambda tmp: build_folder(source, tmp, request))
        push = _push(folder, source, request) if request.repo_id else None
        return ExportResult(source, folder, files, exports, push)
    with tempfile.TemporaryDirectory(prefix="gdas-export-") as tmp:
        files, exports = build_folder(source, Path(tmp), request)
        push = _push(Path(tmp), source, request)
    return ExportResult(source, None, files, exports, push)


def _push(folder: Path, source: ExportSource, request: ExportRequest) -> PushResult:
    assert request.repo_id is not None
    what = "weights" if source.weights is not None else "genotype"
    message = f"gdas export of {source.genotype.ref} ({what})" + (f", {request.tag}" if request.tag else "")
    return push_folder(folder, request.repo_id, tag=request.tag, private=request.private, message=message)
