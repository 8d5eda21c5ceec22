"""Time one GDAS search step (W step + A step) per sampling granularity against DARTS mode; print JSON.

Memory is measured two ways:
- `saved_activation_mb`: bytes of the distinct tensors autograd saves for backward during the W-step
  forward (torch.autograd.graph.saved_tensors_hooks; parameters excluded). This is the activation
  memory a step holds at its peak, and it is exact and device-independent.
- `peak_allocated_mb` (CUDA only): torch.cuda.max_memory_allocated over a step, minus what was
  allocated before it.

    python benchmarks/search_step.py --threads 1 --batch 16 --steps 3
    python benchmarks/search_step.py --device cuda --amp
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from gdas_cli.search import build_search_network
from gdas_cli.engine import Runtime
from gdas_cli.search.step import frozen, search_step

MODES = ("cell", "batch", "sample", "darts")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--channels", "-C", type=int, default=16)
    parser.add_argument("--cells-per-stage", "-N", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--frc", action="store_true")
    parser.add_argument("--amp", action="store_true", help="CUDA: also time each mode under bf16 autocast")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class SavedActivations:
    """Counts the distinct storages autograd saves for backward, parameters excluded."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.sizes: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.params:
            self.sizes[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def megabytes(self) -> float:
        return sum(self.sizes.values()) / 2**20


def make_batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    return images, torch.randint(0, 10, (args.batch,), device=device)


def one_step(model, w_opt, a_opt, train, valid, rt: Runtime) -> None:
    search_step(model, model, w_opt, a_opt, train, valid, rt, grad_clip=5.0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace, mode: str, device: torch.device, amp: bool) -> dict:
    torch.manual_seed(args.seed)
    model = build_search_network(args.channels, args.cells_per_stage, 10, frc=args.frc, sampling=mode).to(device)
    model.set_tau(10.0)
    w_opt = torch.optim.SGD(model.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    rt = Runtime(device=device, precision="bf16" if amp else "fp32")
    train, valid = make_batch(args, device), make_batch(args, device)
    for _ in range(args.warmup):
        one_step(model, w_opt, a_opt, train, valid, rt)
    times = []
    for _ in range(args.steps):
        sync(device)
        start = time.perf_counter()
        one_step(model, w_opt, a_opt, train, valid, rt)
        sync(device)
        times.append(time.perf_counter() - start)
    result = {"median_s": round(statistics.median(times), 4), "times_s": [round(t, 4) for t in times]}
    meter = SavedActivations(model)
    with frozen(model.alphas()), torch.autograd.graph.saved_tensors_hooks(meter.pack, lambda t: t):
        with rt.autocast():
            loss = torch.nn.functional.cross_entropy(model(train[0]), train[1])
    del loss
    result["saved_activation_mb"] = round(meter.megabytes, 2)
    if device.type == "cuda":
        w_opt.zero_grad(set_to_none=True)
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        one_step(model, w_opt, a_opt, train, valid, rt)
        sync(device)
        result["peak_allocated_mb"] = round((torch.cuda.max_memory_allocated(device) - before) / 2**20, 2)
    return result


def ratios(results: dict[str, dict], suffix: str) -> dict:
    darts = results.get("darts" + suffix)
    if darts is None:
        return {}
    out = {}
    for mode in ("cell", "batch", "sample"):
        gdas = results.get(mode + suffix)
        if gdas is not None:
            out[mode + suffix] = {
                "speedup": round(darts["median_s"] / gdas["median_s"], 2),
                "activation_ratio": round(darts["saved_activation_mb"] / gdas["saved_activation_mb"], 2),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, dict] = {}
    for amp in [False, True] if (args.amp and device.type == "cuda") else [False]:
        for mode in modes:
            results[mode + ("+amp" if amp else "")] = measure(args, mode, device, amp)
            print(f"{mode}{' amp' if amp else ''}: {results[mode + ('+amp' if amp else '')]}", file=sys.stderr)
    report = {
        "benchmark": "search_step",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": args.threads,
        "config": {"C": args.channels, "N": args.cells_per_stage, "frc": args.frc, "batch": args.batch,
                   "size": args.size, "steps": args.steps, "warmup": args.warmup},
        "memory_method": "bytes of distinct tensors autograd saves for backward in the W-step forward (parameters excluded; saved_tensors_hooks)",
        "results": results,
        "darts_vs_gdas": {**ratios(results, ""), **ratios(results, "+amp")},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
