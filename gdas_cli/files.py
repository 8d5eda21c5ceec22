"""Atomic file writes: readers (and a crash) never see a half-written file.

A write that the machine stops (a full disk, a read-only file system, the file-size limit) is one
GdasEnvironmentError naming the file, the cause and what was kept, whichever library was writing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import GdasEnvironmentError, environment_cause


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` on a temp file beside `path`, then rename it over `path`.

    A failure of the machine while writing is a GdasEnvironmentError naming `path`; `path` is then as it was.
    """
    path = Path(path)
    existed = path.exists()
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file what open() would
        os.replace(tmp, path)
    except Exception as err:
        cause = environment_cause(err, tmp or path)
        if cause is None:
            raise
        raise write_failure(path, cause, existed) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_failure(path: Path, cause: str, existed: bool) -> GdasEnvironmentError:
    """The one line for a file the machine did not let us write: the file, the cause, what was kept."""
    kept = f"the previous {path.name} is kept unchanged" if existed else "nothing was written"
    return GdasEnvironmentError(f"{path}: {cause}; {kept}", path=path, cause=cause)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
