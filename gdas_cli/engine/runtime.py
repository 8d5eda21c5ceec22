"""Where and how this process runs: device, precision, ranks and process group (torchrun's, or none), the
collectives a task's step uses, seeding and the RNG states a checkpoint captures."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import GdasError
from .config import EngineConfig, validate_engine_config


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
