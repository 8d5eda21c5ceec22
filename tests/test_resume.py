"""Final training killed at any moment resumes to the same weights as an uninterrupted run (CPU, same seed).

A real `gdas train` subprocess is SIGKILLed mid-epoch (after a step checkpoint) or Ctrl-C'd, then resumed
with `--resume`; the final weights must equal those of an uninterrupted run bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gdas_cli.cli import app

runner = CliRunner()
# 2 epochs x 8 steps of a tiny network on digits, drop-path on (so RNG state matters), a checkpoint every 3 steps
ARGS = ["train", "digits", "-g", "gdas", "-C", "4", "--layers", "3", "--epochs", "2", "--batch-size", "32",
        "--limit-train-batches", "8", "--limit-eval-batches", "1", "--drop-path", "0.3", "--cutout", "8",
        "--checkpoint-every", "3", "--seed", "11", "--device", "cpu", "--quiet"]
GDAS = [sys.executable, "-c", "from gdas_cli.cli import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # same thread count as this process: same float results


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoint" / "last" / "model.safetensors"))


def records(run_dir: Path) -> list[dict]:
    skip = ("seconds", "images_per_s")
    return [{k: v for k, v in json.loads(line).items() if k not in skip}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def progress(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "checkpoint" / "last" / "progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def start_and_stop(run_dir: Path, sig: int) -> subprocess.CompletedProcess:
    """Start training in a subprocess; once a mid-epoch checkpoint exists, send `sig`."""
    proc = subprocess.Popen([*GDAS, *ARGS, "--run-dir", str(run_dir)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = progress(run_dir)
        if state and state["step"] > 0:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.005)
    assert proc.poll() is None, "training finished before it could be stopped"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def resume(run_dir: Path) -> None:
    result = runner.invoke(app, ["train", "digits", "--resume", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("resume") / "uninterrupted"
    result = runner.invoke(app, [*ARGS, "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def assert_same_run(a: Path, b: Path) -> None:
    assert records(a) == records(b)
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(uninterrupted, tmp_path):
    run_dir = tmp_path / "killed"
    killed = start_and_stop(run_dir, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    state = progress(run_dir)
    assert state is not None and not state["finished"]
    resume(run_dir)
    assert_same_run(uninterrupted, run_dir)


def test_ctrl_c_exits_130_with_the_resume_command_then_resumes_exactly(uninterrupted, tmp_path):
    run_dir = tmp_path / "interrupted"
    stopped = start_and_stop(run_dir, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stopped.stderr, stopped.stderr
    assert lines[0].startswith("interrupted") and f"gdas train digits --resume {run_dir}" in lines[0]
    assert progress(run_dir)["step"] > 0 or progress(run_dir)["epoch"] > 0
    resume(run_dir)
    assert_same_run(uninterrupted, run_dir)
