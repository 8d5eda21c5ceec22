"""The one training loop: final training, the GDAS search and language-model training all run on it.

A *task* says what a step does on a batch, what evaluation measures and what state it owns; the engine
owns the rest: epochs and steps, device and precision (autocast, GradScaler), DDP set-up and tear-down,
the run directory (config.json, metrics.jsonl, checkpoint/last, checkpoint/best), checkpoint and exact
resume, progress, Ctrl-C, seeding and RNG state. A run is started by `run_task` with a resume mode
(never / must / auto), an injectable runtime and observers. One module per concern, lowest first:

    config     EngineConfig, its checks, and the checks of task configs' values
    runtime    Runtime: device, precision, ranks, collectives; torchrun's group; seeds and RNG states
    task       the Task protocol and BatchSource
    observers  Observer, RunStart, the records writer, the epoch lines and the progress bar
    resume     ResumeMode and the one decision `resumes`; run folders; what a resumed run may change
    loop       Engine (epochs, steps, checkpoints, exact resume, Ctrl-C) and run_task
"""

from .config import (
    DEVICES,
    OPTION_NAMES,
    PRECISIONS,
    RUN_OPTION_FLAGS,
    EngineConfig,
    check_finite,
    check_run_options,
    config_from_dict,
    validate_engine_config,
)
from .loop import Engine, RunInterrupted, run_config, run_task
from .observers import LOG_EVERY, EpochLines, Observer, ProgressBar, RecordsWriter, RunStart, say
from .resume import (
    RESUME_SAFE,
    ResumeMode,
    check_run_dir,
    default_run_dir,
    refuse_changes,
    resume_settings,
    resumes,
)
from .runtime import (
    COLLECTIVE_TIMEOUT_S,
    Runtime,
    capture_rng,
    collective_timeout,
    ignore_sigterm,
    local_runtime,
    lost_peer,
    lost_peer_cause,
    pick_device,
    rank_seed,
    resolve_precision,
    restore_rng,
    seed_all,
    setup_runtime,
    start_process_group,
    teardown_runtime,
)
from .task import BatchSource, Task

__all__ = [
    "COLLECTIVE_TIMEOUT_S",
    "DEVICES",
    "LOG_EVERY",
    "OPTION_NAMES",
    "PRECISIONS",
    "RESUME_SAFE",
    "RUN_OPTION_FLAGS",
    "BatchSource",
    "Engine",
    "EngineConfig",
    "EpochLines",
    "Observer",
    "ProgressBar",
    "RecordsWriter",
    "ResumeMode",
    "RunInterrupted",
    "RunStart",
    "Runtime",
    "Task",
    "capture_rng",
    "check_finite",
    "check_run_dir",
    "check_run_options",
    "collective_timeout",
    "config_from_dict",
    "default_run_dir",
    "ignore_sigterm",
    "local_runtime",
    "lost_peer",
    "lost_peer_cause",
    "pick_device",
    "rank_seed",
    "refuse_changes",
    "resolve_precision",
    "restore_rng",
    "resume_settings",
    "resumes",
    "run_config",
    "run_task",
    "say",
    "seed_all",
    "setup_runtime",
    "start_process_group",
    "teardown_runtime",
    "validate_engine_config",
]
