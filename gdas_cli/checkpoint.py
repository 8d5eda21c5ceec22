"""Atomic save and load of run state: checkpoint folders are swapped in whole, state files load without pickle.

A checkpoint folder (`checkpoint/last`, `checkpoint/best`) holds several files (weights, state,
progress). Writing them one by one in place could leave a folder whose weights and state disagree,
so a new folder is written beside the old one and swapped in with two renames; a crash between the
renames leaves `.<name>.old`, which `find_checkpoint` recovers.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import jsonio
from .errors import GdasEnvironmentError, GdasError, environment_cause, read_failure
from .files import atomic_write_bytes, atomic_write_text, current_umask

STATE_FORMAT = "gdas-run-state-v1"
WEIGHTS_FILE = "model.safetensors"  # the weights file of a checkpoint folder and of a published model


def _old_path(directory: Path) -> Path:
    return directory.parent / f".{directory.name}.old"


def write_checkpoint(directory: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_dir)` to fill a fresh folder, then make it `directory` in one swap.

    When the machine stops the write (disk full, read-only, file-size limit), the GdasEnvironmentError
    names the file inside `directory` and says what was kept: the previous checkpoint, or none.
    """
    directory = Path(directory)
    had_previous = find_checkpoint(directory) is not None
    tmp: Path | None = None
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; a checkpoint should be as readable as its run folder
        write(tmp)
        old = _old_path(directory)
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except Exception as err:
        cause = environment_cause(err, getattr(err, "path", None) or tmp or directory)
        if cause is None:
            raise
        where, failed = directory, getattr(err, "path", None)
        if failed is not None and tmp is not None and Path(failed).parent == tmp:
            where = directory / Path(failed).name  # the file as it would have been named, not its temp folder
        message = f"{where}: {cause}; {_kept(directory, had_previous)}"
        raise GdasEnvironmentError(message, path=where, cause=cause) from err
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _kept(directory: Path, had_previous: bool) -> str:
    """What a failed checkpoint write leaves: the previous checkpoint (resumable) or none (the run restarts)."""
    run = directory.parent.parent
    if had_previous:
        return f"{directory.name} still holds the previous checkpoint (--resume {run} continues from it)"
    return f"no {directory.name} checkpoint was written (the same command with --run-dir {run} starts the run again)"


def find_checkpoint(directory: Path) -> Path | None:
    """`directory` if it exists, else the previous folder a crash mid-swap left behind (renamed back)."""
    directory = Path(directory)
    if directory.is_dir():
        return directory
    old = _old_path(directory)
    if old.is_dir():
        os.replace(old, directory)
        return directory
    return None


def save_state(path: Path, state: dict[str, Any]) -> None:
    """torch.save of plain containers and tensors only, so `load_state` can refuse anything else.

    The state is serialised in memory and written by Python, whose OSError says why a write failed
    (torch's own file writer reports a full disk as "[enforce fail at inline_container.cc] unexpected pos").
    """
    import torch  # here, not at the top: reading a run's files (gdas runs list) never needs torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), lambda tmp: Path(tmp).write_bytes(buffer.getbuffer()))


def load_state(path: Path) -> dict[str, Any]:
    """Load a state file written by `save_state` with weights_only=True (no arbitrary unpickling)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise GdasError(f"{path}: no such state file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise read_failure(
            err, path, f"{path}: unreadable or untrusted run state ({type(err).__name__}: {first})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise GdasError(f"{path}: not a gdas run state file")
    return state


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """One JSON object per line, the whole file written atomically."""
    atomic_write_text(Path(path), "".join(json.dumps(record) + "\n" for record in records))


def write_json(path: Path, data: Any) -> None:
    """Indented JSON, written atomically."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_write_text(Path(path), text)


def read_json(path: Path) -> Any:
    """A JSON file the package wrote (bounded: see jsonio)."""
    return jsonio.read_json(Path(path))
