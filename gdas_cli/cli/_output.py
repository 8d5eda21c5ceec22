"""Shared terminal output: tables and JSON on stdout, errors on stderr."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from rich.console import Console, ConsoleDimensions

# A pipe or a file has no width: rich would assume 80 columns and fold table cells to fit them
UNBOUNDED_WIDTH = 100_000


class OutputConsole(Console):
    """rich's Console, except that writing to a pipe or a file no line is folded at 80 columns: a table is as
    wide as its content, so a script reads one row per line. On a terminal tables fit its width."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)  # type: ignore[attr-defined]  # the parent's property, read by hand
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(UNBOUNDED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


# soft_wrap: a line of text is never broken at the terminal's width either
console = OutputConsole(soft_wrap=True)
err_console = OutputConsole(stderr=True, soft_wrap=True)


def print_error(message: str) -> None:
    """One line, no markup interpretation (messages may contain brackets from user input)."""
    err_console.print(f"error: {message}", markup=False, highlight=False)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def is_main_process() -> bool:
    """Rank 0 of a torchrun group, or a single process: the one that talks."""
    return os.environ.get("RANK", "0") == "0"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "/".join(_shown(v) for v in value)
    return "-" if value is None else str(value)


def print_plan(title: str, values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """A run's settings in one block on stderr, grouped by where each comes from (you, rule, paper, ...)."""
    from ..sizing import SOURCES

    groups: dict[str, list[str]] = {}
    for key, source in sources.items():
        if key in values:
            groups.setdefault(source, []).append(f"{key} {_shown(values[key])}")
    order = [*SOURCES, *sorted(set(groups) - set(SOURCES))]
    lines = [title, *(f"  {source}: {', '.join(groups[source])}" for source in order if source in groups)]
    err_console.print("\n".join(lines), markup=False, highlight=False)
