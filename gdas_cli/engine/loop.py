"""The loop: epochs and steps of a task, checkpoints and exact resume, Ctrl-C, progress; `run_task` starts a
run (its runtime, resume mode and observers) and ends it."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .. import __version__
from ..checkpoint import STATE_FORMAT, load_state, save_state, write_checkpoint, write_json
from ..errors import GdasEnvironmentError, GdasError
from ..progress import quiet as quiet_progress
from ..rundir import (
    METRICS_FILE,
    PROGRESS_FILE,
    STATE_FILE,
    TENSORBOARD_DIR,
    RunDir,
    checkpoint_digests,
    resume_command,
    verify_checkpoint,
)
from .config import EngineConfig, check_run_options
from .observers import LOG_EVERY, EpochLines, Observer, ProgressBar, RecordsWriter, RunStart, say
from .resume import (
    ResumeMode,
    check_run_dir,
    default_run_dir,
    record_changes,
    resume_mode,
    resumes,
    take_run_dir,
)
from .runtime import (
    Runtime,
    capture_rng,
    ignore_sigterm,
    lost_peer,
    lost_peer_cause,
    rank_seed,
    restore_rng,
    seed_all,
    setup_runtime,
    teardown_runtime,
)
from .task import Task


class RunInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the run at a safe point after saving a resumable checkpoint.

    `rank` says which process raised it, so that only rank 0 prints the message.
    """

    def __init__(self, message: str, rank: int = 0) -> None:
        super().__init__(message)
        self.rank = rank


class _StopRequest:
    """SIGINT/SIGTERM set a flag the loop checks between steps; another Ctrl-C later aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.saving = False  # while a checkpoint is written, a second signal waits for the loop
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        # a repeat within 2 s is the same Ctrl-C forwarded (torchrun passes it on to its workers)
        if self.requested and signum == signal.SIGINT and not self.saving and time.monotonic() - self._first > 2.0:
            raise KeyboardInterrupt
        if not self.requested:
            self.requested, self._first = True, time.monotonic()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class _Position:
    """Where the loop is: `step` batches of `epoch` done; the partial sums of that epoch."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    train_seconds: float = 0.0
    best: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """Runs a task for `cfg.epochs` epochs in `run_dir`, checkpointing and resuming exactly."""

    def __init__(
        self, task: Task, cfg: EngineConfig, rt: Runtime, run_dir: Path, observers: Sequence[Observer] = ()
    ) -> None:
        self.task, self.cfg, self.rt, self.run_dir = task, cfg, rt, Path(run_dir)
        self.run_files = RunDir(self.run_dir)
        self.pos = _Position()
        self.stop: _StopRequest | None = None
        shown: list[Observer] = [] if cfg.quiet else [EpochLines(), ProgressBar()]
        # only rank 0 observes: the records are the same on every rank, the files are written once
        self.observers: list[Observer] = [RecordsWriter(), *shown, *observers] if rt.is_main else []
        self._step_observers = [o for o in self.observers if o.steps]
        self._advancing = [o for o in self.observers if o.advances]

    def start(self, resumed: bool) -> None:
        """Tell the observers where the run starts (a resumed one: after restore())."""
        pos = self.pos
        logged = resumed and pos.step % LOG_EVERY == 0 and pos.step > 0 and self._step_observers
        start = RunStart(
            run_dir=self.run_dir,
            config=self.cfg,
            task=self.task,
            resumed=resumed,
            global_step=pos.global_step,
            history=list(pos.history),
            step_scalars=_running_means(pos.sums) if logged else {},
        )
        for observer in self.observers:
            observer.on_start(start)

    # ---- checkpoints

    def _state(self) -> dict[str, Any]:
        pos = self.pos
        per_rank = {"rng": capture_rng(self.rt.device), "sums": {k: v.detach().cpu() for k, v in pos.sums.items()}}
        ranks = self.rt.all_gather_object(per_rank)
        return {
            "format": STATE_FORMAT,
            "epoch": pos.epoch,
            "step": pos.step,
            "global_step": pos.global_step,
            "train_seconds": pos.train_seconds,
            "best": pos.best,
            "history": pos.history,
            "world_size": self.rt.world_size,
            "ranks": ranks,
            "task": self.task.state_dict(),
            "scaler": self.rt.scaler.state_dict() if self.rt.scaler is not None else None,
        }

    def save(self, which: str = "last") -> Path:
        """Write checkpoint/<which> (rank 0) from the current position; every rank must call it."""
        state = self._state()  # a collective: all ranks take part
        target = self.run_files.checkpoint(which)
        if self.stop is not None:
            self.stop.saving = True
        try:
            self._write(which, state)
        finally:
            if self.stop is not None:
                self.stop.saving = False
        self.rt.barrier()  # no rank exits or moves on while rank 0 is still writing
        return target

    def _write(self, which: str, state: dict[str, Any]) -> None:
        target = self.run_files.checkpoint(which)
        if self.rt.is_main:
            progress = {
                "epoch": self.pos.epoch,
                "step": self.pos.step,
                "global_step": self.pos.global_step,
                "epochs": self.cfg.epochs,
                "finished": self.pos.epoch >= self.cfg.epochs and self.pos.step == 0,
            }

            def write(tmp: Path) -> None:
                self.task.save_weights(tmp)
                save_state(tmp / STATE_FILE, state)
                write_json(tmp / PROGRESS_FILE, {**progress, "sha256": checkpoint_digests(tmp)})

            write_checkpoint(target, write)

    def restore(self) -> None:
        """Load checkpoint/last: weights, task state, scaler, this rank's RNG and partial sums."""
        state_file = self.run_files.checkpoint("last") / STATE_FILE
        try:
            self._restore()
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise GdasError(f"{state_file}: a run state of the right format but wrong content ({err!r})") from None

    def _restore(self) -> None:
        directory = self.run_files.find("last")
        if directory is None:
            raise GdasError(f"{self.run_dir}: no checkpoint to resume from")
        verify_checkpoint(directory)
        state = load_state(directory / STATE_FILE)
        expected = {
            "epoch": int,
            "step": int,
            "global_step": int,
            "train_seconds": float,
            "history": list,
            "ranks": list,
            "task": dict,
        }
        for key, kind in expected.items():
            value = state.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TypeError(f"{key} should be {kind.__name__}, got {type(value).__name__}")
        self.task.load_weights(directory)
        self.task.load_state_dict(state["task"])
        if self.rt.scaler is not None and state.get("scaler"):
            self.rt.scaler.load_state_dict(state["scaler"])
        self.pos = _Position(
            epoch=state["epoch"],
            step=state["step"],
            global_step=state["global_step"],
            train_seconds=state["train_seconds"],
            best=state["best"],
            history=list(state["history"]),
        )
        ranks = state["ranks"]
        if len(ranks) == self.rt.world_size:
            mine = ranks[self.rt.rank]
            restore_rng(mine["rng"], self.rt.device)
            self.pos.sums = {k: v.to(self.rt.device) for k, v in mine["sums"].items()}
        else:
            # another world size: batches stay the same, per-rank randomness cannot; say so and go on
            seed_all(rank_seed(self.cfg.seed + self.pos.global_step, self.rt.rank))
            if self.rt.is_main:
                self.pos.sums = {k: sum(r["sums"][k] for r in ranks).to(self.rt.device) for k in ranks[0]["sums"]}
                self._say(f"resuming a {len(ranks)}-process run on {self.rt.world_size}: not bit-exact")

    # ---- loop

    def run(self) -> dict[str, Any]:
        """Train to the last epoch; returns the summary: the final record and the checkpoint the run chose."""
        summary: dict[str, Any] | None = None
        try:
            with _StopRequest() as self.stop:
                for epoch in range(self.pos.epoch, self.cfg.epochs):
                    self._epoch(epoch)
            last = self.pos.history[-1] if self.pos.history else {}
            summary = {
                "run_dir": str(self.run_dir),
                "epochs": self.cfg.epochs,
                "last": last,
                "best": self.pos.best,
                "best_metric": self.task.best_metric[0] if self.task.best_metric else None,
                "chosen": self.chosen(),
                "rank": self.rt.rank,
            }
            return summary
        finally:
            for observer in self.observers:
                observer.on_finish(summary)

    def chosen(self) -> dict[str, Any]:
        """The checkpoint this run chose: `best` (the epoch of the best value of the task's metric, and the
        split it is measured on) for tasks with a best metric, else `last` (the final epoch)."""
        history = self.pos.history
        if self.task.best_metric and self.pos.best is not None:
            key = self.task.best_metric[0]
            record = next((r for r in history if r.get(key) == self.pos.best), {})
            return {
                "checkpoint": "best",
                "epoch": record.get("epoch"),
                "by": key,
                "split": key.split("_")[0],
                "record": record,
            }
        record = history[-1] if history else {}
        return {"checkpoint": "last", "epoch": record.get("epoch"), "by": None, "split": None, "record": record}

    def _epoch(self, epoch: int) -> None:
        task, rt, pos = self.task, self.rt, self.pos
        if pos.epoch != epoch:
            pos.epoch, pos.step, pos.sums, pos.train_seconds = epoch, 0, {}, 0.0
        scalars = task.start_epoch(epoch)
        source = task.train_batches()
        total = len(source) if not self.cfg.limit_train_batches else min(len(source), self.cfg.limit_train_batches)
        started = time.perf_counter()
        for observer in self.observers:
            observer.on_epoch_start(epoch, total, pos.step, scalars)
        if pos.step < total:
            for batch in source.batches(epoch, pos.step):
                out = task.train_step(batch, rt)
                for key, value in out.items():
                    value = value.detach().to(torch.float64)
                    pos.sums[key] = pos.sums[key] + value if key in pos.sums else value
                pos.step += 1
                pos.global_step += 1
                for observer in self._advancing:
                    observer.on_advance(pos.step)
                if self._step_observers and pos.step % LOG_EVERY == 0 and pos.step < total:
                    self._observe_step()
                if self._stop_requested(pos.global_step):
                    pos.train_seconds += time.perf_counter() - started
                    self._interrupt()
                if self.cfg.checkpoint_every and pos.global_step % self.cfg.checkpoint_every == 0 and pos.step < total:
                    pos.train_seconds += time.perf_counter() - started
                    self.save("last")
                    started = time.perf_counter()
                if pos.step >= total:
                    break
        pos.train_seconds += time.perf_counter() - started
        for observer in self.observers:
            observer.on_steps_end(epoch)
        self._finish_epoch(epoch, scalars)

    def _observe_step(self) -> None:
        scalars = _running_means(self.pos.sums)
        for observer in self._step_observers:
            observer.on_step(self.pos.global_step, scalars)

    def _finish_epoch(self, epoch: int, scalars: dict[str, float]) -> None:
        task, rt, pos = self.task, self.rt, self.pos
        eval_started = time.perf_counter()
        sums = {k: v.item() for k, v in rt.all_reduce_sum(pos.sums).items()}
        n = sums.pop("n", 0.0)
        record: dict[str, Any] = {"epoch": epoch + 1, "step": pos.global_step}
        record.update(scalars)
        record.update({f"train_{k}": v / n if n else math.nan for k, v in sums.items()})
        if n and not all(math.isfinite(v) for k, v in sums.items() if "loss" in k):
            last = self.run_files.checkpoint("last")
            raise GdasError(
                f"{self.run_dir}: the training loss of epoch {epoch + 1} is not finite (the run diverged); stopped "
                f"without saving it, {last} is kept; start a new run with a smaller --lr"
            )
        record.update(task.end_epoch(epoch))
        if (epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs:
            record.update(task.evaluate(epoch, rt))
        record["seconds"] = round(pos.train_seconds + time.perf_counter() - eval_started, 3)
        record[f"{task.examples}_per_s"] = round(n / pos.train_seconds, 2) if pos.train_seconds > 0 else None
        pos.history.append(record)
        improved = self._improved(record)
        pos.epoch, pos.step, pos.sums, pos.train_seconds = epoch + 1, 0, {}, 0.0
        if improved:
            self.save("best")
        self.save("last")
        for observer in self.observers:
            observer.on_epoch(record, pos.history)
        if self._stop_requested(pos.global_step, force=True) and epoch + 1 < self.cfg.epochs:
            self._interrupt(saved=True)

    def _improved(self, record: dict[str, Any]) -> bool:
        if not self.task.best_metric or self.task.best_metric[0] not in record:
            return False
        key, mode = self.task.best_metric
        value = float(record[key])
        if math.isnan(value):
            return False
        better = self.pos.best is None or (value > self.pos.best if mode == "max" else value < self.pos.best)
        if better:
            self.pos.best = value
        return better

    def _stop_requested(self, global_step: int, force: bool = False) -> bool:
        local = bool(self.stop and self.stop.requested)
        if not self.rt.distributed:
            return local
        # ranks must agree on the step they stop at; a collective per step costs a sync, so on GPUs
        # check every 20 steps (CPU runs check every step)
        interval = 1 if self.rt.device.type == "cpu" else 20
        if force or global_step % interval == 0:
            return self.rt.any_rank(local)
        return False

    def _interrupt(self, saved: bool = False) -> None:
        target = self.run_files.checkpoint("last")
        if not saved:
            self.save("last")
        hint = resume_command(self.cfg.resume_hint, self.run_dir)
        pos = self.pos
        where = f"at epoch {pos.epoch + 1} step {pos.step}" if pos.step else f"after epoch {pos.epoch}"
        raise RunInterrupted(f"interrupted {where}; saved {target}; resume with: {hint}", self.rt.rank)

    # ---- output

    def say_resumed(self) -> None:
        """Where a resumed run continues."""
        pos, which = self.pos, self.run_files.checkpoint("last")
        where = f"epoch {pos.epoch + 1}, step {pos.step}" if pos.step else f"the start of epoch {pos.epoch + 1}"
        self._say(f"resuming {self.run_dir} from {which} at {where} of {self.cfg.epochs} epochs")

    def _say(self, text: str) -> None:
        if self.rt.is_main and not self.cfg.quiet:
            say(text)


def _running_means(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """train_<key>: this epoch's mean so far of each summed value (one host sync)."""
    if "n" not in sums:
        return {}
    values = torch.stack([v.reshape(()) for v in sums.values()]).tolist()
    named = dict(zip(sums, values, strict=True))
    n = named.pop("n")
    return {f"train_{k}": v / n for k, v in named.items()} if n else {}


def _run(
    task: Task,
    cfg: EngineConfig,
    rt: Runtime,
    mode: ResumeMode,
    on_start: Callable[[], None] | None,
    observers: Sequence[Observer],
) -> dict[str, Any]:
    run_dir = _agree_run_dir(cfg, rt)
    resume = resumes(mode, run_dir)
    check_run_dir(run_dir, resume)
    rt.barrier()  # every rank has checked the folder before rank 0 locks and fills it
    seed_all(cfg.seed)  # the same initial weights on every rank and in a one-process run
    task.setup(rt)  # bad data fails here, before the run folder is made
    lock = take_run_dir(run_dir, resume) if rt.is_main else None
    try:
        rt.barrier()
        seed_all(rank_seed(cfg.seed, rt.rank))
        engine = Engine(task, cfg, rt, run_dir, observers)
        if resume:
            engine.restore()
            if rt.is_main:
                record_changes(RunDir(run_dir), task, cfg, engine.pos.epoch)
        elif rt.is_main:
            write_json(RunDir(run_dir).config_file, run_config(task, cfg, rt, run_dir))
        engine.start(resumed=resume)  # a resumed run's records and derived files are rewritten to match it
        if on_start is not None and rt.is_main and not cfg.quiet:
            on_start()  # the data loaded and checked: the command's plan
        if resume:
            engine.say_resumed()
        rt.barrier()
        return engine.run()
    finally:
        if lock is not None:
            lock.release()


def run_task(
    task: Task,
    cfg: EngineConfig,
    *,
    resume: bool | str = False,
    on_start: Callable[[], None] | None = None,
    observers: Sequence[Observer] = (),
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Set up the runtime, check and create the run directory, run the task, tear down.

    Bad input raises GdasError before anything is written; Ctrl-C raises RunInterrupted after a
    resumable checkpoint has been saved. `on_start` runs on the main process once the data is loaded
    and the run folder is ready, before the first step (unless quiet): where a command prints its plan.
    `observers` watch the run on rank 0 (`Observer`), after the records writer, the epoch lines and,
    with `cfg.tensorboard`, the TensorBoard writer. `runtime`: run on this one (e.g. `local_runtime`)
    instead of the one `setup_runtime` builds from torchrun's environment; run_task leaves it as it is.
    """
    mode = resume_mode(resume)
    if not resumes(mode, cfg.run_dir):  # a resumed run keeps its saved settings, which older versions accepted
        check_run_options(cfg, task.refuses)
    if cfg.tensorboard:
        from ..tensorboard import TensorBoardObserver, check_tensorboard

        check_tensorboard()
        observers = [TensorBoardObserver(), *observers]
    rt = setup_runtime(cfg) if runtime is None else runtime
    try:
        with quiet_progress(cfg.quiet or not rt.is_main):  # data preparation and evaluation bars too
            return _run(task, cfg, rt, mode, on_start, observers)
    except (RuntimeError, dist.DistError) as err:
        if not (rt.distributed and lost_peer(err)):
            raise
        # torchrun sends SIGTERM to the survivors of a lost rank: let this one say why before it ends (the group
        # is still torn down: a process that ends holding a gloo group can abort in its destructor)
        ignore_sigterm()
        raise GdasEnvironmentError(_lost_peer_line(cfg, rt, err)) from None
    finally:
        if runtime is None:
            teardown_runtime(rt)


def _lost_peer_line(cfg: EngineConfig, rt: Runtime, err: BaseException) -> str:
    others = [r for r in range(rt.world_size) if r != rt.rank]
    whom = f"rank {others[0]}" if len(others) == 1 else "another rank"
    cause = lost_peer_cause(err)
    where = cfg.run_dir or "the run folder"
    hint = resume_command(cfg.resume_hint, where) if cfg.run_dir else f"--resume {where}"
    return (
        f"rank {rt.rank} of {rt.world_size}: lost {whom} ({cause}); {where}/checkpoint/last is kept; "
        f"resume with: torchrun ... {hint}"
    )


def _agree_run_dir(cfg: EngineConfig, rt: Runtime) -> Path:
    chosen = Path(cfg.run_dir) if cfg.run_dir else (default_run_dir(cfg.run_name) if rt.is_main else None)
    return Path(rt.broadcast_object(str(chosen) if chosen is not None else None))


def run_config(task: Task, cfg: EngineConfig, rt: Runtime, run_dir: Path) -> dict[str, Any]:
    """config.json: what ran, with which settings and versions."""
    engine = cfg.to_dict()
    engine["run_dir"] = str(run_dir)
    record = task.run_record()
    record["records"] = {"metrics": METRICS_FILE, **record["records"]}
    if cfg.tensorboard:
        record["records"]["tensorboard"] = TENSORBOARD_DIR
    return {
        "kind": task.kind,
        "run": record,
        "gdas_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        "world_size": rt.world_size,
        "device": str(rt.device),
        "precision": rt.precision,
        "engine": engine,
        "task": task.config_dict(),
        # the checkpoint this run chooses, the one eval, export and derive take (rundir.chosen_checkpoint)
        "selection": {
            "checkpoint": "best" if task.best_metric else "last",
            "by": task.best_metric[0] if task.best_metric else None,
            "mode": task.best_metric[1] if task.best_metric else None,
        },
    }
