"""Final-network weights as safetensors with the genotype and network arguments in the header.

One file is enough to rebuild the network: `load_network` reads the header, builds the network and
loads the weights strictly, so a genotype/weights mismatch is an error naming both.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import GdasError, os_error, read_failure
from .files import atomic_write_bytes
from .genotype import Genotype
from .jsonio import parse_json
from .models import Network, NetworkArgs, build_network

FORMAT = "gdas-weights-v1"


def network_metadata(genotype: Genotype, args: NetworkArgs) -> dict[str, str]:
    return {"format": FORMAT, "gdas_genotype": genotype.to_json(), "gdas_network": json.dumps(args.to_dict())}


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel and/or torch.compile wrapper."""
    inner = getattr(module, "module", module)
    return getattr(inner, "_orig_mod", inner)


def read_header(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file's header; a missing or unreadable file is a GdasError."""
    path = Path(path)
    if not path.is_file():
        raise GdasError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except OSError as err:
        raise os_error(err, f"{path}: cannot read the weights file") from None
    except (SafetensorError, ValueError) as err:
        raise GdasError(f"{path}: not a readable safetensors file ({err})") from None


def read_tensors(path: Path, device: str | torch.device = "cpu", label: str | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; a truncated or corrupted file is a GdasError naming `label`."""
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise read_failure(
            err, label or path, f"{label or path}: corrupted or truncated safetensors file ({err})"
        ) from None


def save_tensors(module: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write a module's state (unwrapped from DDP/compile) with `metadata` in the header, atomically."""
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(module).state_dict().items()}
    atomic_write_bytes(Path(path), lambda tmp: save_file(state, tmp, metadata=metadata))


def load_tensors_into(model: torch.nn.Module, path: Path, what: str, device: str | torch.device = "cpu") -> None:
    """Read a safetensors file and load it into `model` strictly (see load_state_strict)."""
    load_state_strict(model, read_tensors(path, device), what, str(path))


def save_network(model: Network, path: Path) -> None:
    """Write `model`'s weights (unwrapped from DDP/compile) with its genotype and arguments."""
    inner = cast(Network, unwrap(model))
    save_tensors(inner, path, network_metadata(inner.genotype, inner.args))


def read_model_header(path: Path, fmt: str, args_key: str, args_type: type, what: str) -> tuple[Genotype, Any]:
    """The genotype and model arguments in the header of a gdas weights file of format `fmt`."""
    metadata = read_header(path)
    if metadata.get("format") != fmt:
        raise GdasError(f"{path}: not a gdas {what} file (header format {metadata.get('format')!r})")
    missing = [key for key in ("gdas_genotype", args_key) if key not in metadata]
    if missing:
        raise GdasError(f"{path}: the header has no {' or '.join(missing)}; not a complete gdas {what} file")
    genotype = Genotype.from_json(metadata["gdas_genotype"], f"{path} (header genotype)")
    return genotype, typed_args(args_type, parse_json(metadata[args_key], f"{path} (header {args_key})"), str(path))


_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (float, int), "str": (str,), "bool": (bool,)}


def typed_args(args_type: type, data: Any, source: str) -> Any:
    """`args_type(**data)` for a dataclass of scalar fields, every value checked against its annotation."""
    if not isinstance(data, dict):
        raise GdasError(f"{source}: model arguments must be a JSON object")
    declared = {f.name: str(f.type) for f in fields(args_type)}
    unknown = sorted(set(data) - set(declared))
    if unknown:
        raise GdasError(f"{source}: unknown model argument(s) {', '.join(unknown)}")
    for key, value in data.items():
        allowed = _SCALARS.get(declared[key], (object,))
        if not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool)):
            raise GdasError(f"{source}: model argument {key} must be {declared[key]}, got {value!r}")
    try:
        return args_type(**data)
    except TypeError as err:
        raise GdasError(f"{source}: bad model arguments ({err})") from None


def read_metadata(path: Path) -> tuple[Genotype, NetworkArgs]:
    """The genotype and network arguments stored in a CNN weights file's header."""
    return read_model_header(path, FORMAT, "gdas_network", NetworkArgs, "weights")


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, source: str) -> None:
    """load_state_dict(strict=True), with shape and key mismatches reported as one user-facing line."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label} {len(keys)} (e.g. {keys[0]})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise GdasError(f"{source}: weights do not fit {what}: {detail}")
    model.load_state_dict(state, strict=True)


def load_network(path: Path, genotype: Genotype | None = None, map_location: str = "cpu") -> Network:
    """Build the network described by the file's header (or by `genotype`) and load the weights strictly."""
    stored_genotype, args = read_metadata(path)
    genotype = genotype or stored_genotype
    model = build_network(genotype, args)
    load_tensors_into(model, path, f"genotype {genotype.ref}", map_location)
    return model
