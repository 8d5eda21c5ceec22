"""Observers watch a run without the loop knowing them (`Observer`; rank 0 only): `on_start` (the run folder,
the config, the task and where the run starts: global step and record history), `on_epoch_start` (the
epoch's steps, those done, its scalars), `on_advance` (after every step, for observers that ask), `on_step`
(every 10th step of an epoch: the running means), `on_steps_end`, `on_epoch` (each record, after its
checkpoint is saved) and `on_finish`. metrics.jsonl with the task's derived files (`RecordsWriter`), the
console's epoch lines (`EpochLines`) and its progress bar with the run's estimate (`ProgressBar`) are
observers; `EngineConfig.tensorboard` adds gdas_cli.tensorboard's, and `run_task(observers=...)` any others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..checkpoint import write_jsonl
from ..progress import format_duration
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
    does nothing)."""

    steps: bool = False  # whether on_step is wanted: the running means cost a host sync every LOG_EVERY steps
    advances: bool = False  # whether on_advance is wanted (after every step)

    def on_start(self, start: RunStart) -> None:
        """Before the first step (after a resumed run's checkpoint is loaded)."""
        return None

    def on_epoch_start(self, epoch: int, steps: int, done: int, scalars: dict[str, Any]) -> None:
        """Before the steps of `epoch` (0-based): `steps` in it, `done` of them already (a run resumed in
        the middle of it), and the epoch's scalars from the task (lr, drop_path, tau)."""
        return None

    def on_advance(self, step: int) -> None:
        """After every step, for observers with `advances`: `step` steps of the epoch done. It carries no
        values: reading one would cost a host sync every step."""
        return None

    def on_step(self, global_step: int, scalars: dict[str, float]) -> None:
        """Every LOG_EVERY-th step of an epoch (not its last, which its record stands for): the running means
        of the epoch so far, named as in the record (train_loss, train_top1), of rank 0's own batches."""
        return None

    def on_steps_end(self, epoch: int) -> None:
        """The steps of `epoch` are done; its evaluation, checkpoint and record (on_epoch) follow."""
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


class ProgressBar(Observer):
    """The console's view of the steps: a transient bar per epoch on stderr (a terminal only) with the running
    loss and top-1, the epoch's scalars and the time the run has left; and once, after the first timed steps,
    a line with the whole run's estimate (a terminal or not)."""

    steps = True
    advances = True

    def on_start(self, start: RunStart) -> None:
        self.epochs, self.history = start.config.epochs, list(start.history)
        self.pace = Pace()
        self.epoch = self.total = self.step = 0
        self.progress: Any = None
        self.bar: Any = None
        self.fixed = ""

    def on_epoch_start(self, epoch: int, steps: int, done: int, scalars: dict[str, Any]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.epoch, self.total, self.step = epoch, steps, done
        self.fixed = "  ".join(f"{k} {v:.4g}" for k, v in scalars.items() if isinstance(v, (int, float)))
        console = Console(stderr=True)
        columns = (
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.progress = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
        self.progress.start()
        self.bar = self.progress.add_task(
            "train", total=steps, completed=done, epoch=f"{epoch + 1}/{self.epochs}", info=""
        )
        if done < steps:
            self.pace.tick()

    def on_advance(self, step: int) -> None:
        self.step = step
        self.pace.tick()
        if self.progress is not None:
            self.progress.update(self.bar, completed=step)
        if self.pace.ready():
            self._estimate()

    def on_step(self, global_step: int, scalars: dict[str, float]) -> None:
        if self.progress is None or "train_loss" not in scalars:
            return
        info = f"loss {scalars['train_loss']:.4f}"
        if "train_top1" in scalars:
            info += f"  top1 {scalars['train_top1']:.3f}"
        remaining = self.pace.remaining(self.epoch, self.step, self.total, self.epochs, self.history)
        run_left = f"run ~{format_duration(remaining)} left" if remaining is not None else ""
        self.progress.update(self.bar, info=f"{info}  {self.fixed}  {run_left}".strip())

    def on_steps_end(self, epoch: int) -> None:
        self.pace.pause()  # evaluation and checkpoints between epochs are not step time
        self._close()

    def on_epoch(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.history = list(history)

    def on_finish(self, summary: dict[str, Any] | None) -> None:
        self._close()

    def _close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _estimate(self) -> None:
        """Once, after the first timed steps: how long the whole run will take at this pace."""
        self.pace.said = True
        remaining = self.pace.remaining(self.epoch, self.step, self.total, self.epochs, self.history)
        per_step = self.pace.per_step()
        if remaining is None or per_step is None:
            return
        steps_left = (self.epochs - self.epoch) * self.total - self.step
        if steps_left < self.pace.ESTIMATE_AFTER:
            return
        say(
            f"estimate: about {format_duration(remaining)} to the end of epoch {self.epochs} "
            f"({per_step:.3g} s per step, {steps_left} steps left; evaluation not included)"
        )


class Pace:
    """Times this process's steps (the first one, a warm-up, left out) to estimate the rest of the run.

    Within the first epoch the estimate is the measured seconds per step times the steps left; once
    epochs have finished, whole epochs left are counted at their mean recorded time (evaluation included).
    """

    ESTIMATE_AFTER = 5  # steps timed before the one-time estimate is printed: 5 taking 2 s, or 10
    ESTIMATE_SECONDS = 2.0

    def __init__(self) -> None:
        self.timed, self.seconds, self.said = 0, 0.0, False
        self._last: float | None = None

    def tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.timed += 1
            self.seconds += now - self._last
        self._last = now

    def pause(self) -> None:
        self._last = None

    def per_step(self) -> float | None:
        return self.seconds / self.timed if self.timed else None

    def remaining(self, epoch: int, step: int, total: int, epochs: int, history: list[dict[str, Any]]) -> float | None:
        """Seconds to the end of the run from `step` of `epoch` (0-based), `total` steps an epoch."""
        per_step = self.per_step()
        if per_step is None:
            return None
        done_epochs = [r["seconds"] for r in history if isinstance(r.get("seconds"), (int, float))]
        left_in_epoch = (total - step) * per_step
        whole_epochs = epochs - epoch - 1
        per_epoch = sum(done_epochs) / len(done_epochs) if done_epochs else total * per_step
        return left_in_epoch + whole_epochs * per_epoch

    def ready(self) -> bool:
        enough = self.seconds >= self.ESTIMATE_SECONDS or self.timed >= 2 * self.ESTIMATE_AFTER
        return not self.said and self.timed >= self.ESTIMATE_AFTER and enough


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
