"""The Typer plumbing shared by every command group: one-line errors, exit code 2, no tracebacks."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from ..errors import GdasError
from ._output import print_error


class GdasGroup(TyperGroup):
    """Runs the command non-standalone so every failure is reported on one line of stderr."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
        try:
            code = super().main(
                args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
        except GdasError as err:
            print_error(str(err))
            sys.exit(2)
        except TyperException as err:  # Typer's public base of the usage and parameter errors
            if type(err).__name__ == "NoArgsIsHelpError":  # a group called bare: its help, not an error
                err.show()  # type: ignore[attr-defined]  # every such error has show()
                sys.exit(0)
            ctx = getattr(err, "ctx", None)  # UsageError and its subclasses carry the context
            where = ctx.command_path if ctx is not None else "gdas"
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            print_error(f"{where}: {message}")
            sys.exit(getattr(err, "exit_code", 2))
        except typer.Abort:
            print_error("aborted")
            sys.exit(130)
        except KeyboardInterrupt:
            print_error("interrupted")
            sys.exit(130)
        except Exception as err:  # anything unforeseen: still one line, the traceback on request
            if os.environ.get("GDAS_DEBUG"):
                raise
            print_error(describe_failure(err))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def make_app(help_text: str, *, completion: bool = False) -> typer.Typer:
    """A command group; the root app uses GdasGroup so errors inside any group are handled once.

    `completion`: add --install-completion and --show-completion (the root app only).
    """
    return typer.Typer(
        cls=GdasGroup,
        help=help_text,
        no_args_is_help=True,
        add_completion=completion,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )


_OS_PROBLEMS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file-size limit was reached",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def describe_failure(err: BaseException) -> str:
    """One line for a failure that is not a GdasError (disk full, out of memory, a bug)."""
    hint = "rerun with GDAS_DEBUG=1 for the traceback"
    if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
        return f"out of memory ({type(err).__name__}); try a smaller --batch-size or --channels ({hint})"
    if isinstance(err, OSError) and err.errno in _OS_PROBLEMS:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{_OS_PROBLEMS[err.errno]} ({err.strerror}); nothing half-written was kept"
    for code, problem in _OS_PROBLEMS.items():  # libraries that wrap the OS error in their own (safetensors)
        if os.strerror(code).lower() in str(err).lower():
            return f"{problem} while writing ({type(err).__name__}); nothing half-written was kept"
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"unexpected {type(err).__name__}: {first} ({hint})"
