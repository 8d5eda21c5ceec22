"""The Hugging Face Hub client: references, download, push, model cards, and the mixin class.

Versions are Hub revisions (tags, branches or commits). Downloads go through huggingface_hub's
cache (`HF_HUB_OFFLINE=1` reads it without the network); every client error becomes one GdasError
line naming the repo and revision. What the files mean and how they load strictly is
`published.py`; this module only moves them. `HubNetwork` is a `GdasNetwork` with huggingface_hub's
ModelHubMixin (`from_pretrained`, `save_pretrained`, `push_to_hub`); its loading replaces the
mixin's non-strict default.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from huggingface_hub import (
    HfApi,
    ModelCard,
    ModelCardData,
    ModelHubMixin,
    constants,
    get_hf_file_metadata,
    get_session,
    get_token,
    hf_hub_download,
    hf_hub_url,
    scan_cache_dir,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.repocard_data import EvalResult

from . import __version__
from .checkpoint import WEIGHTS_FILE
from .data import DATASETS
from .errors import GdasEnvironmentError, GdasError, os_error, reworded
from .genotype import HUB_PREFIX, MAX_GENOTYPE_BYTES, Genotype, chosen_of, describe_cell
from .jsonio import read_text
from .models import NetworkArgs
from .movement import summary_line
from .published import (
    CARD_FILE,
    CELL_IMAGE,
    CONFIG_FILE,
    GENOTYPE_FILE,
    INPUT_SIZES,
    LIBRARY_NAME,
    GdasNB201Network,
    GdasNetwork,
    PublishedConfig,
    PublishedFormat,
    PublishedNetwork,
    default_files,
    load_published_folder,
    load_published_model,
    read_config,
)

PAPER_URL = "https://arxiv.org/abs/1910.04465"
TAGS = ["gdas", "neural-architecture-search", "image-classification", "pytorch", "safetensors"]
# Files an export owns: a new version replaces them all, so files dropped since the last one go too.
MANAGED_PATTERNS = ["*.json", "*.safetensors", "*.onnx", "*.pt", "*.png", CARD_FILE]
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


# --- references and errors -------------------------------------------------------------------


@dataclass(frozen=True)
class HubRef:
    """A Hub model repo at a revision (None: the default branch)."""

    repo_id: str
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}@{self.revision or 'main'}"

    def at(self, revision: str) -> HubRef:
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


# The client's network errors (httpx2) share no public base class with the standard ones; by class name:
_STALLED = {"TimeoutException", "ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout"}
_CUT = {"RemoteProtocolError", "ReadError", "WriteError", "CloseError", "NetworkError", "ProtocolError"}
DOWNLOAD_KEPT = "nothing partial is kept in the cache; run the command again"


def _network_failure(err: BaseException) -> str | None:
    """How a transfer failed ('was cut', 'stalled'), when `err` is the network's; None otherwise."""
    names = {cls.__name__ for cls in type(err).__mro__}
    from_client = type(err).__module__.startswith(("httpx", "httpcore"))
    if "ConnectError" in names or (isinstance(err, ConnectionRefusedError)):
        return "could not be opened"
    if names & _STALLED and from_client or isinstance(err, TimeoutError):
        return "stalled"
    if names & _CUT and from_client or isinstance(err, ConnectionError):
        return "was cut"
    if isinstance(err, OSError) and "Consistency check failed" in str(err):  # the body ended early
        return "was cut"
    return "failed" if from_client else None


@contextlib.contextmanager
def hub_errors(
    ref: HubRef, filename: str | None = None, *, action: str = "downloading", kept: str = DOWNLOAD_KEPT
) -> Iterator[None]:
    """Turn the Hub client's exceptions into one line naming the repo and revision.

    A problem of the request (no such repo, revision or file; no access) is a GdasError (exit 2); one of
    the network, the Hub's servers or the local disk is a GdasEnvironmentError (exit 1) that says what
    was being done (`action`) and what was kept (`kept`).
    """
    what = f"{ref.label}" + (f" ({filename})" if filename else "")
    try:
        yield
    except GatedRepoError:
        raise GdasError(
            f"{what}: the repository is gated; accept its terms on the Hub and log in (hf auth login)"
        ) from None
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
            raise GdasEnvironmentError(
                f"{what}: not in the local cache and HF_HUB_OFFLINE is set; {_cache_hint(ref.repo_id, filename)}"
            ) from None
        raise GdasEnvironmentError(
            f"{what}: cannot reach {constants.ENDPOINT} and nothing is cached ({_first_line(err)})"
        ) from None
    except EntryNotFoundError:
        raise GdasError(f"{what}: the repository has no {filename or 'such file'} at this revision") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status in (401, 403):
            raise GdasError(
                f"{what}: not authorised (HTTP {status}); check your token (hf auth login, or HF_TOKEN)"
            ) from None
        if status is None or status >= 500 or status in (408, 412, 429):  # the Hub's trouble, or a race: try again
            raise GdasEnvironmentError(
                f"{what}: the Hub answered HTTP {status or '?'} while {action} ({_first_line(err)}); {kept}"
            ) from None
        raise GdasError(f"{what}: the Hub answered HTTP {status} ({_first_line(err)})") from None
    except HFValidationError as err:
        raise GdasError(f"{what}: {_first_line(err)}") from None
    except Exception as err:
        how = _network_failure(err)
        if how is not None:
            raise GdasEnvironmentError(
                f"{what}: the connection to {constants.ENDPOINT} {how} while {action} ({_first_line(err)}); {kept}"
            ) from None
        if isinstance(err, OSError):  # writing the cache: a full disk, a read-only folder
            raise os_error(err, f"{what}: cannot write to the Hub cache {constants.HF_HUB_CACHE}") from None
        raise


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


# Seconds to wait for the Hub before giving up on a request. huggingface_hub waits 10 s for a file's
# metadata and, when nothing is cached, retries five times more with 60 s each and a backoff (about
# 27 s against a closed port, minutes against a silent one); we ask once, briefly, and say what to do.
HUB_TIMEOUT_S = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 3)
_answered: set[str] = set()  # endpoints that answered once in this process


def download(ref: HubRef, filename: str, **options: Any) -> Path:
    """hf_hub_download into the Hub cache (or read it there when offline), errors as GdasError.

    An unreachable Hub fails within about HUB_TIMEOUT_S: the file comes from the cache when this
    revision's copy is there, else one line suggests HF_HUB_OFFLINE=1 and names what is cached.
    """
    with _quiet_retries(), hub_errors(ref, filename):
        if not constants.is_offline_mode() and constants.ENDPOINT not in _answered:
            why = _unreachable(hf_hub_url(ref.repo_id, filename, revision=ref.revision))
            if why is not None:
                return _from_cache_or_fail(ref, filename, why, **options)
            _answered.add(constants.ENDPOINT)
        path = hf_hub_download(
            ref.repo_id,
            filename,
            revision=ref.revision,
            library_name=LIBRARY_NAME,
            library_version=__version__,
            etag_timeout=HUB_TIMEOUT_S,
            **options,
        )
    return Path(path)


def _unreachable(url: str) -> str | None:
    """None when the Hub answers a HEAD of `url` within HUB_TIMEOUT_S (whatever the status), else why not."""
    try:
        get_hf_file_metadata(url, timeout=HUB_TIMEOUT_S, library_name=LIBRARY_NAME, library_version=__version__)
    except HfHubHTTPError:
        return None  # an HTTP answer: the Hub is there; hf_hub_download reports what it said
    except Exception as err:
        if isinstance(err, (ConnectionError, TimeoutError)) or type(err).__module__.startswith(("httpx", "httpcore")):
            return _first_line(err) or type(err).__name__
        return None  # anything else (a malformed answer): hf_hub_download reports it
    return None


def _from_cache_or_fail(ref: HubRef, filename: str, why: str, **options: Any) -> Path:
    """This revision's cached copy of `filename`, or one GdasEnvironmentError naming the cached revisions."""
    try:
        path = hf_hub_download(ref.repo_id, filename, revision=ref.revision, local_files_only=True, **options)
        return Path(path)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, EntryNotFoundError):
        pass
    raise GdasEnvironmentError(
        f"{ref.label}: cannot reach {constants.ENDPOINT} within {HUB_TIMEOUT_S:g} s ({why}); "
        + _cache_hint(ref.repo_id, filename, offline=False)
    )


def _cache_hint(repo_id: str, filename: str | None, offline: bool = True) -> str:
    """Which revisions of `repo_id` the cache holds complete copies of `filename` of, and how to use them."""
    cached = _cached_revisions(repo_id, filename)
    if not cached:
        if offline:
            return "nothing of it is cached: fetch it once online first"
        return "nothing of it is cached (HF_HUB_OFFLINE=1 reads only the cache)"
    what = f" with {filename}" if filename else ""
    how = "ask for one of them" if offline else "run with HF_HUB_OFFLINE=1 to use it"
    return f"the cache holds {repo_id}@{cached}{what}: {how}"


def _cached_revisions(repo_id: str, filename: str | None = None) -> str:
    """The cached revisions of a model repo (holding `filename`, when given), as `v1 (commit 0123456789ab), ...`.

    Only finished downloads count: huggingface_hub writes a file under a temporary name and renames it
    into the cache when it is complete, so a cut transfer leaves no file here. "" when there are none.
    """
    try:
        repos = scan_cache_dir(constants.HF_HUB_CACHE).repos
    except Exception:  # no cache folder yet, or one the scanner cannot read
        return ""
    named = []
    for repo in repos:
        if repo.repo_id == repo_id and repo.repo_type == "model":
            for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
                if filename is not None and filename not in {f.file_name for f in revision.files}:
                    continue
                refs = ", ".join(sorted(revision.refs)) or revision.commit_hash[:12]
                named.append(f"{refs} (commit {revision.commit_hash[:12]})")
    return "; ".join(named)


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
        raise reworded(err, str(err).replace(pinned.label, ref.label, 1)) from None


def load_hub_genotype(spec: str) -> Genotype:
    """The genotype.json of `org/name[@rev]`; the resolver behind `hf-hub:` genotype references."""
    ref = parse_ref(spec)
    path = download(ref, GENOTYPE_FILE)
    label = f"{ref.label}/{GENOTYPE_FILE}"
    try:
        text = read_text(path, "genotype file", MAX_GENOTYPE_BYTES)
    except GdasError as err:
        raise reworded(err, str(err).replace(str(path), label, 1)) from None
    return Genotype.from_json(text, label)


def load_hub_model(
    spec: str | HubRef, expected_sha256: str | None = None, map_location: str = "cpu", **options: Any
) -> tuple[PublishedNetwork, HubSnapshot]:
    """Download (or read from the cache) a published model and load it strictly, in eval mode."""
    ref = parse_ref(spec) if isinstance(spec, str) else spec
    snapshot = fetch_model_files(ref, **options)
    model = load_published_model(
        snapshot.files[CONFIG_FILE],
        snapshot.files[WEIGHTS_FILE],
        snapshot.files[GENOTYPE_FILE],
        ref.label,
        expected_sha256,
        map_location,
    )
    return model, snapshot


def load_hub_config(spec: str | HubRef, **options: Any) -> PublishedConfig:
    """Only the config.json of a published model: enough to build it untrained."""
    ref = parse_ref(spec) if isinstance(spec, str) else spec
    return read_config(download(ref, CONFIG_FILE, **options), f"{ref.label}/{CONFIG_FILE}")


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

_DATASET_NAMES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet-1k": "ImageNet-1k",
    "imagenet": "ImageNet-1k",
}
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
    license: str = "other"  # what the publisher states; "other" when nothing is stated
    input_size: int | None = None  # the side the weights were trained at (None: the network family's)


def _network_rows(facts: CardFacts) -> list[tuple[str, str]]:
    args = facts.args
    if args is None:
        return []
    size = facts.input_size or INPUT_SIZES.get(args.net)
    rows = [
        ("network", f"{args.net} ({f'3x{size}x{size} input' if size else 'input size not fixed'})"),
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
    rows += [(f"genotype {key}", _plain(value)) for key, value in g.provenance.items() if key != "movement"]
    movement = g.provenance.get("movement")
    if isinstance(movement, dict) and "verdict" in movement:
        rows.append(("search signal", _plain(summary_line(movement))))
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
            f'```python\nimport gdas_cli\ngenotype = gdas_cli.load_genotype("hf-hub:{ref}")\n```'
        )
    # a model trained on a local folder is evaluated on the user's own folder with the same class folders
    own = "" if facts.dataset in DATASETS else " --dataset folder:PATH  # PATH/test/<class>/<image>, these classes"
    return (
        "```bash\npip install gdas-cli\n"
        f"gdas eval --from-hub {ref}{own}\n"
        f"gdas genotypes show hf-hub:{ref}\n```\n\n"
        "```python\nimport gdas_cli\n"
        f'model = gdas_cli.create_model("hf-hub:{ref}", pretrained=True).eval()  # strict\n```\n\n'
        "Loading checks config.json, genotype.json, the safetensors header and the sha256 of the weights "
        "against each other and never unpickles."
    )


def _card_data(facts: CardFacts) -> ModelCardData:
    datasets = [_HUB_DATASETS[facts.dataset]] if facts.dataset in _HUB_DATASETS else None
    eval_results = [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=r.dataset,
            dataset_name=_DATASET_NAMES.get(r.dataset, r.dataset),
            dataset_split=r.split,
            metric_type=r.metric.replace("_", "-"),
            metric_name=_METRIC_NAMES.get(r.metric, r.metric),
            metric_value=round(r.value, 4),
        )
        for r in facts.results
    ]
    tags = TAGS + ["model_hub_mixin"] if facts.args else ["gdas", "neural-architecture-search", "genotype-only"]
    return ModelCardData(
        library_name=LIBRARY_NAME,
        license=facts.license,
        tags=sorted(tags),
        datasets=datasets,
        metrics=sorted({r.metric.replace("_", "-") for r in facts.results}) or None,
        pipeline_tag="image-classification" if facts.args else None,
        model_name=_title(facts),
        eval_results=eval_results or None,
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
        {
            "dataset": _DATASET_NAMES.get(r.dataset, r.dataset),
            "split": r.split,
            "metric": _METRIC_NAMES.get(r.metric, r.metric),
            "value": f"{r.value:.2f}%",
            "source": _plain(r.source),
        }
        for r in facts.results
    ]
    return ModelCard.from_template(
        card_data=_card_data(facts),
        template_str=_CARD_TEMPLATE,
        title=_title(facts),
        summary=summary,
        genotype_ref=g.ref,
        image=CELL_IMAGE if CELL_IMAGE in facts.files else None,
        cells=[(role, describe_cell(cell, g.space, chosen_of(g, role))) for role, cell in g.cells().items()],
        network_rows=_network_rows(facts),
        results=results,
        no_results="No measured results were recorded with these weights."
        if facts.args
        else "A genotype has no results of its own; see its provenance for the numbers its paper reports.",
        provenance=_provenance_rows(facts),
        how_to_load=_how_to_load(facts),
        files=sorted(facts.files.items()),
        gdas_version=__version__,
        paper_url=PAPER_URL,
    )


# --- the mixin class ---------------------------------------------------------------------------


class _HubMethods(ModelHubMixin):
    """huggingface_hub's `from_pretrained`, `save_pretrained` and `push_to_hub` for a published network class.

    `from_pretrained("org/name", revision="v1")` is strict (see `published.load_published_model`),
    reads the cache when offline, and never unpickles; it returns the class of the published genotype's
    space. `save_pretrained(folder)` writes the published format.
    """

    genotype: Genotype
    args: NetworkArgs
    pretrained_cfg: dict[str, Any]

    def __init__(self, genotype: Genotype, args: NetworkArgs) -> None:
        super().__init__(genotype, args)  # type: ignore[call-arg]  # the published network class

    def _save_pretrained(self, save_directory: Path) -> None:
        cast(PublishedFormat, self).save_folder(Path(save_directory))

    def generate_model_card(self, *args: Any, **facts: Any) -> ModelCard:
        """Card for these weights; keyword arguments fill CardFacts (results, training, repo_id, ...)."""
        from .metrics import count_mult_adds, count_parameters

        model = cast(torch.nn.Module, self)
        size = int(self.pretrained_cfg["input_size"][-1])
        facts.setdefault("params", count_parameters(model))
        if "mult_adds" not in facts:
            facts["mult_adds"] = count_mult_adds(model, (1, 3, size, size))
        facts.setdefault("files", default_files(True))
        facts.setdefault("input_size", size)
        return render_card(CardFacts(genotype=self.genotype, args=self.args, **facts))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> HubModel:
        name = str(pretrained_model_name_or_path)
        parent = cast(Any, super())
        if Path(name).is_dir():
            return cast(HubModel, parent.from_pretrained(name, **kwargs))
        ref = parse_ref(name).at(kwargs["revision"]) if kwargs.get("revision") else parse_ref(name)
        with hub_errors(ref, CONFIG_FILE):
            return cast(HubModel, parent.from_pretrained(ref.repo_id, **{**kwargs, "revision": ref.revision}))

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
    ) -> HubModel:
        folder = Path(model_id)
        if folder.is_dir():
            model = load_published_folder(folder, expected_sha256, map_location)
        else:
            options = {
                "cache_dir": cache_dir,
                "force_download": force_download,
                "local_files_only": local_files_only,
                "token": token,
            }
            model, _ = load_hub_model(HubRef(model_id, revision), expected_sha256, map_location, **options)
        hub_model = hub_class(model.genotype).from_network(model)
        hub_model.eval()
        return hub_model


_MIXIN_OPTIONS: dict[str, Any] = {
    "library_name": LIBRARY_NAME,
    "license": "other",
    "pipeline_tag": "image-classification",
    "tags": TAGS,
    "paper_url": PAPER_URL,
}


class HubNetwork(_HubMethods, GdasNetwork, **_MIXIN_OPTIONS):
    """A DARTS-space GdasNetwork with huggingface_hub's methods (`_HubMethods`)."""


class HubNB201Network(_HubMethods, GdasNB201Network, **_MIXIN_OPTIONS):
    """A NAS-Bench-201 network with huggingface_hub's methods (`_HubMethods`)."""


HubModel = HubNetwork | HubNB201Network
_HUB_CLASSES: dict[str, type[HubNetwork] | type[HubNB201Network]] = {
    "darts": HubNetwork,
    "nas-bench-201": HubNB201Network,
}


def hub_class(genotype: Genotype) -> type[HubNetwork] | type[HubNB201Network]:
    """The Hub-aware published class of the genotype's space."""
    if genotype.space not in _HUB_CLASSES:
        raise GdasError(f"{genotype.ref}: a {genotype.space} genotype has no published image network")
    return _HUB_CLASSES[genotype.space]


# --- publishing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit: str
    url: str
    tag: str | None = None


_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


def _api(token: str | None = None) -> HfApi:
    return HfApi(token=token, library_name=LIBRARY_NAME, library_version=__version__)


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
        with (
            _answers_within(PUSH_TIMEOUT_S),
            _quiet_retries(),
            hub_errors(ref, action="reading its tags", kept="nothing was pushed"),
        ):
            try:
                refs = _api(token).list_repo_refs(ref.repo_id)
            except RepositoryNotFoundError:
                return token  # a new repo has no tags yet
        taken = {t.name: t.target_commit for t in refs.tags}
        if tag in taken:
            raise GdasError(f"{ref.label}: tag {tag!r} already exists (commit {taken[tag][:8]}); choose a new tag")
    return token


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    message: str = "Upload with gdas export",
) -> PushResult:
    """Create the repo if needed, upload the folder as ONE commit replacing the managed files, tag it.

    The Hub applies a commit whole or not at all, and the tag is made only after the commit, so a push
    cut or stalled at any point leaves no tag on an incomplete commit; the same push can be run again.
    """
    token = check_push(repo_id, tag)
    ref = HubRef(repo_id, tag)
    api = _api(token)
    again = "run the same command again"
    with _answers_within(PUSH_TIMEOUT_S), _quiet_retries():
        with hub_errors(ref, action="pushing", kept=f"no tag was made; {again}"):
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                commit_message=message,
                delete_patterns=MANAGED_PATTERNS,
            )
        if tag is not None:
            kept = f"commit {info.oid[:12]} was pushed but not tagged; {again}"
            with hub_errors(ref, action="tagging", kept=kept):
                _create_tag(api, repo_id, tag, info.oid, message)
    return PushResult(repo_id, info.oid, info.commit_url, tag)


# Seconds a push waits for each answer of the Hub; huggingface_hub's own client would wait forever.
PUSH_TIMEOUT_S = 60.0


@contextlib.contextmanager
def _answers_within(seconds: float) -> Iterator[None]:
    """Bound every request of huggingface_hub's shared client that sets no timeout of its own (downloads do)."""
    session = get_session()
    before = session.timeout
    session.timeout = seconds
    try:
        yield
    finally:
        session.timeout = before


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    """huggingface_hub logs every retry of a cut or stalled transfer as a warning on stderr; gdas says the
    outcome in one line instead (its retries still happen)."""
    logger = logging.getLogger("huggingface_hub")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def _create_tag(api: HfApi, repo_id: str, tag: str, commit: str, message: str) -> None:
    """Tag `commit`; when the answer is lost, look whether the tag was made before calling it a failure."""
    try:
        api.create_tag(repo_id, tag=tag, revision=commit, tag_message=message)
    except Exception as err:
        lost = _network_failure(err) is not None or (
            isinstance(err, HfHubHTTPError) and err.response is not None and err.response.status_code == 409
        )
        if not lost:
            raise
        try:
            refs = api.list_repo_refs(repo_id)
        except Exception:
            raise err from None
        if not any(t.name == tag and t.target_commit == commit for t in refs.tags):
            raise
