"""The run directory: the one place that knows a run's files and which checkpoint is which.

    <run>/config.json          task and engine config the run was started with (each setting's source, the
                               checkpoint the run chooses: `selection`, any `--epochs` extension) and `run`,
                               what the run is (`run_record`): what `gdas runs` lists, compares and plots
    <run>/.lock                the PID of the process running the run, while it runs
    <run>/metrics.jsonl        one record per epoch
    <run>/alphas.jsonl         search runs: the alphas after every epoch
    <run>/genotypes.jsonl      search runs: the genotype derived after every epoch
    <run>/split.json           CNN search runs: the recorded train/valid split
    <run>/genotype.json        search runs, once finished: the searched genotype
    <run>/checkpoint/last/     the newest checkpoint (what --resume continues)
    <run>/checkpoint/best/     the checkpoint the engine chose by the task's own metric (final training:
                               validation top-1, only with --val-split; split.json records the split;
                               language models and RNN searches: the lowest validation loss)
        model.safetensors      weights (weights.py format)
        averaged.safetensors   language models on ASGD: the averaged weights
        state.pt               optimizer, scheduler, RNG and position (loaded with weights_only=True)
        progress.json          epoch and step the checkpoint holds

A `--seeds` parent (search/seeds.py) is a run folder too: its config.json has `run` (its parts are runs
of their own) beside seeds.json, ranking.json and the winner's genotype.json.

`resolve` turns what a user types (a run folder, a checkpoint folder or a weights file) into a
`Resolved` (run, checkpoint folder, weights file); eval, derive, export and resume all use it.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import WEIGHTS_FILE, find_checkpoint, read_json
from .errors import GdasError, os_error
from .files import sha256_file
from .jsonio import read_jsonl

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
ALPHAS_FILE = "alphas.jsonl"
GENOTYPES_FILE = "genotypes.jsonl"
SPLIT_FILE = "split.json"
GENOTYPE_FILE = "genotype.json"
CHECKPOINT_DIR = "checkpoint"
TENSORBOARD_DIR = "tensorboard"  # the event files of --tensorboard (gdas_cli.tensorboard)
STATE_FILE = "state.pt"
PROGRESS_FILE = "progress.json"
AVERAGED_FILE = "averaged.safetensors"
CHECKPOINTS = ("last", "best")
RUN_SCHEMA = "gdas-run"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class RunDir:
    """A run folder and the names of its files."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def alphas_file(self) -> Path:
        return self.path / ALPHAS_FILE

    @property
    def genotypes_file(self) -> Path:
        return self.path / GENOTYPES_FILE

    @property
    def split_file(self) -> Path:
        return self.path / SPLIT_FILE

    @property
    def genotype_file(self) -> Path:
        return self.path / GENOTYPE_FILE

    def exists(self) -> bool:
        """Whether this is a run folder at all (it has a config.json)."""
        return self.config_file.is_file()

    def checkpoint(self, which: str) -> Path:
        """checkpoint/<which>, whether or not it exists yet."""
        return self.path / CHECKPOINT_DIR / which

    def find(self, which: str) -> Path | None:
        """checkpoint/<which> if it exists (recovering a crash mid-swap), else None."""
        return find_checkpoint(self.checkpoint(which))

    def has_checkpoint(self, which: str = "last") -> bool:
        folder = self.checkpoint(which)
        return folder.is_dir() or (folder.parent / f".{folder.name}.old").is_dir()

    def read_config(self) -> dict[str, Any]:
        """The config.json the run was started with; a file of another shape is an error naming it."""
        config = read_json(self.config_file)
        if not isinstance(config, dict) or "engine" not in config or not isinstance(config.get("task"), dict):
            raise GdasError(f"{self.config_file}: not a gdas run config")
        return config

    def kind(self) -> str | None:
        """search, train, lm, ... as recorded in config.json (None when it has none)."""
        kind = self.read_config().get("kind")
        return kind if isinstance(kind, str) else None


def run_record(
    command: str,
    *,
    dataset: str | None,
    figures: dict[str, dict[str, str]],
    space: str | None = None,
    genotype: str | None = None,
    records: dict[str, str] | None = None,
    result: str | None = None,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a run is, as config.json's `run` holds it (schema gdas-run, version 1); `gdas runs` reads it.

    `command`: what started it (gdas search cnn, gdas search rnn, gdas train, gdas search cnn --seeds);
    `dataset`; `space`: the search space searched or the trained genotype's; `genotype`: the trained one
    (name@version); `figures`: per split (train, valid, test) the metrics.jsonl keys that measure the model
    on it ({"loss": ..., "top1": ..., "ppl": ...}); `records`: the per-epoch record files by name
    (metrics.jsonl first; `tensorboard`, the event folder, with --tensorboard); `result`: the file the
    run's outcome is written to, if not a checkpoint (a search's genotype.json); `parts`: the runs a parent
    run is made of ({"run": folder relative to it, "epochs": planned}).
    """
    unknown = set(figures) - set(SPLITS)
    assert not unknown, f"figures of unknown splits {unknown}"
    return {
        "schema": RUN_SCHEMA,
        "schema_version": 1,
        "command": command,
        "dataset": dataset,
        "space": space,
        "genotype": genotype,
        "figures": figures,
        "records": dict(records or {}),
        "result": result,
        "parts": list(parts or []),
    }


def resume_command(hint: str, run_dir: Path | str) -> str:
    """The command that resumes a run: its engine's `resume_hint` ("{run_dir}" filled in)."""
    return (hint or "--resume {run_dir}").replace("{run_dir}", str(run_dir))


def progress_of(checkpoint: Path) -> dict[str, Any]:
    """progress.json of a checkpoint folder ({} when it has none), its counters checked by type."""
    path = Path(checkpoint) / PROGRESS_FILE
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise GdasError(f"{path}: expected a JSON object")
    for key in ("epoch", "step", "global_step", "epochs"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise GdasError(f"{path}: {key} must be an integer >= 0, not {value!r}")
    if not isinstance(data.get("finished", False), bool):
        raise GdasError(f"{path}: finished must be true or false")
    return data


_PERCENT_SUFFIXES = ("_top1", "_top5")
_NUMBER_SUFFIXES = ("_loss", "_ppl", "_per_s", "seconds", "lr", "tau", "drop_path")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl ([] when missing), every record checked by type before use: an integer epoch and step,
    accuracies as numbers in 0..100, losses, perplexities, rates and times as finite numbers."""
    path = Path(path)
    if not path.is_file():
        return []
    records = read_jsonl(path, "metrics file")
    for number, record in enumerate(records, 1):
        for key, value in record.items():
            integer = key in ("epoch", "step")
            percent = key.endswith(_PERCENT_SUFFIXES)
            if not (integer or percent or key.endswith(_NUMBER_SUFFIXES)) or value is None:
                continue
            if integer and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise GdasError(f"{path}: record {number}: {key} must be an integer >= 0, not {value!r}")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise GdasError(f"{path}: record {number}: {key} must be a finite number, not {value!r}")
            if percent and not 0 <= value <= 100:
                raise GdasError(f"{path}: record {number}: {key} must be a percentage (0..100), not {value!r}")
    return records


def checkpoint_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of a checkpoint folder being written (progress.json records them)."""
    return {p.name: sha256_file(p) for p in sorted(Path(folder).iterdir()) if p.is_file() and p.name != PROGRESS_FILE}


def verify_checkpoint(folder: Path) -> None:
    """Check the files of a checkpoint folder against the sha256 its progress.json records.

    Checkpoints written before the digests were recorded have none and are accepted as they are.
    """
    recorded = progress_of(folder).get("sha256")
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise GdasError(f"{Path(folder) / PROGRESS_FILE}: sha256 must map file names to digests")
    for name, want in recorded.items():
        path = Path(folder) / str(name)
        if not path.is_file():
            raise GdasError(f"{path}: missing; {PROGRESS_FILE} lists it, so the checkpoint is incomplete")
        if sha256_file(path) != want:
            raise GdasError(f"{path}: sha256 does not match {PROGRESS_FILE}; the file is corrupted")


def read_split(path: Path) -> dict[str, Any]:
    """split.json: the seed and the train and valid image indices of a run's split, checked by type."""
    data = read_json(path)
    halves = [data.get(half) if isinstance(data, dict) else None for half in ("train", "valid")]
    if not all(isinstance(half, list) for half in halves) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0
        for half in halves
        for i in half  # type: ignore[union-attr]
    ):
        raise GdasError(f"{path}: not a split file (train and valid must be lists of image indices)")
    return data


def chosen_checkpoint(config: dict[str, Any]) -> str:
    """The checkpoint a run chose, the one eval, export and derive take by default: `best` when its task
    selects one by a validation metric (config.json's `selection`), else `last` (the final epoch).

    Runs written before `selection` was recorded: image training chose `best` only with --val-split, a
    language model and an RNN search always (lowest validation loss), a CNN search never.
    """
    selection = config.get("selection")
    if isinstance(selection, dict) and selection.get("checkpoint") in CHECKPOINTS:
        return str(selection["checkpoint"])
    task = config.get("task")
    task = task if isinstance(task, dict) else {}
    kind = config.get("kind")
    if kind == "train":
        return "best" if task.get("val_split") else "last"
    return "best" if kind == "lm" or (kind == "search" and task.get("network") == "rnn") else "last"


def checkpoint_choice(which: str | None, task: dict[str, Any], by: str | None = "valid_top1") -> str | None:
    """Which split chose these weights: the validation split for checkpoint/best, none for the final epoch."""
    if which == "best":
        if by == "valid_top1":
            seed = task.get("split_seed")
            return f"best valid_top1 ({task.get('val_split')} training images held out, seed {seed})"
        return f"best {by} on the validation split"
    if which == "last":
        return "final epoch (no selection)"
    return None


@dataclass(frozen=True)
class Resolved:
    """What a user's path points at: the run (if the weights are inside one), the checkpoint folder, the weights."""

    run: RunDir | None
    checkpoint: Path | None
    weights: Path
    which: str | None = None

    def config(self) -> dict[str, Any] | None:
        return self.run.read_config() if self.run is not None else None


def _enclosing_run(checkpoint: Path) -> RunDir | None:
    """The run a checkpoint folder sits in (<run>/checkpoint/<which>), if any."""
    checkpoint = Path(checkpoint).resolve()
    if checkpoint.parent.name != CHECKPOINT_DIR:
        return None
    run = RunDir(checkpoint.parent.parent)
    return run if run.exists() else None


def resolve(path: Path | str, prefer: tuple[str, ...] = ("last",), weights_file: str = WEIGHTS_FILE) -> Resolved:
    """A run folder (its first existing checkpoint of `prefer`), a checkpoint folder, or a weights file.

    `weights_file` names the file to take inside a checkpoint folder.
    """
    path = Path(path).expanduser()
    if path.is_file():
        verify_checkpoint(path.parent)
        return Resolved(_enclosing_run(path.parent), path.parent, path)
    if not path.is_dir():
        raise GdasError(f"{path}: no such run folder, checkpoint folder or weights file")
    run = RunDir(path)
    if run.exists():
        for which in prefer:
            folder = run.find(which)
            if folder is not None and (folder / weights_file).is_file():
                verify_checkpoint(folder)
                return Resolved(run, folder, folder / weights_file, which)
        parts = [str(part.get("run")) for part in (run.read_config().get("run") or {}).get("parts") or []]
        if parts:
            raise GdasError(f"{path}: a parent run, no weights of its own; pass one of its runs: {', '.join(parts)}")
        wanted = " or ".join(f"checkpoint/{w}" for w in prefer)
        raise GdasError(f"{path}: the run has no {wanted} yet")
    if (path / weights_file).is_file():
        verify_checkpoint(path)
        run_of = _enclosing_run(path)
        return Resolved(run_of, path, path / weights_file, path.name if run_of is not None else None)
    raise GdasError(f"{path}: neither a run folder ({CONFIG_FILE}) nor a checkpoint folder ({weights_file})")


def enclosing_run(path: Path) -> Path | None:
    """The run folder `path` is, or lies inside, if any."""
    current = Path(os.path.abspath(Path(path).expanduser()))
    for candidate in (current, *current.parents):
        if RunDir(candidate).exists():
            return candidate
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def guard_output(
    path: Path, *, overwrite: bool = False, reads: Sequence[Path] = (), option: str = "--output", folder: bool = False
) -> None:
    """Refuse an output that would clobber what the command reads, a run directory, or (without
    --overwrite) anything that exists. `folder`: the output is a folder, else a file."""
    target = Path(os.path.abspath(Path(path).expanduser()))
    for source in reads:
        read = Path(os.path.abspath(Path(source).expanduser()))
        if _inside(target, read) or _inside(read, target):
            raise GdasError(f"{option} {path}: would write over {source}, which this command reads")
    run = enclosing_run(target)
    if run is not None:
        raise GdasError(f"{option} {path}: inside the run directory {run}; write outside it (runs are never changed)")
    if target.exists() and target.is_dir() and not folder:
        raise GdasError(f"{option} {path}: is a folder; give a file name")
    if target.exists() and not target.is_dir() and folder:
        raise GdasError(f"{option} {path}: exists and is not a folder")
    if folder and target.is_dir() and any(target.iterdir()) and not overwrite:
        raise GdasError(f"{option} {path}: folder exists and is not empty; pass --overwrite to replace it")
    if folder and target.is_dir() and any(RunDir(child).exists() for child in target.iterdir() if child.is_dir()):
        raise GdasError(f"{option} {path}: holds run directories; --overwrite never replaces runs")
    if not folder and target.exists() and not overwrite:
        raise GdasError(f"{option} {path}: exists; pass --overwrite to replace it")
    parent = target.parent
    if not parent.exists():
        raise GdasError(f"{option} {path}: parent folder {parent} does not exist")
    if not parent.is_dir():
        raise GdasError(f"{option} {path}: {parent} is not a folder")


LOCK_FILE = ".lock"
# what a run that never wrote a checkpoint can hold; such a folder may be started again
_RESTARTABLE = {
    CONFIG_FILE,
    METRICS_FILE,
    ALPHAS_FILE,
    GENOTYPES_FILE,
    SPLIT_FILE,
    LOCK_FILE,
    CHECKPOINT_DIR,
    TENSORBOARD_DIR,
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(run: Path) -> int | None:
    """The PID of a live process holding `run`'s lock, if any (a dead holder's lock is stale)."""
    path = Path(run) / LOCK_FILE
    try:
        pid = int(path.read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and pid != os.getpid() and _alive(pid) else None


class RunLock:
    """`<run>/.lock` holding this process's PID while it runs or resumes the run."""

    def __init__(self, run: Path) -> None:
        self.path = Path(run) / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        holder = lock_holder(self.path.parent)
        if holder is not None:
            raise GdasError(f"{self.path.parent}: in use by process {holder} ({LOCK_FILE}); wait for it or stop it")
        self.path.unlink(missing_ok=True)  # a dead holder's
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(self.path.parent)
            raise GdasError(f"{self.path.parent}: in use by process {holder or 'another'} ({LOCK_FILE})") from None
        except OSError as err:
            raise os_error(err, f"{self.path.parent}: cannot write the run's lock file") from None
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()}\n")
        except OSError as err:  # a full disk or a quota: no lock without its PID
            self.path.unlink(missing_ok=True)
            raise os_error(err, f"{self.path}: cannot write the run's lock file") from None
        self.held = True

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def never_checkpointed(run: Path) -> bool:
    """A run folder that holds only what a run writes before its first checkpoint (and no live lock)."""
    run = Path(run)
    folder = RunDir(run)
    if not run.is_dir() or not folder.exists() or folder.has_checkpoint("last") or folder.has_checkpoint("best"):
        return False
    children = list(run.iterdir())
    if not children or any(child.name not in _RESTARTABLE for child in children):
        return False
    checkpoints = run / CHECKPOINT_DIR
    if checkpoints.is_dir() and any(not c.name.startswith(".") for c in checkpoints.iterdir()):
        return False
    return lock_holder(run) is None


def clear_restartable(run: Path) -> None:
    """Empty a folder `never_checkpointed` accepted, so the same command starts it afresh."""
    for child in Path(run).iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def remove_stale_temporaries(run: Path) -> None:
    """Half-written checkpoint folders (`checkpoint/.<which>.tmp-*`) left by a killed process."""
    checkpoints = Path(run) / CHECKPOINT_DIR
    if checkpoints.is_dir():
        for child in checkpoints.iterdir():
            if child.is_dir() and child.name.startswith(".") and ".tmp-" in child.name:
                shutil.rmtree(child, ignore_errors=True)
