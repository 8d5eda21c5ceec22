"""The two user-facing error types, and how a failure of the machine is recognised.

The CLI prints the message of either on one line and exits with the type's `exit_code`:

- `GdasError`, exit 2: the input is wrong (an option, a file, a reference, a saved file that fails
  validation). Running the same command again will fail the same way.
- `GdasEnvironmentError`, exit 1: the machine or the network failed (a full disk, a read-only file
  system, the file-size limit, no memory, a lost connection or rank). The input may be fine; the same
  command can work once the cause is gone. It is a GdasError too, so `except GdasError` catches both.

`environment_cause` names the cause of an exception raised while writing a file, whichever layer
reported it: an OSError's errno, a library that wraps the OS message in its own error (safetensors:
"No space left on device (os error 28)"), torch's allocator, or torch's zip writer, which reports a
failed write without its cause ("[enforce fail at inline_container.cc:672] . unexpected pos").
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path


class GdasError(Exception):
    """A problem with the user's input (file, option, reference) rather than a bug."""

    exit_code = 2


class GdasEnvironmentError(GdasError):
    """The machine or network failed (disk full, read-only, file-size limit, out of memory, lost connection).

    `path` is the file or folder the failure hit and `cause` the failure in words, when known, so a
    caller that knows more (which checkpoint, what was kept) can say it in its own message.
    """

    exit_code = 1

    def __init__(self, message: str, *, path: Path | str | None = None, cause: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.cause = cause


# errno -> the failure in words; every one of these is the machine's, not the input's
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file-size limit was reached",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an input/output error",
    errno.ENOMEM: "out of memory",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files",
}
# torch's zip writer (torch.save, torch.export.save) fails with these and no errno
_TORCH_WRITE_FAILURES = ("inline_container.cc", "PytorchStreamWriter failed", "file write failed")
# how torch says it: CUDA's "out of memory", the CPU allocator's "can't allocate memory" (POSIX) or "not enough
# memory" (Windows), and a C++ allocation that failed inside a kernel (oneDNN) as "std::bad_alloc"
_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory", "bad_alloc")
_LOW_SPACE_BYTES = 1 << 20  # a write that failed with less free space than this failed for lack of space
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust libraries (safetensors) carry an errno in text


def environment_cause(err: BaseException, path: Path | str | None = None) -> str | None:
    """The machine's failure behind `err` in words ("the disk is full (No space left on device)"), else None.

    `path` is the file being written when `err` was raised: a write that torch reports without a cause
    is explained by looking at its folder (free space, a read-only mount, the file-size limit).
    """
    if isinstance(err, GdasEnvironmentError):
        return err.cause or str(err)
    if isinstance(err, GdasError):
        return None
    if isinstance(err, MemoryError):
        return "out of memory"
    if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        return f"{ENVIRONMENT_ERRNOS[err.errno]} ({err.strerror or os.strerror(err.errno)})"
    text = str(err)
    lowered = text.lower()
    for code, problem in ENVIRONMENT_ERRNOS.items():  # a library that carries the OS message in its own error
        if os.strerror(code).lower() in lowered:
            return f"{problem} ({os.strerror(code)})"
    if any(marker in lowered for marker in _OUT_OF_MEMORY):
        return "out of memory"
    if any(marker in text for marker in _TORCH_WRITE_FAILURES):
        probed = _probe_failed_write(path)
        if probed is not None:
            return f"{ENVIRONMENT_ERRNOS[probed]} ({os.strerror(probed)}, reported by torch as a failed write)"
        return "the file could not be written (torch reports a failed write without its cause)"
    return None


def read_cause(err: BaseException) -> str | None:
    """The machine's failure behind a failed read ("an input/output error (...)"), else None: the file is bad.

    Only what says so for certain counts (an errno, a Rust library's "(os error N)", no memory): the rest of a
    reader's error text describes the file's content, whatever words it holds.
    """
    if isinstance(err, GdasEnvironmentError):
        return err.cause or str(err)
    if isinstance(err, MemoryError):
        return "out of memory"
    code = err.errno if isinstance(err, OSError) else None
    if code is None:
        match = _RUST_OS_ERROR.search(str(err))
        code = int(match.group(1)) if match else None
    if code in ENVIRONMENT_ERRNOS:
        return f"{ENVIRONMENT_ERRNOS[code]} ({os.strerror(code)})"
    return None


def read_failure(err: BaseException, path: Path | str, bad_file: str) -> GdasError:
    """A failed read of `path` in one line: `path: cannot read it: <cause>` (exit 1) when the machine failed,
    else `bad_file` (exit 2)."""
    cause = read_cause(err)
    if cause is not None:
        return GdasEnvironmentError(f"{path}: cannot read it: {cause}", path=path, cause=cause)
    return GdasError(bad_file)


def _probe_failed_write(path: Path | str | None) -> int | None:
    """The errno a write into `path`'s folder most likely met, for writers that do not say."""
    statvfs = getattr(os, "statvfs", None)  # POSIX only
    if path is None or statvfs is None:
        return None
    try:
        stats = statvfs(Path(path).parent)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if stats.f_bavail * stats.f_frsize < _LOW_SPACE_BYTES or (stats.f_files and stats.f_favail == 0):
        return errno.ENOSPC
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return errno.EFBIG if soft != resource.RLIM_INFINITY else None


def os_error(err: OSError, message: str) -> GdasError:
    """`message (cause)` as the right type: GdasEnvironmentError when the errno is the machine's, else GdasError."""
    cause = environment_cause(err)
    if cause is not None:
        return GdasEnvironmentError(f"{message}: {cause}", path=err.filename, cause=cause)
    return GdasError(f"{message} ({err.strerror or err})")


def reworded(err: GdasError, message: str) -> GdasError:
    """`err` with a new message (a label instead of a cached path, say), keeping its type and so its exit code."""
    if isinstance(err, GdasEnvironmentError):
        return GdasEnvironmentError(message, path=err.path, cause=err.cause)
    return type(err)(message)
