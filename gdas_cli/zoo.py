"""The named-model registry: `create_model` and `list_models`, like timm's.

Each model is one JSON file in the top-level `zoo/` folder (shipped in the wheel as
`gdas_cli/zoo`), schema `gdas-zoo-entry` version 1:

    name, description, genotype (a genotype ref, e.g. "gdas_frc@1.0.0"), network (NetworkArgs),
    dataset, input_size, weights (null; {repo_id, revision, sha256, file, [tag]} for a Hub repo;
    or {folder, sha256} for an exported folder shipped in the package, relative to the entry's file),
    metrics ({name: {value, source: paper|counted|measured, reference, [unit]}})

An entry whose `weights` is null is genotype-only: `create_model(name)` builds it untrained and
`pretrained=True` is an error. Weights are downloaded from the Hub at the pinned revision (or read
from the package's `zoo/weights/`, offline) and their sha256 is checked before they are loaded
(strictly). Folders listed in GDAS_ZOO_PATH
(os.pathsep-separated) add entries of your own.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import hub
from .errors import GdasError
from .genotype import HUB_PREFIX, Genotype, data_dir
from .jsonio import read_json
from .models import CellFeatures, NetworkArgs
from .published import (
    CONFIG_FILE,
    PublishedConfig,
    PublishedNetwork,
    load_published_folder,
    published_class,
    read_config,
)
from .refs import load_genotype
from .rundir import resolve
from .weights import WEIGHTS_FILE, load_network, load_state_strict, read_metadata, read_tensors

ZOO_SCHEMA = "gdas-zoo-entry"
ZOO_SCHEMA_VERSION = 1
ZOO_PATH_ENV = "GDAS_ZOO_PATH"
METRIC_NAMES = ("top1_error", "top5_error", "params", "mult_adds")
METRIC_SOURCES = ("paper", "counted", "measured")
INPUT_SIZES = {"cifar": 32, "imagenet": 224}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEYS = {
    "schema",
    "schema_version",
    "name",
    "description",
    "genotype",
    "network",
    "dataset",
    "input_size",
    "weights",
    "metrics",
}
# Options create_model passes on to NetworkArgs; num_classes has its own argument.
ARCH_OPTIONS = ("net", "C", "layers", "auxiliary")


@dataclass(frozen=True)
class ZooWeights:
    """Where an entry's weights live: a Hub repo at a pinned revision, or an exported folder shipped
    beside the entry (`folder`, relative to it); and the weights file's sha256."""

    sha256: str
    repo_id: str | None = None
    revision: str | None = None
    file: str = "model.safetensors"
    tag: str | None = None
    folder: str | None = None


@dataclass(frozen=True)
class ZooMetric:
    value: float
    source: str  # paper | counted | measured
    reference: str
    unit: str | None = None


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    genotype: str
    network: NetworkArgs
    dataset: str
    input_size: tuple[int, int, int]
    weights: ZooWeights | None
    metrics: dict[str, ZooMetric]
    path: Path

    @property
    def pretrained(self) -> bool:
        return self.weights is not None


class _EntryReader:
    """Validates one zoo file; every problem is a GdasError naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> GdasError:
        return GdasError(f"{self.path}: {where}: {problem}")

    def read(self) -> ZooEntry:
        data = read_json(self.path, "zoo entry")
        if not isinstance(data, dict):
            raise GdasError(f"{self.path}: a zoo entry must be a JSON object")
        return self.entry(data)

    def entry(self, data: dict[str, Any]) -> ZooEntry:
        if data.get("schema") != ZOO_SCHEMA:
            raise self.fail("schema", f"expected {ZOO_SCHEMA!r}, got {data.get('schema')!r}")
        if data.get("schema_version") != ZOO_SCHEMA_VERSION:
            raise self.fail("schema_version", f"unsupported {data.get('schema_version')!r} (this gdas reads 1)")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise self.fail(unknown[0], f"unknown field; known: {', '.join(sorted(_KEYS))}")
        name = self.text(data, "name")
        if not _NAME_RE.match(name) or name != self.path.stem:
            raise self.fail("name", f"{name!r} must be lower-case letters, digits and '_', and match the file name")
        network = NetworkArgs.from_dict(data.get("network"), f"{self.path}: network")
        size = INPUT_SIZES.get(network.net)
        if size is None:
            raise self.fail("network.net", f"{network.net!r} must be one of {', '.join(INPUT_SIZES)}")
        if data.get("input_size") != [3, size, size]:
            raise self.fail(
                "input_size", f"a {network.net} network takes [3, {size}, {size}], got {data.get('input_size')!r}"
            )
        weights = self.weights(data.get("weights", "missing"))
        metrics = self.metrics(data.get("metrics"), weights is not None)
        return ZooEntry(
            name,
            self.text(data, "description"),
            self.text(data, "genotype"),
            network,
            self.text(data, "dataset"),
            (3, size, size),
            weights,
            metrics,
            self.path,
        )

    def text(self, data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "missing or not a non-empty string")
        return value

    def weights(self, data: Any) -> ZooWeights | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise self.fail("weights", "must be null (genotype-only) or {repo_id, revision, sha256, file}")
        if "folder" in data:
            return self.packaged_weights(data)
        allowed = {f.name for f in dataclasses.fields(ZooWeights)} - {"folder"}
        if set(data) - allowed or not {"repo_id", "revision", "sha256"} <= set(data):
            raise self.fail("weights", f"needs repo_id, revision and sha256 (optional: file, tag), got {sorted(data)}")
        if not isinstance(data["repo_id"], str) or not _REPO_RE.match(data["repo_id"]):
            raise self.fail("weights.repo_id", f"{data['repo_id']!r} is not org/name")
        if not isinstance(data["sha256"], str) or not _SHA256_RE.match(data["sha256"]):
            raise self.fail("weights.sha256", "must be 64 lower-case hex digits")
        if not isinstance(data["revision"], str) or not data["revision"]:
            raise self.fail("weights.revision", "must be a tag, branch or (best) a commit")
        if data.get("file", "model.safetensors") != "model.safetensors":
            raise self.fail("weights.file", "gdas publishes model.safetensors")
        return ZooWeights(**data)

    def packaged_weights(self, data: dict[str, Any]) -> ZooWeights:
        if set(data) != {"folder", "sha256"}:
            raise self.fail("weights", f"a shipped folder needs folder and sha256 only, got {sorted(data)}")
        folder = data["folder"]
        if not isinstance(folder, str) or not folder or Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise self.fail("weights.folder", f"{folder!r} must be a relative path inside the zoo folder")
        if not isinstance(data["sha256"], str) or not _SHA256_RE.match(data["sha256"]):
            raise self.fail("weights.sha256", "must be 64 lower-case hex digits")
        return ZooWeights(sha256=data["sha256"], folder=folder)

    def metrics(self, data: Any, has_weights: bool) -> dict[str, ZooMetric]:
        if not isinstance(data, dict):
            raise self.fail("metrics", "must be an object of {name: {value, source, reference}}")
        found = {}
        for key, item in data.items():
            where = f"metrics.{key}"
            if key not in METRIC_NAMES:
                raise self.fail(where, f"unknown metric; known: {', '.join(METRIC_NAMES)}")
            if not isinstance(item, dict) or set(item) - {"value", "source", "reference", "unit"}:
                raise self.fail(where, "must be {value, source, reference[, unit]}")
            value, source = item.get("value"), item.get("source")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise self.fail(f"{where}.value", f"must be a non-negative number, got {value!r}")
            if source not in METRIC_SOURCES:
                raise self.fail(f"{where}.source", f"{source!r} must be one of {', '.join(METRIC_SOURCES)}")
            if source == "measured" and not has_weights:
                raise self.fail(
                    f"{where}.source", "'measured' needs published weights; use 'paper' for reported numbers"
                )
            reference = self.text(item, "reference") if "reference" in item else ""
            if not reference:
                raise self.fail(f"{where}.reference", "say where the number comes from")
            found[key] = ZooMetric(float(value), source, reference, item.get("unit"))
        return found


def zoo_dirs() -> list[Path]:
    """The shipped zoo folder, then the folders in GDAS_ZOO_PATH."""
    extra = [Path(p) for p in os.environ.get(ZOO_PATH_ENV, "").split(os.pathsep) if p]
    return [data_dir("zoo"), *extra]


def read_entry(path: Path) -> ZooEntry:
    return _EntryReader(Path(path)).read()


def load_zoo() -> dict[str, ZooEntry]:
    """Every entry by name; a duplicate name across folders is an error naming both files."""
    entries: dict[str, ZooEntry] = {}
    for folder in zoo_dirs():
        if not folder.is_dir():
            if folder != data_dir("zoo"):
                raise GdasError(f"{ZOO_PATH_ENV}: {folder} is not a folder")
            continue
        for path in sorted(folder.glob("*.json")):
            entry = read_entry(path)
            if entry.name in entries:
                raise GdasError(f"{path}: model {entry.name!r} is already defined by {entries[entry.name].path}")
            entries[entry.name] = entry
    return entries


def get_entry(name: str) -> ZooEntry:
    entries = load_zoo()
    if name in entries:
        return entries[name]
    hint = ""
    try:
        genotype = load_genotype(name)
        models = [e.name for e in entries.values() if e.genotype.partition("@")[0] == genotype.name]
        hint = f"; {name!r} is a genotype: build it with gdas_cli.build_network" + (
            f", or use a model of it: {', '.join(models)}" if models else ""
        )
    except GdasError:
        pass
    raise GdasError(f"{name!r}: unknown model{hint}; known: {', '.join(sorted(entries))}")


def _patterns(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def list_models(
    filter: str | Sequence[str] = "", pretrained: bool = False, exclude_filters: str | Sequence[str] = ()
) -> list[str]:
    """Model names, sorted, as timm's `list_models`.

    Args:
        filter: shell-style pattern(s) (fnmatch: `*frc*`, `gdas_?ifar10`); a name matching any is kept.
            Empty: every model.
        pretrained: only the models with published weights.
        exclude_filters: pattern(s); a name matching any is dropped.
    """
    include = [p for p in _patterns(filter) if p]
    exclude = _patterns(exclude_filters)
    names = []
    for entry in load_zoo().values():
        if pretrained and not entry.pretrained:
            continue
        if include and not any(fnmatch.fnmatchcase(entry.name, p) for p in include):
            continue
        if any(fnmatch.fnmatchcase(entry.name, p) for p in exclude):
            continue
        names.append(entry.name)
    return sorted(names)


def _args_with(args: NetworkArgs, num_classes: int | None, overrides: dict[str, Any], what: str) -> NetworkArgs:
    unknown = sorted(set(overrides) - set(ARCH_OPTIONS))
    if unknown:
        raise GdasError(
            f"{what}: unknown option(s) {', '.join(unknown)}; known: num_classes, {', '.join(ARCH_OPTIONS)}"
        )
    values = {**args.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
    if num_classes is not None:
        values["num_classes"] = num_classes
    return NetworkArgs.from_dict(values, what)


def _check_pretrained_overrides(what: str, overrides: dict[str, Any], args: NetworkArgs) -> None:
    changed = [k for k, v in overrides.items() if v is not None and getattr(args, k, v) != v]
    if changed:
        raise GdasError(
            f"{what}: {', '.join(changed)} cannot change with pretrained weights (they fix the architecture); "
            "use pretrained=False, or only num_classes for a new head"
        )


@dataclass(frozen=True)
class _Source:
    """What `create_model` was asked for: how to describe it (untrained) and how to load its weights."""

    label: str
    describe: Callable[[], tuple[Genotype, NetworkArgs]]
    load: Callable[[], PublishedNetwork]


def _described(config: PublishedConfig, label: str) -> tuple[Genotype, NetworkArgs]:
    if config.args is None:
        raise GdasError(
            f"{label}: a genotype published alone (no network); build it with "
            "gdas_cli.build_network(genotype, NetworkArgs(...)) or train it with gdas train"
        )
    return config.genotype, config.args


def _hub_source(ref_text: str) -> _Source:
    ref = hub.parse_ref(ref_text)

    def describe() -> tuple[Genotype, NetworkArgs]:
        return _described(hub.load_hub_config(ref), ref.label)

    return _Source(ref.label, describe, lambda: hub.load_hub_model(ref)[0])


def _folder_source(folder: Path) -> _Source:
    if not (folder / CONFIG_FILE).is_file():
        raise GdasError(f"{folder}: not an exported model folder (no {CONFIG_FILE}; `gdas export` writes one)")

    def describe() -> tuple[Genotype, NetworkArgs]:
        return _described(read_config(folder / CONFIG_FILE, f"{folder}/{CONFIG_FILE}"), str(folder))

    def load() -> PublishedNetwork:
        if not (folder / WEIGHTS_FILE).is_file():
            raise GdasError(f"{folder}: a genotype-only export (no {WEIGHTS_FILE}); use pretrained=False")
        return load_published_folder(folder)

    return _Source(str(folder), describe, load)


def _load_entry_weights(entry: ZooEntry, genotype: Genotype) -> PublishedNetwork:
    if entry.weights is None:
        raise GdasError(
            f"{entry.name}: no pretrained weights are published for this model yet (a genotype-only zoo entry); "
            "use pretrained=False for random weights, or train it: "
            f"gdas train {entry.dataset} --genotype {entry.genotype}"
        )
    if entry.weights.folder is not None:  # shipped in the package: no network needed
        folder = entry.path.parent / entry.weights.folder
        model = load_published_folder(folder, expected_sha256=entry.weights.sha256)
        where = str(folder)
    else:
        assert entry.weights.repo_id is not None and entry.weights.revision is not None
        ref = hub.HubRef(entry.weights.repo_id, entry.weights.revision)
        model, _ = hub.load_hub_model(ref, expected_sha256=entry.weights.sha256)
        where = ref.label
    if model.genotype != genotype or model.args != entry.network:
        raise GdasError(
            f"{entry.name}: {where} holds {model.genotype.ref} with {model.args}, but the zoo entry "
            f"says {genotype.ref} with {entry.network}"
        )
    return model


def _entry_source(entry: ZooEntry) -> _Source:
    def load() -> PublishedNetwork:
        return _load_entry_weights(entry, load_genotype(entry.genotype))

    return _Source(entry.name, lambda: (load_genotype(entry.genotype), entry.network), load)


def _source(name_or_ref: str | Path) -> _Source:
    text = str(name_or_ref)
    if not text:
        raise GdasError("create_model: expected a model name, hf-hub:org/name@rev or an exported folder, got ''")
    if text.startswith(HUB_PREFIX):
        return _hub_source(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _folder_source(path)
    if isinstance(name_or_ref, Path) or os.sep in text or path.exists():
        raise GdasError(f"{text}: no such exported model folder")
    return _entry_source(get_entry(text))


def _load_checkpoint(model: PublishedNetwork, checkpoint_path: str | Path) -> None:
    """timm's checkpoint_path: weights loaded strictly over the model as built (a file or an exported folder)."""
    path = Path(checkpoint_path).expanduser()
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    genotype, args = read_metadata(weights)
    if genotype != model.genotype or args != model.args:
        raise GdasError(
            f"checkpoint_path {weights}: holds {genotype.ref} with {args}, but the model is "
            f"{model.genotype.ref} with {model.args}"
        )
    state = read_tensors(weights, label=str(weights))
    load_state_strict(model, state, f"genotype {model.genotype.ref}", str(weights))


def create_model(
    name_or_ref: str | Path,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    drop_path_rate: float | None = None,
    checkpoint_path: str | Path | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **kwargs: Any,
) -> PublishedNetwork | CellFeatures:
    """Build a model, timm-style: a zoo name, a published one (`hf-hub:org/name[@rev]`) or an exported folder.

    Args:
        name_or_ref: a name from `list_models()`, `hf-hub:org/name@rev`, or a folder `gdas export` wrote.
        pretrained: load the published weights (strict; sha256-checked). Like timm, the model is returned
            in train mode either way: call `.eval()` before inference.
        num_classes: a classifier for this many classes. With pretrained weights every other weight is
            kept and the classifier (and auxiliary classifier) is fresh (`reset_classifier`); 0 removes it.
        in_chans: input channels; these networks take 3 (RGB), anything else is an error.
        drop_path_rate: drop-path probability of the cells (training ramps it itself).
        checkpoint_path: a weights file (or exported folder) loaded strictly over the built model.
        features_only: return a backbone (`CellFeatures`) giving the feature maps of `out_indices`
            (default: all four levels: the stem, then the deepest cell at each stride), with the same
            (pretrained) weights; `feature_info` says each level's channels and reduction.
        **kwargs: `net`, `C`, `layers`, `auxiliary` for an untrained model.

    Returns the published-format network of the genotype's space (`gdas_cli.published.GdasNetwork` for
    DARTS cells, `GdasNB201Network` for NAS-Bench-201 cells: the network class with `save_folder`;
    `gdas_cli.hub.hub_class(genotype).from_network(model)` adds `push_to_hub`).
    """
    if not isinstance(name_or_ref, (str, Path)):
        raise GdasError(f"create_model: expected a model name, hf-hub:org/name@rev or a folder, got {name_or_ref!r}")
    if in_chans not in (None, 3):
        raise GdasError(f"in_chans {in_chans!r}: these networks take 3-channel (RGB) images; convert the input")
    if drop_path_rate is not None and not 0 <= drop_path_rate < 1:
        raise GdasError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    source = _source(name_or_ref)
    _args_with(NetworkArgs(), None, kwargs, source.label)  # unknown option names fail before downloading
    if pretrained:
        model = source.load()
        _check_pretrained_overrides(source.label, kwargs, model.args)
        if num_classes is not None and num_classes != model.num_classes:
            model.reset_classifier(num_classes)
    else:
        genotype, args = source.describe()
        model = published_class(genotype)(genotype, _args_with(args, num_classes, kwargs, source.label))
    if drop_path_rate is not None:
        model.drop_path_prob = drop_path_rate
    if checkpoint_path is not None:
        _load_checkpoint(model, checkpoint_path)
    if features_only:
        return _backbone(model, out_indices).train()
    if out_indices is not None:
        raise GdasError("out_indices: only with features_only=True")
    return model.train()


def _pretrained_network(ref: str) -> PublishedNetwork:
    """create_model(ref, pretrained=True), the classifier network (never a backbone)."""
    model = create_model(ref, pretrained=True)
    assert not isinstance(model, CellFeatures)  # features_only was not asked for
    return model


def _backbone(model: PublishedNetwork, out_indices: Sequence[int] | None) -> CellFeatures:
    """The feature levels of `model` as a backbone, holding the same weights (every backbone weight is the model's)."""
    backbone = CellFeatures(
        model.genotype,
        model.args,
        out_indices=out_indices,
        drop_path_rate=model.drop_path_prob,
        pretrained_cfg=model.pretrained_cfg,
    )
    result = backbone.load_state_dict(model.state_dict(), strict=False)
    if result.missing_keys:
        raise GdasError(f"features_only: the backbone has weights the model lacks: {result.missing_keys[:3]}")
    return backbone


def load_init(ref: str) -> tuple[PublishedNetwork, dict[str, Any]]:
    """The weights `gdas train --init REF` starts from, and where they came from (for the run's config.json).

    REF: a zoo name with weights, `hf-hub:org/name[@rev]`, an exported folder, or a checkpoint (a
    weights file, a checkpoint folder or a training run's checkpoint/last). Everything is loaded strictly.
    """
    path = Path(ref).expanduser()
    published = path.is_dir() and (path / CONFIG_FILE).is_file() and not _is_run(path)
    if not ref.startswith(HUB_PREFIX) and path.exists() and not published:
        found = resolve(path, prefer=("last",))
        network = load_network(found.weights)
        model = published_class(network.genotype).from_network(network)
        return model, {"ref": ref, "kind": "checkpoint", "weights": str(found.weights.resolve())}
    model = _pretrained_network(ref)
    kind = "hub" if ref.startswith(HUB_PREFIX) else "folder" if path.is_dir() else "zoo"
    info: dict[str, Any] = {"ref": ref, "kind": kind}
    if kind == "zoo":
        weights = get_entry(ref).weights
        info["sha256"] = weights.sha256 if weights is not None else None
    return model, info


def _is_run(path: Path) -> bool:
    """A training run folder (its config.json is a run config, not a published one)."""
    try:
        return isinstance(json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("engine"), dict)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False
