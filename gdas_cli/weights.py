"""Final-network weights as safetensors with the genotype and network arguments in the header.

One file is enough to rebuild the network: `load_network` reads the header, builds the network and
loads the weights strictly, so a genotype/weights mismatch is an error naming both.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from .errors import GdasError
from .genotype import Genotype
from .models import CellNetwork, NetworkArgs, build_network

FORMAT = "gdas-weights-v1"


def atomic_write_bytes(path: Path, write) -> None:
    """Call `write(tmp_path)` then rename over `path`, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def network_metadata(genotype: Genotype, args: NetworkArgs) -> dict[str, str]:
    return {"format": FORMAT, "gdas_genotype": genotype.to_json(), "gdas_network": json.dumps(args.to_dict())}


def save_network(model: CellNetwork, path: Path) -> None:
    """Write `model`'s weights (unwrapped from DDP/compile) with its genotype and arguments."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    state = {k: v.detach().contiguous().cpu() for k, v in inner.state_dict().items()}
    metadata = network_metadata(inner.genotype, inner.args)
    atomic_write_bytes(Path(path), lambda tmp: save_file(state, tmp, metadata=metadata))


def read_metadata(path: Path) -> tuple[Genotype, NetworkArgs]:
    """The genotype and network arguments stored in a weights file's header."""
    path = Path(path)
    if not path.is_file():
        raise GdasError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise GdasError(f"{path}: not a readable safetensors file ({err})") from None
    if metadata.get("format") != FORMAT:
        raise GdasError(f"{path}: not a gdas weights file (header format {metadata.get('format')!r})")
    genotype = Genotype.from_json(metadata["gdas_genotype"], f"{path} (header genotype)")
    try:
        args = NetworkArgs(**json.loads(metadata["gdas_network"]))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise GdasError(f"{path}: bad network arguments in header ({err})") from None
    return genotype, args


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


def load_network(path: Path, genotype: Genotype | None = None, map_location: str = "cpu") -> CellNetwork:
    """Build the network described by the file's header (or by `genotype`) and load the weights strictly."""
    stored_genotype, args = read_metadata(path)
    genotype = genotype or stored_genotype
    model = build_network(genotype, args)
    try:
        state = load_file(str(path), device=map_location)
    except (SafetensorError, OSError, ValueError) as err:
        raise GdasError(f"{path}: corrupted or truncated safetensors file ({err})") from None
    load_state_strict(model, state, f"genotype {genotype.ref}", str(path))
    return model
