"""Transient progress bars for the loops that outlast a second: evaluation, export checks, data preparation.

    for batch in track(batches, "test", total=len(batches)):
        ...

A bar is drawn on stderr only when stderr is a terminal, and never inside `quiet()` (the CLI's
--quiet, and every DDP rank but the first); it disappears when the loop ends, so logs and pipes
see nothing extra. The training loop keeps its own bar (engine/loop.py), with the running loss.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_quiet = [False]  # a stack's top: quiet() nests


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """No bars inside this block when `enabled`."""
    _quiet.append(enabled or _quiet[-1])
    try:
        yield
    finally:
        _quiet.pop()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield `items` while a transient bar named `description` counts them (up to `total`, if known)."""
    if _quiet[-1]:
        yield from items
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield from items
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(description, total=total)
        done, shown_at = 0, time.monotonic()
        for item in items:
            yield item
            done += 1
            if time.monotonic() - shown_at >= 0.1:  # a bar update per item would slow a loop over lines
                progress.update(bar, completed=done)
                shown_at = time.monotonic()
        progress.update(bar, completed=done)


def format_duration(seconds: float) -> str:
    """`45 s`, `3 min 20 s`, `2 h 05 min`: a duration as a person reads it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
