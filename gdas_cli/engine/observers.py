"""Observers watch a run without the loop knowing them (`Observer`; rank 0 only): `on_start` (the run folder,
the config, the task and where the run starts: global step and record history), `on_step` (every 10th
step of an epoch: the running means), `on_epoch` (each record, after its checkpoint is saved) and
`on_finish`. metrics.jsonl with the task's derived files (`RecordsWriter`) and the console's epoch lines
(`EpochLines`) are observers; `EngineConfig.tensorboard` adds gdas_cli.tensorboard's, and
`run_task(observers=...)` any others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..checkpoint import write_jsonl
from ..rundir import RunDir
from .config import EngineConfig
from .task import Task


@dataclass(frozen=True)
class RunStart:
    """What an observer is told when the loop starts: where, how, and from which position."""

    run_dir: Path
    config: EngineConfig
    task: Task
    resumed: bool
    global_step: int  # the step the run continues after (0: a new run)
    history: list[dict[str, Any]]  # the records of the finished epochs, as in metrics.jsonl
    # a resumed run's running means at global_step when that is a logged step (mid-epoch), else {}
    step_scalars: dict[str, float] = field(default_factory=dict)


class Observer(Protocol):
    """Watches a run on rank 0; the loop calls these and nothing else. Subclass it for the defaults (each
    does nothing), or give any object these four methods and a `steps` attribute."""

    steps: bool = False  # whether on_step is wanted: the running means cost a host sync every LOG_EVERY steps

    def on_start(self, start: RunStart) -> None:
        """Before the first step (after a resumed run's checkpoint is loaded)."""
        return None

    def on_step(self, global_step: int, scalars: dict[str, float]) -> None:
        """Every LOG_EVERY-th step of an epoch (not its last, which its record stands for): the running means
        of the epoch so far, named as in the record (train_loss, train_top1), of rank 0's own batches."""
        return None

    def on_epoch(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """An epoch's record, after the checkpoint that holds it is saved; `history` ends with it."""
        return None

    def on_finish(self, summary: dict[str, Any] | None) -> None:
        """The loop ended: its summary, or None when it was interrupted or failed."""
        return None


LOG_EVERY = 10  # steps between on_step calls and progress-bar refreshes


class RecordsWriter(Observer):
    """metrics.jsonl and the task's derived files (Task.after_epoch), as of the latest checkpoint."""

    def on_start(self, start: RunStart) -> None:
        self.run_dir, self.task = start.run_dir, start.task
        if start.resumed:  # they match the checkpoint the run continues from
            self.on_epoch({}, start.history)

    def on_epoch(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        write_jsonl(RunDir(self.run_dir).metrics_file, history)
        self.task.after_epoch(self.run_dir, history)


class EpochLines(Observer):
    """One line per epoch on stderr: the record's numbers."""

    def on_start(self, start: RunStart) -> None:
        self.epochs = start.config.epochs

    def on_epoch(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        say(format_record(record, self.epochs))


def say(text: str) -> None:
    """A plain line on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


def format_record(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key in ("epoch", "step") or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)
