"""The run directory: the one place that knows a run's files and which checkpoint is which.

    <run>/config.json          task and engine config the run was started with
    <run>/metrics.jsonl        one record per epoch
    <run>/alphas.jsonl         search runs: the alphas after every epoch
    <run>/genotypes.jsonl      search runs: the genotype derived after every epoch
    <run>/split.json           CNN search runs: the recorded train/valid split
    <run>/genotype.json        search runs, once finished: the searched genotype
    <run>/checkpoint/last/     the newest checkpoint (what --resume continues)
    <run>/checkpoint/best/     the checkpoint the engine chose by the task's own metric (final training:
                               validation top-1, only with --val-split; split.json records the split)
        model.safetensors      weights (weights.py format)
        averaged.safetensors   language models on ASGD: the averaged weights
        state.pt               optimizer, scheduler, RNG and position (loaded with weights_only=True)
        progress.json          epoch and step the checkpoint holds

`resolve` turns what a user types (a run folder, a checkpoint folder or a weights file) into a
`Resolved` (run, checkpoint folder, weights file); eval, derive, export and resume all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import find_checkpoint, read_json
from .errors import GdasError
from .weights import WEIGHTS_FILE

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
ALPHAS_FILE = "alphas.jsonl"
GENOTYPES_FILE = "genotypes.jsonl"
SPLIT_FILE = "split.json"
GENOTYPE_FILE = "genotype.json"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"
PROGRESS_FILE = "progress.json"
AVERAGED_FILE = "averaged.safetensors"
CHECKPOINTS = ("last", "best")


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


def progress_of(checkpoint: Path) -> dict[str, Any]:
    """progress.json of a checkpoint folder ({} when it has none)."""
    path = Path(checkpoint) / PROGRESS_FILE
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise GdasError(f"{path}: expected a JSON object")
    return data


def checkpoint_choice(which: str | None, task: dict[str, Any]) -> str | None:
    """Which split chose these weights: the validation split for checkpoint/best, none for the final epoch."""
    if which == "best":
        seed = task.get("split_seed")
        return f"best validation top-1 ({task.get('val_split')} training images held out, seed {seed})"
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
        return Resolved(_enclosing_run(path.parent), path.parent, path)
    if not path.is_dir():
        raise GdasError(f"{path}: no such run folder, checkpoint folder or weights file")
    run = RunDir(path)
    if run.exists():
        for which in prefer:
            folder = run.find(which)
            if folder is not None and (folder / weights_file).is_file():
                return Resolved(run, folder, folder / weights_file, which)
        wanted = " or ".join(f"checkpoint/{w}" for w in prefer)
        raise GdasError(f"{path}: the run has no {wanted} yet")
    if (path / weights_file).is_file():
        run_of = _enclosing_run(path)
        return Resolved(run_of, path, path / weights_file, path.name if run_of is not None else None)
    raise GdasError(f"{path}: neither a run folder ({CONFIG_FILE}) nor a checkpoint folder ({weights_file})")
