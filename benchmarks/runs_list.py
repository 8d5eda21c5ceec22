"""Time `gdas runs list` on a folder of 200 run folders; print JSON.

The folders are written as the engine writes them (config.json with its run record, metrics.jsonl,
checkpoint/last with progress.json and a weights file, genotype.json for searches), in four kinds and
four states: CNN searches of 50 epochs, trainings of 100 epochs with a validation split, RNN searches,
and a --seeds parent of 2 seeds; finished, interrupted (a checkpoint, epochs left), running (a live
lock: this process's parent shell) and empty. Every weights file is a sparse 64 MiB file: reading one
would show in the time. Each command runs in a fresh interpreter `--repeat` times; the median wall
time is reported, with whether the process imported torch.

    python benchmarks/runs_list.py
    python benchmarks/runs_list.py --runs 500 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gdas_cli.rundir import run_record  # noqa: E402  (torch-free)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import RUNNER  # noqa: E402  (a gdas command that reports whether it imported torch)

WEIGHTS_BYTES = 64 * 1024 * 1024

SEARCH_FIGURES = {
    "train": {"loss": "train_loss", "top1": "train_top1"},
    "valid": {"loss": "train_arch_loss", "top1": "train_arch_top1"},
}
TRAIN_FIGURES = {
    "train": {"loss": "train_loss", "top1": "train_top1"},
    "valid": {"loss": "valid_loss", "top1": "valid_top1"},
    "test": {"loss": "test_loss", "top1": "test_top1"},
}
RNN_FIGURES = {"train": {"loss": "train_loss"}, "valid": {"loss": "valid_loss", "ppl": "valid_ppl"}}


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _config(index: int, record: dict, epochs: int, selection: dict) -> dict:
    task = {f"setting_{k}": k * 0.5 for k in range(60)}  # a task config of about the real size
    task["sources"] = {f"setting_{k}": "rule" for k in range(60)}
    return {
        "kind": record["command"].split()[1],
        "run": record,
        "gdas_version": "0.1.0",
        "created": f"2026-01-01T{index // 3600:02d}:{index // 60 % 60:02d}:{index % 60:02d}",
        "engine": {"epochs": epochs, "run_dir": "", "resume_hint": "gdas search cnn --resume {run_dir}"},
        "task": task,
        "selection": selection,
    }


def _metrics(epochs: int, done: int, keys: dict) -> str:
    lines = []
    for epoch in range(1, done + 1):
        record = {"epoch": epoch, "step": epoch * 100, "lr": 0.025, "seconds": 12.5, "images_per_s": 800.0}
        for metrics in keys.values():
            for metric, key in metrics.items():
                record[key] = (50 + epoch * 40 / epochs) if metric == "top1" else (2.0 - epoch / epochs)
        lines.append(json.dumps(record))
    return "".join(line + "\n" for line in lines)


def make_run(folder: Path, index: int, kind: str, state: str) -> None:
    epochs = {"search": 50, "train": 100, "rnn": 30}[kind]
    figures = {"search": SEARCH_FIGURES, "train": TRAIN_FIGURES, "rnn": RNN_FIGURES}[kind]
    command = {"search": "gdas search cnn", "train": "gdas train", "rnn": "gdas search rnn"}[kind]
    result = None if kind == "train" else "genotype.json"
    record = run_record(command, dataset="cifar10", space="darts", figures=figures, result=result,
                        records={"metrics": "metrics.jsonl"})
    by = {"search": None, "train": "valid_top1", "rnn": "valid_loss"}[kind]
    mode = {"search": None, "train": "max", "rnn": "min"}[kind]
    _write(folder / "config.json", _config(index, record, epochs, {"checkpoint": "best" if by else "last", "by": by,
                                                                   "mode": mode}))
    if state == "empty":
        return
    done = epochs if state == "finished" else epochs // 2
    (folder / "metrics.jsonl").write_text(_metrics(epochs, done, figures), encoding="utf-8")
    last = folder / "checkpoint" / "last"
    _write(last / "progress.json", {"epoch": done, "step": 0, "epochs": epochs, "finished": done == epochs})
    with open(last / "model.safetensors", "wb") as handle:
        handle.truncate(WEIGHTS_BYTES)  # sparse: no disk used, but reading it would take time
    if state == "running":
        (folder / ".lock").write_text(f"{os.getppid()}\n", encoding="ascii")
    if state == "finished" and result:
        genotype = {"schema": "gdas-genotype", "name": "searched", "provenance": {
            "param_free": {"normal": {"share": 0.25, "edges": 8, "ops": {"skip_connect": 2}}}}}
        _write(folder / result, genotype)


def make_runs(root: Path, count: int) -> None:
    kinds = ["search", "search", "train", "rnn"]
    states = ["finished", "finished", "interrupted", "running", "empty"]
    for index in range(count):
        kind, state = kinds[index % len(kinds)], states[index % len(states)]
        make_run(root / f"{kind}-{index:04d}", index, kind, state)


def time_command(args: list[str]) -> tuple[float, float, bool, str]:
    """Wall and CPU seconds (user + system: it does not grow when other processes share the cores) of one
    fresh `gdas ARGS`, whether it imported torch, and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"gdas {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, cpu, "TORCH_IMPORTED=True" in done.stderr, done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="run folders to create")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median reported)")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gdas-runs-bench-") as tmp:
        root = Path(tmp) / "runs"
        make_runs(root, opts.runs)
        results = {}
        for name, args in {"list_json": ["runs", "list", str(root), "--json"],
                           "list_table": ["runs", "list", str(root)]}.items():
            timed = [time_command(args) for _ in range(opts.repeat)]
            results[name] = {
                "median_s": round(statistics.median(t[0] for t in timed), 3),
                "min_s": round(min(t[0] for t in timed), 3),
                "median_cpu_s": round(statistics.median(t[1] for t in timed), 3),
                "imported_torch": any(t[2] for t in timed),
            }
        listed = json.loads(time_command(["runs", "list", str(root), "--json"])[3])
    states = {s: sum(row["state"] == s for row in listed) for s in ("finished", "interrupted", "running", "empty")}
    print(json.dumps({
        "benchmark": "gdas runs list",
        "runs": opts.runs,
        "listed": len(listed),
        "states": states,
        "weights_file_bytes": WEIGHTS_BYTES,
        "repeat": opts.repeat,
        "results": results,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
