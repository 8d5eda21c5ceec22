"""Everything a lent GPU should tell us, in one call; print one JSON object.

Runs, on `--device` (default cuda when available), each as its own process with a time limit:
- `search_step.py`: the project's search step against its one-path limit, activation memory included;
- `xautodl_step.py`: the project's step against xautodl 1.0.0's `NASNetworkGDAS` step (when installed);
- `nb201_step.py`: the NAS-Bench-201 step against xautodl's `TinyNetworkGDAS` and its one-path limit;
- `train_throughput.py`: the final-network training step in fp32, bf16, fp16, channels-last and
  torch.compile, fed by the on-device uint8 data path (crop, flip, cutout on the device) and by one
  ready batch (`synthetic`), with peak memory;
- `gdas search cnn` and `gdas train` for one epoch on the built-in digits, timed end to end.

`benchmarks/device_check.sh` installs the project first. The CPU dry run (`--device cpu --small`)
runs every part at toy sizes, so CI notices when a part breaks; `--strict` exits 1 when any part
failed (on a GPU the other parts' numbers are still printed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--small", action="store_true", help="toy sizes (the CPU dry run)")
    parser.add_argument("--part-timeout", type=float, default=150.0, help="seconds each part may take")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a part failed")
    parser.add_argument("--json", type=Path, default=None, help="also write the report to this file")
    return parser.parse_args(argv)


def parts(device: str, small: bool) -> dict[str, list[str]]:
    """Each part's command (a benchmark script's arguments or a gdas command), sized for the device."""
    threads = ["--threads", "1"]
    if small:
        step = ["-C", "4", "-N", "1", "--batch", "8", "--size", "16", "--rounds", "2", "--warmup", "1"]
        train = ["-C", "4", "--layers", "3", "--batch", "8", "--steps", "2", "--warmup", "1",
                 "--precisions", "fp32,bf16", "--channels-last", "off,on", "--compile", "off"]
        tiny = ["-C", "4", "--limit-train-batches", "3"]
    else:
        step = ["-C", "16", "-N", "2", "--batch", "64", "--size", "32", "--rounds", "9", "--warmup", "2"]
        train = ["--steps", "20", "--warmup", "5", "--precisions", "fp32,bf16,fp16",
                 "--channels-last", "off,on", "--compile", "off,on"]
        tiny = []
    bench = [sys.executable]
    return {
        "search_step": [*bench, str(HERE / "search_step.py"), "--device", device, *threads, *step,
                        "--modes", "batch,cell", "--layouts", "xautodl", "--memory"],
        "xautodl_step": [*bench, str(HERE / "xautodl_step.py"), "--device", device, *threads, *step],
        "nb201_step": [*bench, str(HERE / "nb201_step.py"), "--device", device, *threads, *step],
        "train_throughput": [*bench, str(HERE / "train_throughput.py"), "--device", device, *threads, *train,
                             "--data", "device,synthetic"],
        "digits_search": ["search", "cnn", "--dataset", "digits", "--epochs", "1", "--device", device, *tiny],
        "digits_train": ["train", "digits", "-g", "gdas", "--epochs", "1", "--device", device,
                         *(["--layers", "3", "--limit-train-batches", "3"] if small else []),
                         *(tiny[:2] if small else [])],
    }


def _run(command: list[str], timeout: float) -> tuple[subprocess.CompletedProcess | None, dict[str, Any]]:
    """Run a part's process: what it printed, or None and the error; its wall time either way."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, {"error": f"no answer within {timeout:.0f} s"}
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        last_line = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return None, {"error": last_line, "seconds": seconds}
    return done, {"seconds": seconds}


def run_script(command: list[str], timeout: float) -> dict[str, Any]:
    """A benchmark script's JSON report, or what went wrong."""
    done, report = _run(command, timeout)
    if done is None:
        return report
    try:
        return {**report, **json.loads(done.stdout)}
    except json.JSONDecodeError:
        return {**report, "error": "the script printed no JSON"}


def run_gdas(args: list[str], timeout: float) -> dict[str, Any]:
    """One `gdas` command, timed end to end (process start and data loading included), and its last record."""
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(scratch) / "run"
        done, report = _run([sys.executable, "-m", "gdas_cli", *args, "--run-dir", str(run_dir), "--quiet"], timeout)
        if done is None:
            return report
        records = (run_dir / "metrics.jsonl").read_text().splitlines()
        config = json.loads((run_dir / "config.json").read_text())
        return {**report, "device": config["device"], "last": json.loads(records[-1])}


def environment(device: str) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"device": device, "torch": torch.__version__, "python": sys.version.split()[0],
                             "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if device == "cuda":
        facts.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                     memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                     bf16=torch.cuda.is_bf16_supported())
    return facts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"benchmark": "device_check", "small": args.small, **environment(device)}
    started = time.perf_counter()
    for name, command in parts(device, args.small).items():
        print(f"device_check: {name} ...", file=sys.stderr, flush=True)
        if command[0] == sys.executable:
            report[name] = run_script(command, args.part_timeout)
        else:
            report[name] = run_gdas(command, args.part_timeout)
    report["seconds"] = round(time.perf_counter() - started, 1)
    failed = [name for name, part in report.items() if isinstance(part, dict) and "error" in part]
    report["failed"] = failed
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
