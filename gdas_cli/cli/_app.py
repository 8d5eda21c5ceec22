"""The Typer plumbing shared by every command group: one-line errors, no tracebacks, one exit-code policy.

Exit codes: 0 done; 2 bad input (a GdasError, a usage error); 1 a failure of the machine or network (a
GdasEnvironmentError, or any other exception: disk full, read-only, file-size limit, out of memory) or a
bug; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from ..errors import GdasError, environment_cause
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
        except GdasError as err:  # and GdasEnvironmentError: each type carries its exit code
            print_error(str(err))
            sys.exit(err.exit_code)
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


def describe_failure(err: BaseException) -> str:
    """One line for a failure that is not a GdasError: the machine's (disk full, out of memory) or a bug."""
    hint = "rerun with GDAS_DEBUG=1 for the traceback"
    cause = environment_cause(err, getattr(err, "filename", None))
    if cause is not None and cause.startswith("out of memory"):
        return f"out of memory ({type(err).__name__}); try a smaller --batch-size or --channels ({hint})"
    if cause is not None:
        filename = getattr(err, "filename", None)
        where = f"{filename}: " if filename else ""
        return f"{where}{cause}; nothing half-written was kept"
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"unexpected {type(err).__name__}: {first} ({hint})"
