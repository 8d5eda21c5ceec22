"""Shared by the search tests: a tiny real search on the built-in digits set, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from gdas_cli.cli import app
from cli_helpers import assert_one_line_error  # noqa: F401  (re-exported to the search tests)

runner = CliRunner()

# 5 cells (N=1), C=8 (the FRC needs C % 8 == 0), 8x8 inputs, 3 steps per epoch: about a second per epoch.
TINY = ["--dataset", "digits", "-C", "8", "-N", "1", "--image-size", "8", "--batch-size", "32",
        "--limit-train-batches", "3", "--epochs", "2"]


# the provenance keys every searched genotype has, CNN or RNN, any space
PROVENANCE_KEYS = {"source", "run", "space", "dataset", "sampling", "seed", "epoch", "epochs", "tau", "alphas_sha256",
                   "gdas_version", "movement"}


def gdas(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def search(run_dir: Path, *extra: str):
    return gdas("search", "cnn", *TINY, "--quiet", "--run-dir", run_dir, *extra)




def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, to show a failed command changed nothing."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def start_search(run_dir: Path, *args: str) -> subprocess.Popen:
    """`gdas search cnn *args --quiet --run-dir run_dir` in a process of its own (to kill it)."""
    code = "import sys; from gdas_cli.cli import main; sys.argv = ['gdas'] + sys.argv[1:]; main()"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", code, "search", "cnn", *args, "--quiet", "--run-dir", str(run_dir)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_mid_epoch(run_dir: Path, process: subprocess.Popen, min_step: int = 2) -> dict:
    """Block until the run has checkpointed `min_step` steps into its first epoch."""
    progress_file = run_dir / "checkpoint" / "last" / "progress.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            progress = json.loads(progress_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            progress = None
        if progress and progress["epoch"] == 0 and progress["step"] >= min_step:
            return progress
        time.sleep(0.005)
    raise AssertionError("the search never reached the middle of its first epoch")


def final_state(run_dir: Path) -> tuple[dict, str, list[dict]]:
    alphas = read_lines(run_dir / "alphas.jsonl")
    genotype = json.loads((run_dir / "genotype.json").read_text())
    genotype["provenance"].pop("run")
    metrics = [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")}
               for m in read_lines(run_dir / "metrics.jsonl")]
    return alphas[-1]["alphas"], json.dumps(genotype, sort_keys=True), metrics


def resume(run_dir: Path) -> None:
    result = gdas("search", "cnn", "--resume", run_dir, "--quiet")
    assert result.exit_code == 0, result.output
