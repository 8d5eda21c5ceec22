"""Images/s of the CIFAR final-training step (`TrainTask.train_step` with the on-device data path); print JSON.

Each combination of precision x channels_last x torch.compile runs the exact step `gdas train cifar10`
runs: batch assembly on the device (crop, flip, cutout as tensor ops), forward with the auxiliary
head and drop-path, backward, clipping, SGD. Defaults are the paper's network (C=36, 20 cells, batch
96); on a CPU use small sizes:

    python benchmarks/train_throughput.py --threads 1 -C 8 --layers 5 --batch 16 --steps 3
    python benchmarks/train_throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time

import torch

from gdas_cli.data import CIFAR_MEAN, CIFAR_STD, Augment, ImageData, TensorImages
from gdas_cli.engine import Runtime, resolve_precision
from gdas_cli.genotype import load_local_genotype as load_genotype
from gdas_cli.training.image import TrainTask, make_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--genotype", default="gdas_frc")
    parser.add_argument("-C", "--channels", type=int, default=36)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--images", type=int, default=0, help="synthetic training images held on the device "
                        "(default: 50,000 on a GPU, 8 batches on a CPU)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per combination (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, cudnn autotune)")
    parser.add_argument("--precisions", default="fp32,amp" if cuda else "fp32,bf16",
                        help="comma list of fp32, bf16, fp16, amp")
    parser.add_argument("--channels-last", default="off,on", help="comma list of off, on")
    parser.add_argument("--compile", default="off,on" if cuda else "off", help="comma list of off, on")
    parser.add_argument("--data", default="device", help="comma list of device (uint8 images cropped, flipped and "
                        "cut out on the device every step, as gdas train does) and synthetic (one ready batch "
                        "reused: the step without its data path)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if set(args.data.split(",")) - {"device", "synthetic"}:
        parser.error(f"--data {args.data}: a comma list of device and synthetic")
    return args


def synthetic_cifar(n: int, seed: int) -> ImageData:
    """Random CIFAR-shaped uint8 images: the step's cost does not depend on what the pixels show."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (n,), generator=g)
    split = TensorImages(images, labels)
    return ImageData("synthetic-cifar10", 10, 32, "cifar", CIFAR_MEAN, CIFAR_STD, split, split,
                     augment=Augment(4, True, 16))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_combination(args: argparse.Namespace, data: ImageData, precision: str, channels_last: bool,
                     compiled: bool, source: str = "device") -> dict:
    device = torch.device(args.device)
    resolved = resolve_precision(precision, device)
    torch.manual_seed(args.seed)
    cfg = make_config("cifar10", load_genotype(args.genotype),
                      {"C": args.channels, "layers": args.layers, "batch_size": args.batch, "workers": 0})
    scaler = torch.amp.GradScaler(device.type) if resolved == "fp16" else None
    rt = Runtime(device=device, precision=resolved, channels_last=channels_last, compile=compiled, seed=args.seed,
                 scaler=scaler)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    task = TrainTask(cfg, data)
    task.setup(rt)
    task.start_epoch(cfg.epochs // 2)  # drop-path on, as in the middle of training
    batches = itertools.cycle(task.train_source.batches(0))  # the device data path is part of the step
    if source == "synthetic":
        batches = itertools.repeat(next(batches))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(args.warmup):
        task.train_step(next(batches), rt)
    sync(device)
    warmup_s = time.perf_counter() - started
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        out = task.train_step(next(batches), rt)
        out["loss"].item()  # wait for the step, as the engine's epoch end does
        sync(device)
        times.append(time.perf_counter() - start)
    step = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"precision": resolved, "requested": precision, "channels_last": channels_last, "compile": compiled,
            "data": source, "step_ms": round(step * 1000, 2), "images_per_s": round(args.batch / step, 1),
            "warmup_s": round(warmup_s, 2), "peak_memory_mib": None if peak is None else round(peak, 1)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = args.images or (50_000 if device.type == "cuda" else 8 * args.batch)
    data = synthetic_cifar(images, args.seed)
    results = []
    for precision in args.precisions.split(","):
        for cl in args.channels_last.split(","):
            for comp in args.compile.split(","):
                for source in args.data.split(","):
                    results.append(time_combination(args, data, precision, cl == "on", comp == "on", source))
    base = next((r["images_per_s"] for r in results if r["requested"] == "fp32" and not r["channels_last"]
                 and not r["compile"] and r["data"] == "device"), None)
    for r in results:
        r["speedup_vs_fp32"] = round(r["images_per_s"] / base, 2) if base else None
    print(json.dumps({
        "benchmark": "train_throughput", "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(), "torch": torch.__version__, "python": sys.version.split()[0],
        "threads": args.threads, "genotype": args.genotype, "C": args.channels, "layers": args.layers,
        "batch": args.batch, "images_on_device": images, "steps": args.steps, "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
