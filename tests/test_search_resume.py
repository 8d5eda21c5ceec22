"""Killing a search (SIGKILL mid-epoch, or Ctrl-C) and resuming it ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from search_helpers import TINY, gdas, read_lines, search

# Slower steps than TINY (16x16, 6 steps per epoch) so a kill reliably lands mid-epoch.
ARGS = [*TINY, "--image-size", "16", "--limit-train-batches", "6", "--checkpoint-every", "1", "--frc"]


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    code = "import sys; from gdas_cli.cli import main; sys.argv = ['gdas'] + sys.argv[1:]; main()"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", code, "search", "cnn", *ARGS, "--quiet", "--run-dir", str(run_dir), *extra]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_mid_epoch(run_dir: Path, process: subprocess.Popen, min_step: int = 2) -> dict:
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


def _final(run_dir: Path) -> tuple[dict, str, list[dict]]:
    alphas = read_lines(run_dir / "alphas.jsonl")
    genotype = json.loads((run_dir / "genotype.json").read_text())
    genotype["provenance"].pop("run")
    metrics = [{k: v for k, v in m.items() if k not in ("seconds", "images_per_s")}
               for m in read_lines(run_dir / "metrics.jsonl")]
    return alphas[-1]["alphas"], json.dumps(genotype, sort_keys=True), metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, list[dict]]:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    process = _start(run_dir)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return _final(run_dir)


def _resume(run_dir: Path) -> None:
    result = gdas("search", "cnn", "--resume", run_dir, "--quiet")
    assert result.exit_code == 0, result.output


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path, reference) -> None:
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    _wait_mid_epoch(run_dir, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "genotype.json").exists()
    _resume(run_dir)
    alphas, genotype, metrics = _final(run_dir)
    ref_alphas, ref_genotype, ref_metrics = reference
    assert alphas == ref_alphas  # bit-identical float32 alphas after the last epoch
    assert genotype == ref_genotype  # same cells and provenance, alphas hash included
    assert metrics == ref_metrics  # same losses, accuracies, lr and tau per epoch


def test_ctrl_c_leaves_a_resumable_run(tmp_path: Path, reference) -> None:
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    _wait_mid_epoch(run_dir, process, min_step=1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and f"--resume {run_dir}" in err and "Traceback" not in err
    assert (run_dir / "checkpoint" / "last" / "state.pt").is_file()
    _resume(run_dir)
    assert _final(run_dir) == reference


def test_resuming_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert search(run_dir, "--epochs", "1").exit_code == 0
    before = (run_dir / "genotype.json").read_text()
    _resume(run_dir)
    assert (run_dir / "genotype.json").read_text() == before
    assert len(read_lines(run_dir / "metrics.jsonl")) == 1
