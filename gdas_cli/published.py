"""The published-model format: the folder `gdas export` writes and a Hub repo holds.

    config.json        schema `gdas-hub-config` v1: the genotype, the network arguments (null for
                       a genotype alone), the sha256 of the weights file, and `pretrained_cfg`:
                       timm's facts for using the weights (input size, mean, std, interpolation,
                       crop_pct, num_classes, label names, data set, license, source)
    model.safetensors  the weights.py format: genotype and network arguments in the header too
    genotype.json      the genotype file, usable anywhere as `hf-hub:org/name@rev`
    README.md          the model card (written by `hub.render_card`)
    cell.png           the cell drawing the card shows

This layer knows the schema, loads a folder strictly (config, genotype file, header and sha256
must agree; nothing is unpickled) and defines `GdasNetwork`, the class `create_model` returns.
Fetching from and pushing to the Hub is `hub.py`'s business, one layer up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from torch import nn

from . import __version__
from .checkpoint import WEIGHTS_FILE, write_json
from .errors import GdasError, reworded
from .files import atomic_write_text, sha256_file
from .genotype import Genotype
from .jsonio import parse_json, read_json, read_text
from .models import CellNetwork, NB201Classifier, Network, NetworkArgs, pretrained_cfg_for
from .weights import load_state_strict, read_metadata, read_tensors, save_network

LIBRARY_NAME = "gdas-cli"
CONFIG_FILE = "config.json"
GENOTYPE_FILE = "genotype.json"
CARD_FILE = "README.md"
CELL_IMAGE = "cell.png"
CONFIG_SCHEMA = "gdas-hub-config"
CONFIG_SCHEMA_VERSION = 1
INPUT_SIZES = {"cifar": 32, "imagenet": 224}
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PublishedConfig:
    """The validated content of a published config.json."""

    genotype: Genotype
    args: NetworkArgs | None  # None: a genotype published alone
    weights_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    pretrained_cfg: dict[str, Any] | None = None


def genotype_only_cfg(**fields: Any) -> dict[str, Any]:
    """The pretrained_cfg of a genotype alone: the network's fields are null, `fields` (dataset, license,
    source) are what is known."""
    cfg: dict[str, Any] = dict.fromkeys(pretrained_cfg_for(NetworkArgs()), None)
    unknown = sorted(set(fields) - set(cfg))
    if unknown:
        raise GdasError(f"pretrained_cfg: unknown field(s) {', '.join(unknown)}")
    return {**cfg, **fields}


def make_config(
    genotype: Genotype,
    args: NetworkArgs | None,
    weights_sha256: str | None = None,
    pretrained_cfg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    size = INPUT_SIZES.get(args.net) if args is not None else None
    if pretrained_cfg and pretrained_cfg.get("input_size"):  # the side the weights were trained at
        size = int(pretrained_cfg["input_size"][-1])
    config: dict[str, Any] = {
        "schema": CONFIG_SCHEMA,
        "schema_version": CONFIG_SCHEMA_VERSION,
        "library_name": LIBRARY_NAME,
        "gdas_version": __version__,
        "genotype": genotype.to_dict(),
        "network": args.to_dict() if args is not None else None,
        "input_size": [3, size, size] if size else None,
        "pretrained_cfg": pretrained_cfg,
    }
    if weights_sha256:
        config["weights"] = {"file": WEIGHTS_FILE, "sha256": weights_sha256}
    return config


def parse_config(text: str, source: str) -> PublishedConfig:
    data = parse_json(text, source)
    if not isinstance(data, dict) or data.get("schema") != CONFIG_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise GdasError(f"{source}: not a gdas model config (schema {found!r}, expected {CONFIG_SCHEMA!r})")
    version = data.get("schema_version")
    if isinstance(version, bool) or version != CONFIG_SCHEMA_VERSION:
        raise GdasError(f"{source}: unsupported schema_version {data.get('schema_version')!r} (this gdas reads 1)")
    genotype = Genotype.from_dict(data.get("genotype"), f"{source} genotype")
    weights = data.get("weights") or {}
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    args = None
    if data.get("network") is not None or sha is not None:
        args = NetworkArgs.from_dict(data.get("network"), f"{source} network")
    if sha is not None and not (isinstance(sha, str) and _SHA256_RE.match(sha)):
        raise GdasError(f"{source}: weights.sha256 must be 64 lower-case hex digits")
    if data.get("dataset") is not None and not isinstance(data["dataset"], str):
        raise GdasError(f"{source}: dataset must be a string")
    cfg = data.get("pretrained_cfg")
    if cfg is not None and not isinstance(cfg, dict):
        raise GdasError(f"{source}: pretrained_cfg must be an object")
    extra = {k: v for k, v in data.items() if k not in {"genotype", "network", "weights", "pretrained_cfg"}}
    return PublishedConfig(genotype, args, sha, extra, cfg)


def network_cfg(config: PublishedConfig, source: str) -> dict[str, Any]:
    """The stored pretrained_cfg checked against the network (the layout's defaults where it has none)."""
    assert config.args is not None
    stored = dict(config.pretrained_cfg or {})
    if stored.get("num_classes", config.args.num_classes) != config.args.num_classes:
        raise GdasError(
            f"{source}: pretrained_cfg.num_classes is {stored['num_classes']}, "
            f"but the network has {config.args.num_classes} classes"
        )
    for key in ("input_size", "mean", "std"):
        if isinstance(stored.get(key), list):
            stored[key] = tuple(stored[key])
    try:
        return pretrained_cfg_for(config.args, **stored)
    except GdasError as err:
        raise reworded(err, f"{source}: {err}") from None


def read_config(path: Path, label: str) -> PublishedConfig:
    """parse_config of a config.json file, naming it as `label` in errors."""
    try:
        text = read_text(Path(path), "model config")
    except GdasError as err:
        raise reworded(err, str(err).replace(str(path), label, 1)) from None
    return parse_config(text, label)


def published_folder(path: Path) -> Path | None:
    """The folder `gdas export` wrote (or a zoo weights folder), when `path` is one or its model.safetensors.

    Recognised by its config.json's schema; whether the rest holds up is checked when it is loaded.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name != WEIGHTS_FILE:
        return None
    config = folder / CONFIG_FILE
    if not config.is_file():
        return None
    try:
        data = read_json(config, "model config")
    except GdasError:
        return None
    return folder if isinstance(data, dict) and data.get("schema") == CONFIG_SCHEMA else None


def _relabel(err: GdasError, path: Path, label: str) -> GdasError:
    """weights.py names the (maybe cached) file; users should see the folder or repo label instead."""
    message = str(err)
    if message.startswith(str(path)):
        message = label + message[len(str(path)) :]
    elif not message.startswith(label):
        message = f"{label}: {message}"
    return reworded(err, message)


def load_published_model(
    config_path: Path,
    weights_path: Path,
    genotype_path: Path | None,
    label: str,
    expected_sha256: str | None = None,
    map_location: str = "cpu",
) -> PublishedNetwork:
    """Check config, genotype file, header and hashes against each other; build; load strictly."""
    config = read_config(config_path, f"{label}/{CONFIG_FILE}")
    if config.args is None:
        raise GdasError(f"{label}: a genotype published alone, without weights; build it with gdas_cli.build_network")
    if genotype_path is not None:
        try:
            text = read_text(Path(genotype_path), "genotype file")
        except GdasError as err:
            raise reworded(err, str(err).replace(str(genotype_path), f"{label}/{GENOTYPE_FILE}", 1)) from None
        stored = Genotype.from_json(text, f"{label}/{GENOTYPE_FILE}")
        if stored != config.genotype:
            raise GdasError(
                f"{label}: {GENOTYPE_FILE} ({stored.ref}) and {CONFIG_FILE} ({config.genotype.ref}) "
                "describe different cells"
            )
    if not expected_sha256 and not config.weights_sha256:
        raise GdasError(
            f"{label}/{CONFIG_FILE}: no weights.sha256, so {WEIGHTS_FILE} cannot be checked; refusing to load "
            "unverified weights (re-export the model with gdas export)"
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
        raise GdasError(
            f"{label_file}: weights were saved for network {header_args}, but {CONFIG_FILE} says {config.args}"
        )
    cfg = network_cfg(config, f"{label}/{CONFIG_FILE}")
    model = published_class(config.genotype)(config.genotype, config.args, pretrained_cfg=cfg)
    state = read_tensors(weights_path, map_location, label=label_file)
    try:
        load_state_strict(model, state, f"genotype {config.genotype.ref}", label_file)
    except GdasError as err:
        raise _relabel(err, weights_path, label_file) from None
    return model.eval()


def load_published_folder(
    folder: Path, expected_sha256: str | None = None, map_location: str = "cpu"
) -> PublishedNetwork:
    """A published folder (what `gdas export` writes), loaded strictly, in eval mode."""
    folder = Path(folder)
    genotype_path = folder / GENOTYPE_FILE
    return load_published_model(
        folder / CONFIG_FILE,
        folder / WEIGHTS_FILE,
        genotype_path if genotype_path.exists() else None,
        str(folder),
        expected_sha256,
        map_location,
    )


def write_genotype_files(genotype: Genotype, folder: Path) -> None:
    """genotype.json and the cell drawing (cell.png)."""
    from .plot import plot_genotype  # matplotlib is imported only when a drawing is made

    atomic_write_text(Path(folder) / GENOTYPE_FILE, genotype.to_json())
    plot_genotype(genotype, Path(folder) / CELL_IMAGE)


def default_files(has_weights: bool) -> dict[str, str]:
    """The files of a published folder, with what each holds (the model card lists them)."""
    files = {
        GENOTYPE_FILE: "the genotype (schema gdas-genotype v1)",
        CELL_IMAGE: "the cell drawing",
        CARD_FILE: "this card",
        CONFIG_FILE: "the genotype, network arguments and pretrained_cfg (schema gdas-hub-config v1)",
    }
    if has_weights:
        files[CONFIG_FILE] += ", sha256 of the weights"
        files[WEIGHTS_FILE] = "weights; the safetensors header holds the genotype and network arguments too"
    return files


_Published = TypeVar("_Published", bound="PublishedFormat")


class PublishedFormat:
    """What a published network knows on top of its family's class: `save_folder`, `from_folder`,
    `from_network`. `GdasNetwork` (DARTS cells) and `GdasNB201Network` mix it in; `hub.py` adds
    huggingface_hub's `from_pretrained` / `push_to_hub` on top of each."""

    genotype: Genotype
    args: NetworkArgs
    pretrained_cfg: dict[str, Any]

    def __init__(self, genotype: Genotype, args: NetworkArgs, **options: Any) -> None:
        super().__init__(genotype, args, **options)  # type: ignore[call-arg]  # the family's network class

    @classmethod
    def from_network(cls: type[_Published], network: Network) -> _Published:
        """The same weights in this class (a strict copy)."""
        inner = getattr(network, "module", network)
        model = cls(inner.genotype, inner.args)
        load_state_strict(cast(nn.Module, model), inner.state_dict(), f"genotype {inner.genotype.ref}", "network")
        model.pretrained_cfg = dict(inner.pretrained_cfg)
        return model

    @classmethod
    def from_folder(cls: type[_Published], folder: Path, map_location: str = "cpu") -> _Published:
        model = cls.from_network(load_published_folder(folder, map_location=map_location))
        cast(nn.Module, model).eval()
        return model

    def save_folder(self, folder: Path) -> None:
        """model.safetensors, config.json (with the weights' sha256 and `pretrained_cfg`), genotype.json, cell.png."""
        folder = Path(folder)
        save_network(cast(Network, self), folder / WEIGHTS_FILE)
        digest = sha256_file(folder / WEIGHTS_FILE)
        write_json(folder / CONFIG_FILE, make_config(self.genotype, self.args, digest, dict(self.pretrained_cfg)))
        write_genotype_files(self.genotype, folder)


class GdasNetwork(PublishedFormat, CellNetwork):
    """A DARTS-space CellNetwork that knows the published format (`PublishedFormat`)."""


class GdasNB201Network(PublishedFormat, NB201Classifier):
    """A NAS-Bench-201 network that knows the published format (`PublishedFormat`)."""


PublishedNetwork = GdasNetwork | GdasNB201Network
PUBLISHED_CLASSES: dict[str, type[GdasNetwork] | type[GdasNB201Network]] = {
    "darts": GdasNetwork,
    "nas-bench-201": GdasNB201Network,
}


def published_class(genotype: Genotype) -> type[GdasNetwork] | type[GdasNB201Network]:
    """The published-format class of the genotype's space."""
    if genotype.space not in PUBLISHED_CLASSES:
        raise GdasError(f"{genotype.ref}: a {genotype.space} genotype has no published image network")
    return PUBLISHED_CLASSES[genotype.space]
