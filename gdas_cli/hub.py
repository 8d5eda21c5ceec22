"""Publish to and fetch from the Hugging Face Hub, with huggingface_hub's own client.

A published model (a Hub repo, or the folder `gdas export` writes) holds:

    config.json        schema `gdas-hub-config` v1: the genotype, the network arguments, the
                       sha256 of the weights file
    model.safetensors  the weights.py format: genotype and network arguments in the header too
    genotype.json      the genotype file, usable anywhere as `hf-hub:org/name@rev`
    README.md          the model card (YAML metadata, then the cell, counts, results, provenance)
    cell.png           the cell drawing the card shows

A genotype-only repo holds genotype.json, README.md and cell.png. Versions are Hub revisions
(tags, branches or commits). Loading is strict and reads only JSON and safetensors: nothing is
unpickled, and a genotype/weights mismatch is an error naming the repo and revision.

`GdasNetwork` is a CellNetwork with huggingface_hub's ModelHubMixin (`from_pretrained`,
`save_pretrained`, `push_to_hub`); its loading replaces the mixin's non-strict default.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from huggingface_hub import HfApi, ModelCard, ModelCardData, ModelHubMixin, constants, get_token, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HFValidationError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.repocard_data import EvalResult

from .errors import GdasError
from .genotype import HUB_PREFIX, FRC, Cell, Genotype
from .models import CellNetwork, NetworkArgs
from .checkpoint import write_json
from .files import atomic_write_text
from .weights import load_state_strict, read_metadata, read_tensors, save_network
from .zoo import network_args_from_dict

LIBRARY_NAME = "gdas-cli"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
GENOTYPE_FILE = "genotype.json"
CARD_FILE = "README.md"
CELL_IMAGE = "cell.png"
CONFIG_SCHEMA = "gdas-hub-config"
CONFIG_SCHEMA_VERSION = 1
PAPER_URL = "https://arxiv.org/abs/1910.04465"
TAGS = ["gdas", "neural-architecture-search", "image-classification", "pytorch", "safetensors"]
# Files an export owns: a new version replaces them all, so files dropped since the last one go too.
MANAGED_PATTERNS = ["*.json", "*.safetensors", "*.onnx", "*.pt", "*.png", CARD_FILE]
INPUT_SIZES = {"cifar": 32, "imagenet": 224}
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def _gdas_version() -> str:
    from . import __version__  # imported late: gdas_cli/__init__ may still be importing

    return __version__


# --- references and errors -------------------------------------------------------------------


@dataclass(frozen=True)
class HubRef:
    """A Hub model repo at a revision (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}@{self.revision or 'main'}"

    def at(self, revision: str) -> "HubRef":
        return HubRef(self.repo_id, revision)


def parse_ref(spec: str) -> HubRef:
    """`org/name`, `org/name@rev`, optionally prefixed with `hf-hub:`."""
    text = spec[len(HUB_PREFIX) :] if spec.startswith(HUB_PREFIX) else spec
    repo_id, at, revision = text.partition("@")
    if not _REPO_RE.match(repo_id) or ".." in repo_id or (at and not revision.strip()):
        raise GdasError(f"{spec!r}: a Hub reference is org/name or org/name@revision (a tag, branch or commit)")
    return HubRef(repo_id, revision or None)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


@contextlib.contextmanager
def hub_errors(ref: HubRef, filename: str | None = None) -> Iterator[None]:
    """Turn the Hub client's exceptions into one GdasError line naming the repo and revision."""
    what = f"{ref.label}" + (f" ({filename})" if filename else "")
    try:
        yield
    except GatedRepoError:
        raise GdasError(f"{what}: the repository is gated; accept its terms on the Hub and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise GdasError(
            f"{what}: repository {ref.repo_id} not found on {constants.ENDPOINT} "
            "(or it is private and no token with access is set: hf auth login, or HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise GdasError(
            f"{what}: revision {ref.revision!r} not found in {ref.repo_id} (not a tag, branch or commit)"
        ) from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as err:
        if constants.is_offline_mode():
            raise GdasError(
                f"{what}: not in the local cache and HF_HUB_OFFLINE is set; fetch it once online first"
            ) from None
        raise GdasError(f"{what}: cannot reach {constants.ENDPOINT} and nothing is cached ({_first_line(err)})") from None
    except EntryNotFoundError:
        raise GdasError(f"{what}: the repository has no {filename or 'such file'} at this revision") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        if status in (401, 403):
            raise GdasError(f"{what}: not authorised (HTTP {status}); check your token (hf auth login, or HF_TOKEN)") from None
        raise GdasError(f"{what}: the Hub answered HTTP {status} ({_first_line(err)})") from None
    except HFValidationError as err:
        raise GdasError(f"{what}: {_first_line(err)}") from None
    except (ConnectionError, TimeoutError) as err:
        raise GdasError(f"{what}: cannot reach {constants.ENDPOINT} ({_first_line(err)})") from None
    except OSError as err:
        if type(err).__module__.startswith(("httpx", "httpcore")):
            raise GdasError(f"{what}: cannot reach {constants.ENDPOINT} ({_first_line(err)})") from None
        raise GdasError(f"{what}: cannot write to the Hub cache {constants.HF_HUB_CACHE} ({err})") from None
    except Exception as err:
        # The client's network errors (httpx2) share no public base class with the ones above.
        if type(err).__module__.startswith(("httpx", "httpcore")):
            raise GdasError(f"{what}: cannot reach {constants.ENDPOINT} ({_first_line(err)})") from None
        raise


# --- config.json -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedConfig:
    """The validated content of a published config.json."""

    genotype: Genotype
    args: NetworkArgs
    weights_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def make_config(genotype: Genotype, args: NetworkArgs, weights_sha256: str | None = None) -> dict[str, Any]:
    size = INPUT_SIZES.get(args.net)
    config: dict[str, Any] = {
        "schema": CONFIG_SCHEMA,
        "schema_version": CONFIG_SCHEMA_VERSION,
        "library_name": LIBRARY_NAME,
        "gdas_version": _gdas_version(),
        "genotype": genotype.to_dict(),
        "network": args.to_dict(),
        "input_size": [3, size, size] if size else None,
    }
    if weights_sha256:
        config["weights"] = {"file": WEIGHTS_FILE, "sha256": weights_sha256}
    return config


def parse_config(text: str, source: str) -> PublishedConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GdasError(f"{source}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or data.get("schema") != CONFIG_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise GdasError(f"{source}: not a gdas model config (schema {found!r}, expected {CONFIG_SCHEMA!r})")
    if data.get("schema_version") != CONFIG_SCHEMA_VERSION:
        raise GdasError(f"{source}: unsupported schema_version {data.get('schema_version')!r} (this gdas reads 1)")
    genotype = Genotype.from_dict(data.get("genotype"), f"{source} genotype")
    args = network_args_from_dict(data.get("network"), f"{source} network")
    weights = data.get("weights") or {}
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    if sha is not None and not (isinstance(sha, str) and _SHA256_RE.match(sha)):
        raise GdasError(f"{source}: weights.sha256 must be 64 lower-case hex digits")
    if data.get("dataset") is not None and not isinstance(data["dataset"], str):
        raise GdasError(f"{source}: dataset must be a string")
    extra = {k: v for k, v in data.items() if k not in {"genotype", "network", "weights"}}
    return PublishedConfig(genotype, args, sha, extra)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- strict loading --------------------------------------------------------------------------


def _relabel(err: GdasError, path: Path, label: str) -> GdasError:
    """weights.py names the cached file; users should see the repo and revision instead."""
    message = str(err)
    if message.startswith(str(path)):
        message = label + message[len(str(path)) :]
    elif not message.startswith(label):
        message = f"{label}: {message}"
    return GdasError(message)


def load_published_model(
    config_path: Path,
    weights_path: Path,
    genotype_path: Path | None,
    label: str,
    expected_sha256: str | None = None,
    map_location: str = "cpu",
) -> "GdasNetwork":
    """Check config, genotype file, header and hashes against each other; build; load strictly."""
    config = parse_config(Path(config_path).read_text(encoding="utf-8"), f"{label}/{CONFIG_FILE}")
    if genotype_path is not None:
        stored = Genotype.from_json(Path(genotype_path).read_text(encoding="utf-8"), f"{label}/{GENOTYPE_FILE}")
        if stored != config.genotype:
            raise GdasError(
                f"{label}: {GENOTYPE_FILE} ({stored.ref}) and {CONFIG_FILE} ({config.genotype.ref}) describe different cells"
            )
    digest = sha256_file(weights_path)
    for want, where in ((expected_sha256, "the zoo entry"), (config.weights_sha256, CONFIG_FILE)):
        if want and digest != want:
            raise GdasError(
                f"{label}/{WEIGHTS_FILE}: sha256 {digest[:12]}... does not match {where} ({want[:12]}...): "
                "the file is corrupted or not the published one"
            )
    label_file = f"{label}/{WEIGHTS_FILE}"
    try:
        header_genotype, header_args = read_metadata(weights_path)
    except GdasError as err:
        raise _relabel(err, weights_path, label_file) from None
    if header_genotype != config.genotype:
        raise GdasError(
            f"{label_file}: weights were saved for genotype {header_genotype.ref}, but {CONFIG_FILE} "
            f"says {config.genotype.ref} (different cells): refusing to load"
        )
    if header_args != config.args:
        raise GdasError(f"{label_file}: weights were saved for network {header_args}, but {CONFIG_FILE} says {config.args}")
    model = GdasNetwork(config.genotype, config.args)
    state = read_tensors(weights_path, map_location, label=label_file)
    try:
        load_state_strict(model, state, f"genotype {config.genotype.ref}", label_file)
    except GdasError as err:
        raise _relabel(err, weights_path, label_file) from None
    return model.eval()


# --- fetching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubSnapshot:
    """Files of one repo revision in the local Hub cache, all from the same commit."""

    ref: HubRef
    commit: str | None
    files: dict[str, Path]

    @property
    def label(self) -> str:
        return self.ref.label


def _commit_of(path: Path) -> str | None:
    parent = Path(path).parent
    return parent.name if parent.parent.name == "snapshots" and _COMMIT_RE.match(parent.name) else None


def download(ref: HubRef, filename: str, **options: Any) -> Path:
    """hf_hub_download into the Hub cache (or read it there when offline), errors as GdasError."""
    with hub_errors(ref, filename):
        path = hf_hub_download(
            ref.repo_id, filename, revision=ref.revision, library_name=LIBRARY_NAME,
            library_version=_gdas_version(), **options,
        )
    return Path(path)


def fetch_model_files(ref: HubRef, **options: Any) -> HubSnapshot:
    """config.json, genotype.json and model.safetensors of one commit (resolved from the revision once)."""
    try:
        config = download(ref, CONFIG_FILE, **options)
    except GdasError as err:
        if f"has no {CONFIG_FILE}" in str(err):
            raise GdasError(
                f"{ref.label}: no {CONFIG_FILE} in this repo, so no gdas model to load "
                f"(a genotype-only repo is used as --genotype {ref.label})"
            ) from None
        raise
    commit = _commit_of(config)
    pinned = ref.at(commit) if commit else ref
    files = {CONFIG_FILE: config}
    for name in (GENOTYPE_FILE, WEIGHTS_FILE):
        with _relabelled(pinned, ref):
            files[name] = download(pinned, name, **options)
    return HubSnapshot(ref, commit, files)


@contextlib.contextmanager
def _relabelled(pinned: HubRef, ref: HubRef) -> Iterator[None]:
    """Errors on files fetched by commit still name the revision the user gave."""
    try:
        yield
    except GdasError as err:
        raise GdasError(str(err).replace(pinned.label, ref.label, 1)) from None


def load_hub_genotype(spec: str) -> Genotype:
    """The genotype.json of `org/name[@rev]`; the resolver behind `hf-hub:` genotype references."""
    ref = parse_ref(spec)
    path = download(ref, GENOTYPE_FILE)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GdasError(f"{ref.label}/{GENOTYPE_FILE}: cannot read ({err})") from None
    return Genotype.from_json(text, f"{ref.label}/{GENOTYPE_FILE}")


def load_hub_model(
    spec: str | HubRef, expected_sha256: str | None = None, map_location: str = "cpu", **options: Any
) -> tuple["GdasNetwork", HubSnapshot]:
    """Download (or read from the cache) a published model and load it strictly, in eval mode."""
    ref = parse_ref(spec) if isinstance(spec, str) else spec
    snapshot = fetch_model_files(ref, **options)
    model = load_published_model(
        snapshot.files[CONFIG_FILE], snapshot.files[WEIGHTS_FILE], snapshot.files[GENOTYPE_FILE],
        ref.label, expected_sha256, map_location,
    )
    return model, snapshot


def evaluate_hub_model(spec: str, *, dataset: str | None = None, which: str = "last", **options: Any) -> dict[str, Any]:
    """`gdas eval --from-hub`: fetch (or read from the cache), verify strictly, then `evaluate_checkpoint`.

    `dataset` defaults to the one the published config.json names; `which` (a run's checkpoint
    choice) does not apply to a published model.
    """
    from .evaluate import evaluate_checkpoint

    ref = parse_ref(spec)
    _, snapshot = load_hub_model(ref)
    weights = snapshot.files[WEIGHTS_FILE]
    config = parse_config(snapshot.files[CONFIG_FILE].read_text(encoding="utf-8"), f"{ref.label}/{CONFIG_FILE}")
    dataset = dataset or config.extra.get("dataset")
    if not dataset:
        raise GdasError(f"{ref.label}: the model does not name the data set it was trained on; pass --dataset")
    label = f"{ref.label}/{WEIGHTS_FILE}"
    try:
        result = evaluate_checkpoint(weights, dataset=dataset, **options)
    except GdasError as err:
        raise GdasError(str(err).replace(str(weights), label)) from None
    result.update(checkpoint=label, repo_id=ref.repo_id, revision=ref.revision or "main", commit=snapshot.commit)
    return result


def load_hub_config(spec: str | HubRef, **options: Any) -> PublishedConfig:
    """Only the config.json of a published model: enough to build it untrained."""
    ref = parse_ref(spec) if isinstance(spec, str) else spec
    path = download(ref, CONFIG_FILE, **options)
    return parse_config(path.read_text(encoding="utf-8"), f"{ref.label}/{CONFIG_FILE}")


# --- model cards -------------------------------------------------------------------------------

_CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

## The cell

{% if image %}![{{ genotype_ref }} cells]({{ image }})

{% endif %}{% for role, lines in cells %}**{{ role }} cell**

```
{% for line in lines %}{{ line }}
{% endfor %}```

{% endfor %}{% if network_rows %}## The network

| | |
|---|---|
{% for key, value in network_rows %}| {{ key }} | {{ value }} |
{% endfor %}
{% endif %}## Results

{% if results %}| dataset | split | metric | value | source |
|---|---|---|---|---|
{% for r in results %}| {{ r.dataset }} | {{ r.split }} | {{ r.metric }} | {{ r.value }} | {{ r.source }} |
{% endfor %}{% else %}{{ no_results }}
{% endif %}
## Provenance

{% for key, value in provenance %}- **{{ key }}**: {{ value }}
{% endfor %}
## How to load

{{ how_to_load }}

## Files

{% for name, what in files %}- `{{ name }}`: {{ what }}
{% endfor %}
Made with [gdas-cli](https://pypi.org/project/gdas-cli/) {{ gdas_version }}. GDAS: Dong & Yang,
*Searching for A Robust Neural Architecture in Four GPU Hours*, CVPR 2019 ([paper]({{ paper_url }})).
"""

_DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet-1k": "ImageNet-1k", "imagenet": "ImageNet-1k"}
_METRIC_NAMES = {"top1_error": "top-1 error", "top5_error": "top-5 error"}
_HUB_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet-1k", "imagenet-1k": "imagenet-1k"}


@dataclass(frozen=True)
class Result:
    """One measured (or reported) number, in percent, with where it comes from."""

    metric: str  # top1_error | top5_error
    value: float
    dataset: str
    split: str = "test"
    source: str = ""


@dataclass
class CardFacts:
    """Everything a model card says; export.py fills it from a run, a checkpoint or a genotype."""

    genotype: Genotype
    args: NetworkArgs | None = None
    params: int | None = None
    mult_adds: int | None = None
    results: list[Result] = field(default_factory=list)
    dataset: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    repo_id: str | None = None
    revision: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    license: str = "mit"


def describe_cell(cell: Cell | str, kind: str) -> list[str]:
    """`node 2 = sep_conv_3x3(c_{k-1}) + skip_connect(c_{k-2})`, one line per node, then the output."""
    if cell == FRC:
        return ["the fixed reduction cell (FRC, paper Fig. 3): no searched ops"]
    assert isinstance(cell, Cell)
    names = ["c_{k-2}", "c_{k-1}"] if kind == "cnn" else ["h_0"]

    def state(i: int) -> str:
        return names[i] if i < len(names) else f"node {i}"

    lines = [
        f"node {len(names) + i} = " + " + ".join(f"{e.op}({state(e.input)})" for e in node)
        for i, node in enumerate(cell.nodes)
    ]
    return lines + ["output = concat(" + ", ".join(state(i) for i in cell.concat) + ")"]


def _network_rows(facts: CardFacts) -> list[tuple[str, str]]:
    args = facts.args
    if args is None:
        return []
    size = INPUT_SIZES.get(args.net)
    rows = [
        ("network", f"{args.net} ({'3x%dx%d input' % (size, size) if size else 'input size not fixed'})"),
        ("initial channels C", str(args.C)),
        ("cells", f"{args.layers} (reductions at cells {args.layers // 3} and {2 * args.layers // 3})"),
        ("classes", str(args.num_classes)),
        ("auxiliary head", "yes (training only; not counted)" if args.auxiliary else "no"),
    ]
    if facts.params is not None:
        rows.append(("parameters", f"{facts.params / 1e6:.3f}M ({facts.params:,}; without the auxiliary head)"))
    if facts.mult_adds is not None:
        rows.append(("mult-adds", f"{facts.mult_adds / 1e6:.1f}M at 1x3x{size}x{size} (conv and linear layers)"))
    return rows


def _provenance_rows(facts: CardFacts) -> list[tuple[str, str]]:
    g = facts.genotype
    rows = [("genotype", f"`{g.ref}` ({g.kind}, op space {g.space}, derive rule {g.derive_rule})")]
    rows += [(f"genotype {key}", _plain(value)) for key, value in g.provenance.items()]
    rows += [(key, _plain(value)) for key, value in facts.training.items()]
    if facts.args is None:
        rows.append(("weights", "none: this repo publishes a genotype only"))
    return rows


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("\n", " ").replace("|", "/")


def _how_to_load(facts: CardFacts) -> str:
    ref = f"{facts.repo_id or '<org>/<name>'}@{facts.revision or 'main'}"
    if facts.args is None:
        return (
            "```bash\npip install gdas-cli\n"
            f"gdas genotypes show hf-hub:{ref}\n"
            f"gdas train cifar10 --genotype hf-hub:{ref}\n```\n\n"
            f"```python\nimport gdas_cli\ngenotype = gdas_cli.load_genotype(\"hf-hub:{ref}\")\n```"
        )
    return (
        "```bash\npip install gdas-cli\n"
        f"gdas eval --from-hub {ref}\n"
        f"gdas genotypes show hf-hub:{ref}\n```\n\n"
        "```python\nimport gdas_cli\n"
        f"model = gdas_cli.create_model(\"hf-hub:{ref}\", pretrained=True)  # strict, eval mode\n```\n\n"
        "Loading checks config.json, genotype.json, the safetensors header and the sha256 of the weights "
        "against each other and never unpickles."
    )


def _card_data(facts: CardFacts) -> ModelCardData:
    datasets = [_HUB_DATASETS[facts.dataset]] if facts.dataset in _HUB_DATASETS else None
    eval_results = [
        EvalResult(
            task_type="image-classification", task_name="Image Classification",
            dataset_type=r.dataset, dataset_name=_DATASET_NAMES.get(r.dataset, r.dataset), dataset_split=r.split,
            metric_type=r.metric.replace("_", "-"), metric_name=_METRIC_NAMES.get(r.metric, r.metric),
            metric_value=round(r.value, 4),
        )
        for r in facts.results
    ]
    tags = TAGS + ["model_hub_mixin"] if facts.args else ["gdas", "neural-architecture-search", "genotype-only"]
    return ModelCardData(
        library_name=LIBRARY_NAME, license=facts.license, tags=sorted(tags), datasets=datasets,
        metrics=sorted({r.metric.replace("_", "-") for r in facts.results}) or None,
        pipeline_tag="image-classification" if facts.args else None,
        model_name=_title(facts), eval_results=eval_results or None,
    )


def _title(facts: CardFacts) -> str:
    if facts.args is None:
        return f"{facts.genotype.ref} (genotype)"
    if facts.dataset:
        return f"{facts.genotype.ref} on {_DATASET_NAMES.get(facts.dataset, facts.dataset)}"
    return f"{facts.genotype.ref}, {facts.args.net} network"


def render_card(facts: CardFacts) -> ModelCard:
    """The README.md of a published model or genotype, via huggingface_hub's ModelCard."""
    g = facts.genotype
    if facts.args is None:
        summary = (
            f"The **{g.ref}** cell, published as a genotype only (no weights). Train it with "
            "`gdas train` or build it with `gdas_cli.build_network`."
        )
    else:
        summary = (
            f"A {facts.args.net} network of {facts.args.layers} cells built from the **{g.ref}** genotype "
            "with gdas-cli. Loading is strict: the genotype in the weights must match the genotype here."
        )
    results = [
        {"dataset": _DATASET_NAMES.get(r.dataset, r.dataset), "split": r.split,
         "metric": _METRIC_NAMES.get(r.metric, r.metric), "value": f"{r.value:.2f}%", "source": _plain(r.source)}
        for r in facts.results
    ]
    return ModelCard.from_template(
        card_data=_card_data(facts), template_str=_CARD_TEMPLATE, title=_title(facts), summary=summary,
        genotype_ref=g.ref, image=CELL_IMAGE if CELL_IMAGE in facts.files else None,
        cells=[(role, describe_cell(cell, g.kind)) for role, cell in g.cells().items()],
        network_rows=_network_rows(facts), results=results,
        no_results="No measured results were recorded with these weights." if facts.args else
        "A genotype has no results of its own; see its provenance for the numbers its paper reports.",
        provenance=_provenance_rows(facts), how_to_load=_how_to_load(facts),
        files=sorted(facts.files.items()), gdas_version=_gdas_version(), paper_url=PAPER_URL,
    )


# --- the model class ---------------------------------------------------------------------------


class GdasNetwork(
    CellNetwork,
    ModelHubMixin,
    library_name=LIBRARY_NAME,
    license="mit",
    pipeline_tag="image-classification",
    tags=TAGS,
    paper_url=PAPER_URL,
):
    """A CellNetwork with `from_pretrained`, `save_pretrained` and `push_to_hub`.

    `from_pretrained("org/name", revision="v1")` is strict (see `load_published_model`), reads the
    cache when offline, and never unpickles. `save_pretrained(folder)` writes the published format.
    """

    def __init__(self, genotype: Genotype, args: NetworkArgs) -> None:
        super().__init__(genotype, args)

    @classmethod
    def from_network(cls, network: CellNetwork) -> "GdasNetwork":
        """The same weights in a GdasNetwork (strict copy)."""
        inner = getattr(network, "module", network)
        model = cls(inner.genotype, inner.args)
        load_state_strict(model, inner.state_dict(), f"genotype {inner.genotype.ref}", "network")
        return model

    def _save_pretrained(self, save_directory: Path) -> None:
        folder = Path(save_directory)
        save_network(self, folder / WEIGHTS_FILE)
        config = make_config(self.genotype, self.args, sha256_file(folder / WEIGHTS_FILE))
        write_json(folder / CONFIG_FILE, config)
        write_genotype_files(self.genotype, folder)

    def generate_model_card(self, *args: Any, **facts: Any) -> ModelCard:
        """Card for these weights; keyword arguments fill CardFacts (results, training, repo_id, ...)."""
        from .metrics import count_mult_adds, count_parameters

        size = INPUT_SIZES.get(self.args.net)
        facts.setdefault("params", count_parameters(self))
        if size and "mult_adds" not in facts:
            facts["mult_adds"] = count_mult_adds(self, (1, 3, size, size))
        facts.setdefault("files", default_files(self.args is not None))
        return render_card(CardFacts(genotype=self.genotype, args=self.args, **facts))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> "GdasNetwork":
        name = str(pretrained_model_name_or_path)
        if Path(name).is_dir():
            return super().from_pretrained(name, **kwargs)
        ref = parse_ref(name).at(kwargs["revision"]) if kwargs.get("revision") else parse_ref(name)
        with hub_errors(ref, CONFIG_FILE):
            return super().from_pretrained(ref.repo_id, **{**kwargs, "revision": ref.revision})

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        expected_sha256: str | None = None,
        **config_values: Any,  # the mixin passes config.json's values too; the files are re-read strictly
    ) -> "GdasNetwork":
        folder = Path(model_id)
        if folder.is_dir():
            genotype_path = folder / GENOTYPE_FILE
            return load_published_model(
                folder / CONFIG_FILE, folder / WEIGHTS_FILE, genotype_path if genotype_path.exists() else None,
                str(folder), expected_sha256, map_location,
            )
        options = {"cache_dir": cache_dir, "force_download": force_download, "local_files_only": local_files_only,
                   "token": token}
        model, _ = load_hub_model(HubRef(model_id, revision), expected_sha256, map_location, **options)
        return model


def write_genotype_files(genotype: Genotype, folder: Path) -> None:
    """genotype.json and the cell drawing (cell.png)."""
    from .plot import plot_genotype

    text = genotype.to_json()
    atomic_write_text(Path(folder) / GENOTYPE_FILE, text)
    plot_genotype(genotype, Path(folder) / CELL_IMAGE)


def default_files(has_weights: bool) -> dict[str, str]:
    files = {
        GENOTYPE_FILE: "the genotype (schema gdas-genotype v1)",
        CELL_IMAGE: "the cell drawing",
        CARD_FILE: "this card",
    }
    if has_weights:
        files[CONFIG_FILE] = "genotype and network arguments (schema gdas-hub-config v1), sha256 of the weights"
        files[WEIGHTS_FILE] = "weights; the safetensors header holds the genotype and network arguments too"
    return files


# --- publishing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit: str
    url: str
    tag: str | None = None


_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def _api(token: str | None = None) -> HfApi:
    return HfApi(token=token, library_name=LIBRARY_NAME, library_version=_gdas_version())


def check_push(repo_id: str, tag: str | None) -> str:
    """Fail before anything is written: a token, a valid repo id, and a tag not taken yet. Returns the token."""
    if parse_ref(repo_id).revision:
        raise GdasError(f"--push-to-hub {repo_id}: give org/name without @revision; use --tag to name the version")
    ref = HubRef(repo_id, tag)
    if tag is not None and (not _TAG_RE.match(tag) or ".." in tag or tag.endswith((".", "/", ".lock"))):
        raise GdasError(f"--tag {tag!r}: not a valid tag name (letters, digits, '.', '_', '-', '/')")
    token = get_token()
    if not token:
        raise GdasError(
            f"{ref.label}: pushing needs a Hugging Face token with write access: run `hf auth login` or set HF_TOKEN"
        )
    if tag is not None:
        with hub_errors(ref):
            try:
                refs = _api(token).list_repo_refs(ref.repo_id)
            except RepositoryNotFoundError:
                return token  # a new repo has no tags yet
        taken = {t.name: t.target_commit for t in refs.tags}
        if tag in taken:
            raise GdasError(f"{ref.label}: tag {tag!r} already exists (commit {taken[tag][:8]}); choose a new tag")
    return token


def push_folder(
    folder: Path, repo_id: str, *, tag: str | None = None, private: bool = False, message: str = "Upload with gdas export"
) -> PushResult:
    """Create the repo if needed, upload the folder as ONE commit replacing the managed files, tag it."""
    token = check_push(repo_id, tag)
    ref = HubRef(repo_id, tag)
    api = _api(token)
    with hub_errors(ref):
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message=message, delete_patterns=MANAGED_PATTERNS,
        )
        if tag is not None:
            api.create_tag(repo_id, tag=tag, revision=info.oid, tag_message=message)
    return PushResult(repo_id, info.oid, info.commit_url, tag)
