"""The one training loop: final training, the GDAS search and language-model training all run on it.

A *task* says what a step does on a batch, what evaluation measures and what state it owns; the
engine owns the rest: epochs and steps, device and precision (autocast, GradScaler), DDP set-up and
tear-down, the run directory (config.json, metrics.jsonl, checkpoint/last, checkpoint/best),
checkpoint and exact resume, rich progress, Ctrl-C, seeding and RNG state.

Task protocol (subclass `Task`; the methods marked optional have defaults)::

    kind: str                        names the run ("train", "search", "lm"): runs/<kind>-<dataset>-<time>
    best_metric: (key, "max"|"min")  optional; the record key that picks checkpoint/best (None: no best)
    config_dict() -> dict            the resolved task config (JSON), saved under "task" in config.json
    setup(rt)                        load data, build models and optimizers on rt.device, wrap the trained
                                     module with rt.prepare_model. Raise GdasError for bad input: nothing
                                     has been written yet. Seeded identically on every rank.
    train_batches() -> BatchSource   the training batches (data.TensorBatches, data.LoaderBatches, ...)
    start_epoch(epoch) -> dict       optional; set lr / drop-path / tau for `epoch` (0-based). Must be
                                     idempotent: a run resumed mid-epoch calls it again. Returns scalars
                                     for the epoch's record (e.g. {"lr": ..., "drop_path": ...}).
    train_step(batch, rt) -> dict    forward, rt.backward_step(loss, optimizer, ...); returns per-batch
                                     SUMS as tensors (no .item(), so no host sync), with "n" = examples.
                                     The record gets train_<key> = sum(key) / sum(n) over all ranks.
    end_epoch(epoch) -> dict         optional; step schedulers; extra record fields (tau, genotype, ...)
    evaluate(epoch, rt) -> dict      metrics of the epoch's model, already reduced over ranks
                                     (rt.all_reduce_sum); keys go into the record as given (test_top1)
    state_dict() / load_state_dict() optimizers, schedulers and anything else not in the weights; must
                                     load with torch.load(weights_only=True): tensors, numbers, str, lists,
                                     tuples, dicts
    save_weights(dir) / load_weights(dir)  the model weights as safetensors in a checkpoint folder
    after_epoch(run_dir, history)    optional; rank 0 writes files derived from the records (e.g.
                                     genotypes.jsonl). Also called on resume, so they match the checkpoint.
    run_record() -> dict             optional; what the run is (rundir.run_record: command, dataset, space or genotype,
                                     the record keys of each split, its own record files), config.json's
                                     `run`; the engine adds metrics.jsonl to its records
    epoch_views(run_dir, history) -> dict  optional; what observers may show of the epoch of history[-1]
                                     beyond its record: {"alphas": {role: tensor}, "genotype": Genotype}
                                     (searches); {} by default

Observers watch a run without the loop knowing them (`Observer`; rank 0 only): `on_start` (the run folder,
the config, the task and where the run starts: global step and record history), `on_step` (every 10th
step of an epoch: the running means), `on_epoch` (each record, after its checkpoint is saved) and
`on_finish`. metrics.jsonl with the task's derived files (`RecordsWriter`) and the console's epoch lines
(`EpochLines`) are observers; `EngineConfig.tensorboard` adds gdas_cli.tensorboard's, and
`run_task(observers=...)` any others.

Batches come from a `BatchSource`: `len(source)` batches per epoch on this rank and
`source.batches(epoch, start)`, which must give the same batches for the same epoch every time
(order and augmentation are functions of the seed, epoch and index), so a resumed run skips the
`start` batches already done and sees exactly what the uninterrupted run saw.

Resume is exact on CPU (and in --deterministic mode on GPU): a checkpoint holds the weights, the
task state, the GradScaler, every rank's RNG states (python, numpy, torch CPU and CUDA), the epoch
and step, the epoch's partial metric sums and the metric history, so a killed run continued with
`resume=True` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from . import __version__
from .checkpoint import STATE_FORMAT, load_state, save_state, write_checkpoint, write_json, write_jsonl
from .errors import GdasEnvironmentError, GdasError, os_error
from .jsonio import check_fields
from .progress import format_duration
from .progress import quiet as quiet_progress
from .rundir import (
    METRICS_FILE,
    PROGRESS_FILE,
    STATE_FILE,
    TENSORBOARD_DIR,
    RunDir,
    RunLock,
    checkpoint_digests,
    clear_restartable,
    never_checkpointed,
    remove_stale_temporaries,
    resume_command,
    run_record,
    verify_checkpoint,
)

PRECISIONS = ("fp32", "bf16", "fp16", "amp")
DEVICES = ("auto", "cpu", "cuda")


# --------------------------------------------------------------------------------------------- config


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
    """Every bad option is a one-line GdasError naming it."""
    checks = [
        (cfg.epochs >= 1, "--epochs", f"must be at least 1, got {cfg.epochs}"),
        (cfg.device in DEVICES, "--device", f"{cfg.device!r} must be one of {', '.join(DEVICES)}"),
        (cfg.precision in PRECISIONS, "--precision", f"{cfg.precision!r} must be one of {', '.join(PRECISIONS)}"),
        (cfg.checkpoint_every >= 0, "--checkpoint-every", f"must be >= 0, got {cfg.checkpoint_every}"),
        (cfg.eval_every >= 1, "--eval-every", f"must be at least 1, got {cfg.eval_every}"),
        (cfg.limit_train_batches >= 0, "--limit-train-batches", f"must be >= 0, got {cfg.limit_train_batches}"),
    ]
    for ok, option, problem in checks:
        if not ok:
            raise GdasError(f"{option}: {problem}")


# -------------------------------------------------------------------------------------------- runtime


@dataclass
class Runtime:
    """Device, ranks and precision of this process, and the helpers a task's step uses."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    precision: str = "fp32"  # resolved: fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    seed: int = 0
    scaler: Any = None  # torch.amp.GradScaler for fp16
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward pass (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def prepare_model(
        self,
        model: nn.Module,
        *,
        ddp: bool = True,
        compile: bool | None = None,
        find_unused_parameters: bool = False,
    ) -> nn.Module:
        """Move to the device (channels_last if asked), convert BN to SyncBN, wrap in DDP, compile.

        Returns the module to call in train steps; keep the unwrapped `model` for saving and eval.
        `find_unused_parameters`: for models whose forward uses only some parameters (a GDAS supernet).
        """
        model.to(self.device)
        model.to(memory_format=self.memory_format)
        if self.sync_bn and self.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        wrapped: nn.Module = model
        if ddp and self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=find_unused_parameters
            )
        if self.compile if compile is None else compile:
            # torch.compile gives a module an OptimizedModule (its stub only says a callable)
            wrapped = cast(nn.Module, torch.compile(wrapped))
        return wrapped

    def backward_step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Any = None,
        max_norm: float = 0.0,
    ) -> None:
        """Backward (scaled in fp16), optional gradient clipping, optimizer step, then zero its gradients."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        if max_norm and max_norm > 0:
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)
            params = parameters if parameters is not None else [p for g in optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, max_norm)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def all_reduce_sum(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum each tensor over ranks (one collective for all of them); identity on one process."""
        if not self.distributed or not values:
            return values
        keys = sorted(values)
        flat = torch.stack([values[k].detach().to(self._comm_device(), torch.float64).reshape(()) for k in keys])
        dist.all_reduce(flat)
        return {k: flat[i] for i, k in enumerate(keys)}

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (BN running statistics), e.g. before evaluating shards.

        DDP broadcasts them before each forward, but each rank's last training forward updates them
        with its own batch, so without this the ranks would evaluate slightly different networks.
        """
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer.data, src=0)

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any rank."""
        if not self.distributed:
            return flag
        t = torch.tensor([int(flag)], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if dist.is_initialized() and dist.get_backend() == "nccl" else torch.device("cpu")


def pick_device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise GdasError("--device cuda: no CUDA GPU is visible to this process")
    if local_rank >= torch.cuda.device_count():
        raise GdasError(f"LOCAL_RANK {local_rank}: only {torch.cuda.device_count()} GPU(s) visible")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`amp` becomes bf16 on GPUs that support it, fp16 on other GPUs and fp32 on CPU."""
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if precision == "amp":
        return "fp32" if device.type == "cpu" else ("bf16" if bf16_ok else "fp16")
    if precision == "bf16" and not bf16_ok:
        raise GdasError("--precision bf16: this GPU does not support bfloat16; use fp16 or amp")
    return precision


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's training randomness (drop-path masks, dropout); rank 0 matches one process."""
    return seed + 1 + 1_000_003 * rank


def setup_runtime(cfg: EngineConfig) -> Runtime:
    """Read torchrun's environment, pick the device, start the process group (NCCL on GPU, gloo on CPU); the
    rest is `local_runtime`'s."""
    validate_engine_config(cfg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.device, local_rank)
    if cfg.sync_bn and world > 1 and device.type != "cuda":
        raise GdasError("--sync-bn: SyncBatchNorm runs on GPUs only; drop --sync-bn for CPU runs")
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        options: dict[str, Any] = {"timeout": collective_timeout(), **_attempt_store(rank, world)}
        if device.type == "cuda":
            dist.init_process_group(backend, device_id=device, **options)
        else:
            dist.init_process_group(backend, **options)
        owns = True
    single = local_runtime(cfg, local_rank)
    return replace(single, rank=rank, world_size=world, local_rank=local_rank, owns_process_group=owns)


def local_runtime(cfg: EngineConfig, local_rank: int = 0) -> Runtime:
    """A one-process runtime (world size 1) on this process's device, even under torchrun: the device,
    precision and determinism of `setup_runtime`, no process group. `local_rank` picks the GPU
    (cuda:local_rank); on CPU it is ignored. A run given it (run_task's `runtime`) is an ordinary
    single-process run, as `--seeds` under torchrun runs each rank's seeds."""
    validate_engine_config(cfg)
    device = pick_device(cfg.device, local_rank)
    precision = resolve_precision(cfg.precision, device)
    if cfg.compile and not hasattr(torch, "compile"):
        raise GdasError("--compile: this torch has no torch.compile")
    _set_determinism(cfg.deterministic, device)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return Runtime(
        device=device,
        precision=precision,
        channels_last=cfg.channels_last,
        compile=cfg.compile,
        sync_bn=cfg.sync_bn,
        seed=cfg.seed,
        scaler=scaler,
    )


def start_process_group(backend: str = "gloo") -> None:
    """Join torchrun's group (its environment; a restarted group through the agent's store, as setup_runtime)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    dist.init_process_group(backend, timeout=collective_timeout(), **_attempt_store(rank, world))


# How long a rank waits in one collective (and for the group to form) before it gives up on the others.
COLLECTIVE_TIMEOUT_S = 600.0


def collective_timeout() -> timedelta:
    """COLLECTIVE_TIMEOUT_S, or GDAS_COLLECTIVE_TIMEOUT (seconds) when set: a lost rank is an error, not a hang."""
    given = os.environ.get("GDAS_COLLECTIVE_TIMEOUT")
    try:
        seconds = float(given) if given else COLLECTIVE_TIMEOUT_S
    except ValueError:
        raise GdasError(f"GDAS_COLLECTIVE_TIMEOUT={given!r}: seconds, a number > 0") from None
    if not 0 < seconds < 1e7:
        raise GdasError(f"GDAS_COLLECTIVE_TIMEOUT={given!r}: seconds, a number > 0")
    return timedelta(seconds=seconds)


def _attempt_store(rank: int, world: int) -> dict[str, Any]:
    """A restarted torchrun group: the agent's store with a prefix of the restart count. The group keeps the
    store, and without the prefix a new rank could read the address a dead rank of the last attempt left
    there (gloo: "connectFullMesh failed ... Connection refused"). A first attempt: env:// as usual."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or attempt in ("", "0"):
        return {}
    agent = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False, timeout=collective_timeout()
    )
    return {"store": dist.PrefixStore(f"gdas/attempt_{attempt}", agent), "rank": rank, "world_size": world}


def lost_peer_cause(err: BaseException) -> str:
    """The cause of a failed collective in a few words (gloo's messages: a source location, then advice)."""
    cause = str(err).splitlines()[0] if str(err) else type(err).__name__
    return cause.split("] ", 1)[-1].split(". ", 1)[0][:160]


def ignore_sigterm() -> None:
    """From here on this process is ending by itself: torchrun's SIGTERM to the survivors must not cut its line."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def lost_peer(err: BaseException) -> bool:
    """Whether a collective failed because another rank is gone (killed, crashed, unreachable or stuck)."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        word in text for word in ("gloo", "Gloo", "NCCL", "Connection reset", "Connection closed", "Broken pipe")
    )


def teardown_runtime(rt: Runtime) -> None:
    if rt.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def _set_determinism(deterministic: bool, device: torch.device) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:  # the call imports inductor: 1.4 s
        # warn_only: a few CUDA kernels (e.g. adaptive pooling backward) have no deterministic version
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic


# ------------------------------------------------------------------------------------------ protocols


class BatchSource(Protocol):
    """The batches of an epoch: deterministic in (seed, epoch), resumable from any batch index."""

    def __len__(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


class Task:
    """Base class of engine tasks: override the required methods (see the module docstring)."""

    kind: str = "run"
    best_metric: tuple[str, str] | None = None
    examples: str = "images"  # what train_step's "n" counts; names the record's throughput (images_per_s)
    # the shared run options (EngineConfig fields) this task cannot honour, each with why: refused when set
    refuses: Mapping[str, str] = {}

    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def setup(self, rt: Runtime) -> None:
        raise NotImplementedError

    def train_batches(self) -> BatchSource:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def train_step(self, batch: Any, rt: Runtime) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {}

    def evaluate(self, epoch: int, rt: Runtime) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def save_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def load_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def after_epoch(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        pass

    def run_record(self) -> dict[str, Any]:
        """What the run is (rundir.run_record), saved as config.json's `run`; the engine adds metrics.jsonl."""
        return run_record(self.kind, dataset=None, figures={})

    def epoch_views(self, run_dir: Path, history: list[dict[str, Any]]) -> dict[str, Any]:
        """What observers may show of the epoch of `history[-1]` beyond its record (rank 0, after after_epoch):
        a search's {"alphas": {role: tensor (edges, ops)}, "genotype": the cell derived from them}."""
        return {}


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
        say(_format_record(record, self.epochs))


def say(text: str) -> None:
    """A plain line on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False)


class RunInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the run at a safe point after saving a resumable checkpoint.

    `rank` says which process raised it, so that only rank 0 prints the message.
    """

    def __init__(self, message: str, rank: int = 0) -> None:
        super().__init__(message)
        self.rank = rank


# ------------------------------------------------------------------------------------------ RNG state


def capture_rng(device: torch.device) -> dict[str, Any]:
    """Every RNG a step may draw from, as weights_only-loadable values."""
    numpy_state = np.random.get_state()
    if isinstance(numpy_state, dict):  # only when the global RandomState's bit generator is not MT19937
        raise TypeError("numpy's global RandomState is not MT19937; its state cannot be captured")
    kind, keys, pos, has_gauss, gauss = numpy_state
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------------------------- signals


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


# ---------------------------------------------------------------------------------------- run folders


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
_OPTION_NAMES = {"C": "channels", "arch_betas": "arch-beta1/--arch-beta2"}  # config keys spelt otherwise


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


def resume_settings(
    run_dir: Path,
    kind: str,
    given: dict[str, Any],
    safe: frozenset[str] = frozenset(),
    network: str | None = None,
) -> tuple[dict[str, Any], EngineConfig]:
    """The saved task config and engine config of a run to resume, with the safe changes applied.

    `given` holds only the options the user typed, keyed by their config names. One that would
    change a saved setting is refused with one line naming it; `safe` (plus RESUME_SAFE) may change.
    `network` (cnn or rnn) tells the two kinds of search apart.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume=True)
    config = RunDir(run_dir).read_config()
    found = (config.get("kind"), config["task"].get("network", "cnn") if network else None)
    if found != (kind, network):
        label = " ".join(str(part) for part in reversed(found) if part)
        raise GdasError(f"--resume {run_dir}: a {label} run, not a {network + ' ' if network else ''}{kind} run")
    task, engine = dict(config["task"]), dict(config["engine"])
    allowed = RESUME_SAFE | safe
    extended = _extension(run_dir, given.get("epochs"), engine.get("epochs"))
    for key, value in given.items():
        if value is None or key in allowed or key == "run_dir" or (key == "epochs" and extended):
            continue
        saved = task.get(key, engine.get(key, _ABSENT))
        if saved is _ABSENT or not _same(value, saved):
            option = "--" + _OPTION_NAMES.get(key, key.replace("_", "-"))
            before = "unset" if saved is _ABSENT else _shown(saved)
            raise GdasError(
                f"--resume {run_dir}: {option}: {before} -> {_shown(value)} would change the saved "
                "config; a resumed run keeps its config (drop the option, or start a new run)"
            )
    task.update({k: v for k, v in given.items() if k in safe and v is not None and k in task})
    engine.update({k: v for k, v in given.items() if k in RESUME_SAFE and v is not None})
    engine["quiet"] = bool(given.get("quiet"))  # how this invocation shows itself, not a saved setting
    if extended:
        engine["epochs"] = given["epochs"]
        if "epochs" in task:
            task["epochs"] = given["epochs"]
    engine["run_dir"] = str(run_dir)
    return task, EngineConfig.from_dict(engine, str(RunDir(run_dir).config_file))


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


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def check_finite(config: Any) -> None:
    """Every float setting of a config dataclass is a finite number, in float32 too (the optimizers' type);
    inf, nan and 1e300 name their option."""
    for item in fields(config):
        value = getattr(config, item.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        floats = [v for v in values if isinstance(v, float)]
        option = "--" + _OPTION_NAMES.get(item.name, item.name.replace("_", "-"))
        if not all(math.isfinite(v) for v in floats):
            raise GdasError(f"{option}: {value} is not a finite number")
        if any(abs(v) > _FLOAT32_MAX for v in floats):
            raise GdasError(f"{option}: {value} is beyond float32's range (at most {_FLOAT32_MAX:.3g})")


def config_from_dict(cls: type, data: dict[str, Any], source: str, what: str = "configuration") -> Any:
    """Rebuild a task-config dataclass from config.json, ignoring keys it does not know."""
    check_fields(cls, data, source, what)
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as err:
        raise GdasError(f"{source}: bad {what} ({err})") from None


# --------------------------------------------------------------------------------------------- engine


class _Pace:
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
        """Evaluation and checkpoints between epochs are not step time."""
        self._last = None

    def per_step(self) -> float | None:
        return self.seconds / self.timed if self.timed else None

    def remaining(self, pos: _Position, total: int, epochs: int) -> float | None:
        per_step = self.per_step()
        if per_step is None:
            return None
        done_epochs = [r["seconds"] for r in pos.history if isinstance(r.get("seconds"), (int, float))]
        left_in_epoch = (total - pos.step) * per_step
        whole_epochs = epochs - pos.epoch - 1
        per_epoch = sum(done_epochs) / len(done_epochs) if done_epochs else total * per_step
        return left_in_epoch + whole_epochs * per_epoch

    def ready(self) -> bool:
        enough = self.seconds >= self.ESTIMATE_SECONDS or self.timed >= 2 * self.ESTIMATE_AFTER
        return not self.said and self.timed >= self.ESTIMATE_AFTER and enough


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
        self.pace = _Pace()
        shown: list[Observer] = [] if cfg.quiet else [EpochLines()]
        # only rank 0 observes: the records are the same on every rank, the files are written once
        self.observers: list[Observer] = [RecordsWriter(), *shown, *observers] if rt.is_main else []
        self._step_observers = [o for o in self.observers if o.steps]

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
        with self._progress(epoch, total, scalars) as advance:
            if pos.step < total:
                self.pace.tick()
                for batch in source.batches(epoch, pos.step):
                    out = task.train_step(batch, rt)
                    for key, value in out.items():
                        value = value.detach().to(torch.float64)
                        pos.sums[key] = pos.sums[key] + value if key in pos.sums else value
                    pos.step += 1
                    pos.global_step += 1
                    self.pace.tick()
                    advance(pos)
                    if self._step_observers and pos.step % LOG_EVERY == 0 and pos.step < total:
                        self._observe_step()
                    if self.pace.ready():
                        self._estimate(total)
                    if self._stop_requested(pos.global_step):
                        pos.train_seconds += time.perf_counter() - started
                        self._interrupt()
                    if (
                        self.cfg.checkpoint_every
                        and pos.global_step % self.cfg.checkpoint_every == 0
                        and pos.step < total
                    ):
                        pos.train_seconds += time.perf_counter() - started
                        self.save("last")
                        started = time.perf_counter()
                        self.pace.pause()
                        self.pace.tick()
                    if pos.step >= total:
                        break
        pos.train_seconds += time.perf_counter() - started
        self.pace.pause()
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

    def _estimate(self, total: int) -> None:
        """Once, after the first timed steps: how long the whole run will take at this pace."""
        self.pace.said = True
        remaining = self.pace.remaining(self.pos, total, self.cfg.epochs)
        per_step = self.pace.per_step()
        if remaining is None or per_step is None:
            return
        steps_left = (self.cfg.epochs - self.pos.epoch) * total - self.pos.step
        if steps_left < self.pace.ESTIMATE_AFTER:
            return
        self._say(
            f"estimate: about {format_duration(remaining)} to the end of epoch {self.cfg.epochs} "
            f"({per_step:.3g} s per step, {steps_left} steps left; evaluation not included)"
        )

    def say_resumed(self) -> None:
        """Where a resumed run continues."""
        pos, which = self.pos, self.run_files.checkpoint("last")
        where = f"epoch {pos.epoch + 1}, step {pos.step}" if pos.step else f"the start of epoch {pos.epoch + 1}"
        self._say(f"resuming {self.run_dir} from {which} at {where} of {self.cfg.epochs} epochs")

    def _say(self, text: str) -> None:
        if self.rt.is_main and not self.cfg.quiet:
            say(text)

    @contextlib.contextmanager
    def _progress(self, epoch: int, total: int, scalars: dict[str, Any] | None = None) -> Iterator[Any]:
        """A transient rich bar on rank 0 (none with --quiet); the running loss and top-1 refresh every
        10 steps; the epoch's scalars from start_epoch (lr, tau) are shown beside them."""
        if self.cfg.quiet or not self.rt.is_main:
            yield lambda pos: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        columns = (
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
            bar = progress.add_task(
                "train", total=total, completed=self.pos.step, epoch=f"{epoch + 1}/{self.cfg.epochs}", info=""
            )
            fixed = "  ".join(f"{k} {v:.4g}" for k, v in (scalars or {}).items() if isinstance(v, (int, float)))

            def advance(pos: _Position) -> None:
                info = None
                if pos.step % LOG_EVERY == 0 and "loss" in pos.sums and "n" in pos.sums:
                    info = f"loss {(pos.sums['loss'] / pos.sums['n']).item():.4f}"
                    if "top1" in pos.sums:
                        info += f"  top1 {(pos.sums['top1'] / pos.sums['n']).item():.3f}"
                    remaining = self.pace.remaining(pos, total, self.cfg.epochs)
                    run_left = f"run ~{format_duration(remaining)} left" if remaining is not None else ""
                    info = f"{info}  {fixed}  {run_left}".strip()
                if info:
                    progress.update(bar, completed=pos.step, info=info)
                else:
                    progress.update(bar, completed=pos.step)

            yield advance


def _running_means(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """train_<key>: this epoch's mean so far of each summed value (one host sync)."""
    if "n" not in sums:
        return {}
    values = torch.stack([v.reshape(()) for v in sums.values()]).tolist()
    named = dict(zip(sums, values, strict=True))
    n = named.pop("n")
    return {f"train_{k}": v / n for k, v in named.items()} if n else {}


def _format_record(record: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}"]
    for key, value in record.items():
        if key in ("epoch", "step") or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


# -------------------------------------------------------------------------------------------- entry


def _run(
    task: Task,
    cfg: EngineConfig,
    rt: Runtime,
    resume: bool,
    on_start: Callable[[], None] | None,
    observers: Sequence[Observer],
) -> dict[str, Any]:
    run_dir = _agree_run_dir(cfg, rt)
    check_run_dir(run_dir, resume)
    rt.barrier()  # every rank has checked the folder before rank 0 locks and fills it
    seed_all(cfg.seed)  # the same initial weights on every rank and in a one-process run
    task.setup(rt)  # bad data fails here, before the run folder is made
    lock = _take_run_dir(run_dir, resume) if rt.is_main else None
    try:
        rt.barrier()
        seed_all(rank_seed(cfg.seed, rt.rank))
        engine = Engine(task, cfg, rt, run_dir, observers)
        if resume:
            engine.restore()
            if rt.is_main:
                _record_changes(RunDir(run_dir), task, cfg, engine.pos.epoch)
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


def _record_changes(run: RunDir, task: Task, cfg: EngineConfig, at_epoch: int) -> None:
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


RUN_OPTION_FLAGS = {"channels_last": "--channels-last", "compile": "--compile", "sync_bn": "--sync-bn"}


def check_run_options(cfg: EngineConfig, refuses: Mapping[str, str]) -> None:
    """Refuse a shared run option the task would not use (never accepted and then ignored), and --sync-bn
    without DDP, where SyncBatchNorm is plain BatchNorm."""
    for name, flag in RUN_OPTION_FLAGS.items():
        if getattr(cfg, name) and name in refuses:
            raise GdasError(f"{flag}: {refuses[name]}")
    if cfg.sync_bn and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        raise GdasError("--sync-bn: SyncBatchNorm shares BN statistics across DDP processes; this run has one process")


def run_task(
    task: Task,
    cfg: EngineConfig,
    *,
    resume: bool = False,
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
    if not resume:  # a resumed run keeps its saved settings, which older versions accepted
        check_run_options(cfg, task.refuses)
    if cfg.tensorboard:
        from .tensorboard import TensorBoardObserver, check_tensorboard

        check_tensorboard()
        observers = [TensorBoardObserver(), *observers]
    rt = setup_runtime(cfg) if runtime is None else runtime
    try:
        with quiet_progress(cfg.quiet or not rt.is_main):  # data preparation and evaluation bars too
            return _run(task, cfg, rt, resume, on_start, observers)
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


def _take_run_dir(run_dir: Path, resume: bool) -> RunLock:
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
