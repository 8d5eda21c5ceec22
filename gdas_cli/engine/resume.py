"""Whether a run starts or resumes, and what a resumed run may change.

A run is started with a `ResumeMode`: `never` (a new run: its folder must be missing or empty), `must`
(continue the run in the folder from checkpoint/last) or `auto` (continue it if it has a checkpoint, else
start it: what a torchrun restart does). `resumes` is the one place that decides; commands call it to
know whether to read the saved settings (`resume_settings`), and the loop calls it again as it starts.
A folder whose run was killed before its first checkpoint holds only config.json: it starts again.

Resume is exact on CPU (and in --deterministic mode on GPU): a checkpoint holds the weights, the
task state, the GradScaler, every rank's RNG states (python, numpy, torch CPU and CUDA), the epoch
and step, the epoch's partial metric sums and the metric history, so a killed run continued with
`resume=True` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import Path
from typing import Any

from ..checkpoint import write_json
from ..errors import GdasError, os_error
from ..rundir import (
    TENSORBOARD_DIR,
    RunDir,
    RunLock,
    clear_restartable,
    never_checkpointed,
    remove_stale_temporaries,
)
from .config import OPTION_NAMES, EngineConfig
from .task import Task


class ResumeMode(str, enum.Enum):
    NEVER = "never"  # a new run
    MUST = "must"  # --resume RUN
    AUTO = "auto"  # resume if there is a checkpoint (a restarted torchrun group), else start


def resume_mode(resume: bool | str) -> ResumeMode:
    """A mode from its value ("never", "must", "auto"); `resume=True/False` is MUST / NEVER."""
    if isinstance(resume, bool):
        return ResumeMode.MUST if resume else ResumeMode.NEVER
    return ResumeMode(resume)


def resumes(mode: bool | str, run_dir: Path | str | None) -> bool:
    """Whether a run started with `mode` in `run_dir` continues a saved run; `must` without a checkpoint to
    continue from is a one-line GdasError (what is missing, and what to do)."""
    mode = resume_mode(mode)
    if mode is ResumeMode.NEVER:
        return False
    if run_dir is None:
        if mode is ResumeMode.AUTO:
            return False
        raise GdasError("--resume: which run folder? (none given)")
    if mode is ResumeMode.AUTO:
        return RunDir(Path(run_dir)).has_checkpoint("last")
    check_run_dir(Path(run_dir), resume=True)
    return True


def default_run_dir(run_name: str, root: Path = Path("runs")) -> Path:
    """runs/<run_name>-<YYYYmmdd-HHMMSS>, with a numeric suffix if that exists already."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{run_name}-{stamp}"
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / f"{run_name}-{stamp}-{suffix}"
    return candidate


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs an empty or missing folder; a resumed one needs config.json and a checkpoint."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GdasError(f"{run_dir}: is a file, not a run directory")
    if resume:
        run = RunDir(run_dir)
        if not run.exists():
            raise GdasError(f"{run_dir}: not a run directory (no config.json)")
        if not run.has_checkpoint("last"):
            hint = (
                "; it never wrote a checkpoint: start it again with the same command and --run-dir"
                if never_checkpointed(run_dir)
                else ""
            )
            raise GdasError(f"{run_dir}: no checkpoint to resume from (checkpoint/last is missing){hint}")
        return
    if run_dir.exists() and any(run_dir.iterdir()) and not never_checkpointed(run_dir):
        raise GdasError(
            f"{run_dir}: run directory is not empty; pass --resume {run_dir} to continue it, "
            "or choose another --run-dir"
        )


# Settings every resumed run may change: how it is shown and where it runs, never what it computes.
RESUME_SAFE = frozenset({"quiet", "device", "checkpoint_every", "resume_hint", "tensorboard"})
_ABSENT = object()


def _same(given: Any, saved: Any) -> bool:
    if isinstance(given, (list, tuple)) and isinstance(saved, (list, tuple)):
        return len(given) == len(saved) and all(_same(a, b) for a, b in zip(given, saved, strict=True))
    if isinstance(given, Path) or isinstance(saved, Path):
        return Path(given).expanduser().resolve() == Path(saved).expanduser().resolve()
    return bool(given == saved)


def _shown(value: Any) -> str:
    if isinstance(value, dict) and {"name", "version"} <= set(value):  # a genotype
        return f"{value['name']}@{value['version']}"
    return str(value) if isinstance(value, Path) else repr(value)


def refuse_changes(
    given: dict[str, Any], saved: dict[str, Any], may_change: frozenset[str], where: str, saved_in: str = "config"
) -> None:
    """Refuse, with one line naming the option, a typed option (`given`, config names) that would change a
    `saved` setting of the run `where`; those in `may_change` may, and None means not typed."""
    for key, value in given.items():
        if value is None or key in may_change or key == "run_dir":
            continue
        before = saved.get(key, _ABSENT)
        if before is _ABSENT or not _same(value, before):
            option = "--" + OPTION_NAMES.get(key, key.replace("_", "-"))
            shown = "unset" if before is _ABSENT else _shown(before)
            raise GdasError(
                f"--resume {where}: {option}: {shown} -> {_shown(value)} would change the saved {saved_in}; "
                "a resumed run keeps its config (drop the option, or start a new run)"
            )


def resume_settings(run_dir: Path, task: type[Task], given: dict[str, Any]) -> tuple[dict[str, Any], EngineConfig]:
    """The saved task config and engine config of a run of `task` to resume, with the allowed changes applied.

    `given` holds only the options the user typed, keyed by their config names. One that would change a
    saved setting is refused with one line naming it; the task's `resume_may_change` and RESUME_SAFE may
    change; more --epochs extends the run.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume=True)
    config = RunDir(run_dir).read_config()
    network = task.network
    found = (config.get("kind"), config["task"].get("network", "cnn") if network else None)
    if found != (task.kind, network):
        label = " ".join(str(part) for part in reversed(found) if part)
        raise GdasError(f"--resume {run_dir}: a {label} run, not a {network + ' ' if network else ''}{task.kind} run")
    saved_task, engine = dict(config["task"]), dict(config["engine"])
    safe = task.resume_may_change
    extended = _extension(run_dir, given.get("epochs"), engine.get("epochs"))
    may_change = RESUME_SAFE | safe | ({"epochs"} if extended else set())
    refuse_changes(given, {**engine, **saved_task}, frozenset(may_change), str(run_dir))
    saved_task.update({k: v for k, v in given.items() if k in safe and v is not None and k in saved_task})
    engine.update({k: v for k, v in given.items() if k in RESUME_SAFE and v is not None})
    engine["quiet"] = bool(given.get("quiet"))  # how this invocation shows itself, not a saved setting
    if extended:
        engine["epochs"] = given["epochs"]
        if "epochs" in saved_task:
            saved_task["epochs"] = given["epochs"]
    engine["run_dir"] = str(run_dir)
    return saved_task, EngineConfig.from_dict(engine, str(RunDir(run_dir).config_file))


def _extension(run_dir: Path, epochs: Any, planned: Any) -> bool:
    """Whether `--resume RUN --epochs N` extends the run; fewer epochs than planned is refused.

    An extended run's schedules (learning rate, tau, drop-path) become those of an N-epoch run from the
    epoch it resumes at, as if N had been asked for from the start (README, "Resume and extend").
    """
    if epochs is None or epochs == planned:
        return False
    if not isinstance(planned, int) or epochs < planned:
        raise GdasError(
            f"--resume {run_dir}: --epochs: {planned} -> {epochs}: a resumed run keeps its epochs or gets more "
            "(extending it); it is never shortened"
        )
    return True


def record_changes(run: RunDir, task: Task, cfg: EngineConfig, at_epoch: int) -> None:
    """A run resumed with more --epochs: config.json records the new plan and when it changed. One resumed
    with --tensorboard or --no-tensorboard keeps that choice for later resumes; its run record lists the
    event folder once there is one."""
    config = run.read_config()
    engine, records = config["engine"], config.get("run", {}).get("records")
    planned = engine.get("epochs")
    if planned == cfg.epochs and engine.get("tensorboard", False) == cfg.tensorboard:
        return
    if planned != cfg.epochs:
        engine["epochs"] = cfg.epochs
        config["task"] = task.config_dict()
        config["extended"] = [*config.get("extended", []), {"from": planned, "to": cfg.epochs, "after_epoch": at_epoch}]
    engine["tensorboard"] = cfg.tensorboard
    if cfg.tensorboard and isinstance(records, dict):
        records["tensorboard"] = TENSORBOARD_DIR
    write_json(run.config_file, config)


def take_run_dir(run_dir: Path, resume: bool) -> RunLock:
    """Lock the run folder for this process; clean what killed runs left (see README, run folders)."""
    if not resume and never_checkpointed(run_dir):
        clear_restartable(run_dir)  # a run killed before its first checkpoint: start it afresh
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(err, f"--run-dir {run_dir}: cannot create it") from None
    lock = RunLock(run_dir)
    lock.acquire()
    remove_stale_temporaries(run_dir)
    if resume:
        RunDir(run_dir).find("last")  # recover from a crash mid-swap
    return lock
