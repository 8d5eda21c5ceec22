"""The engine's settings: EngineConfig (saved under "engine" in config.json) and the checks of config values."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import GdasError
from ..jsonio import check_fields
from ..limits import COUNT, EPOCHS, FLOAT32_MAX, SEED

PRECISIONS = ("fp32", "bf16", "fp16", "amp")
DEVICES = ("auto", "cpu", "cuda")
# config keys spelt otherwise on the command line
OPTION_NAMES = {"C": "channels", "arch_betas": "arch-beta1/--arch-beta2"}


@dataclass
class EngineConfig:
    """What the engine needs besides the task; saved under "engine" in config.json."""

    epochs: int
    run_dir: str | None = None  # None: runs/<run_name>-<timestamp>
    run_name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 | fp16 | amp (bf16 where supported, else fp16; fp32 on CPU)
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    deterministic: bool = False
    checkpoint_every: int = 0  # also checkpoint every N steps (0: at epoch ends only)
    eval_every: int = 1  # evaluate every N epochs and always after the last
    limit_train_batches: int = 0  # 0: the whole epoch
    quiet: bool = False
    tensorboard: bool = False  # TensorBoard event files in <run_dir>/tensorboard/ (gdas_cli.tensorboard)
    resume_hint: str = ""  # the command that resumes this run, for the Ctrl-C message; "{run_dir}" is filled in

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config.json") -> EngineConfig:
        """A saved engine config (config.json), checked by type and range; a bad value names `source`."""
        check_fields(cls, data, source, "engine setting")
        known = set(cls.__dataclass_fields__)
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        try:
            validate_engine_config(cfg)
        except GdasError as err:
            raise GdasError(f"{source}: saved {err}") from None
        return cfg


def validate_engine_config(cfg: EngineConfig) -> None:
    """Every bad option is a one-line GdasError naming it: the command line's ranges (limits.py), applied
    again to a config built in Python or saved by a run that is resumed."""
    choices = [
        (cfg.device in DEVICES, "--device", f"{cfg.device!r} must be one of {', '.join(DEVICES)}"),
        (cfg.precision in PRECISIONS, "--precision", f"{cfg.precision!r} must be one of {', '.join(PRECISIONS)}"),
    ]
    for ok, option, problem in choices:
        if not ok:
            raise GdasError(f"{option}: {problem}")
    ranges = [
        (cfg.epochs, "--epochs", EPOCHS),
        (cfg.seed, "--seed", SEED),
        (cfg.checkpoint_every, "--checkpoint-every", COUNT),
        (cfg.eval_every, "--eval-every", EPOCHS),
        (cfg.limit_train_batches, "--limit-train-batches", COUNT),
    ]
    for value, option, bounds in ranges:
        wrong = bounds.problem(value)
        if wrong is not None:
            raise GdasError(f"{option}: {wrong}")


def check_finite(config: Any) -> None:
    """Every float setting of a config dataclass is a finite number, in float32 too (the optimizers' type);
    inf, nan and 1e300 name their option."""
    for item in fields(config):
        value = getattr(config, item.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        floats = [v for v in values if isinstance(v, float)]
        option = "--" + OPTION_NAMES.get(item.name, item.name.replace("_", "-"))
        if not all(math.isfinite(v) for v in floats):
            raise GdasError(f"{option}: {value} is not a finite number")
        if any(abs(v) > FLOAT32_MAX for v in floats):
            raise GdasError(f"{option}: {value} is beyond float32's range (at most {FLOAT32_MAX:.3g})")


def config_from_dict(cls: type, data: dict[str, Any], source: str, what: str = "configuration") -> Any:
    """Rebuild a task-config dataclass from config.json, ignoring keys it does not know."""
    check_fields(cls, data, source, what)
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as err:
        raise GdasError(f"{source}: bad {what} ({err})") from None


RUN_OPTION_FLAGS = {"channels_last": "--channels-last", "compile": "--compile", "sync_bn": "--sync-bn"}


def check_run_options(cfg: EngineConfig, refuses: Mapping[str, str]) -> None:
    """Refuse a shared run option the task would not use (never accepted and then ignored), and --sync-bn
    without DDP, where SyncBatchNorm is plain BatchNorm."""
    for name, flag in RUN_OPTION_FLAGS.items():
        if getattr(cfg, name) and name in refuses:
            raise GdasError(f"{flag}: {refuses[name]}")
    if cfg.sync_bn and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        raise GdasError("--sync-bn: SyncBatchNorm shares BN statistics across DDP processes; this run has one process")
