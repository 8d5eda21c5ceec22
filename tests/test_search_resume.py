"""Killing a search (SIGKILL mid-epoch, or Ctrl-C) and resuming it ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from search_helpers import TINY, final_state, read_lines, resume, search, start_search, wait_mid_epoch

# Slower steps than TINY (16x16, 6 steps per epoch) so a kill reliably lands mid-epoch.
ARGS = [*TINY, "--image-size", "16", "--limit-train-batches", "6", "--checkpoint-every", "1", "--frc"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, list[dict]]:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    process = start_search(run_dir, *ARGS)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return final_state(run_dir)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path, reference) -> None:
    run_dir = tmp_path / "run"
    process = start_search(run_dir, *ARGS)
    wait_mid_epoch(run_dir, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "genotype.json").exists()
    resume(run_dir)
    alphas, genotype, metrics = final_state(run_dir)
    ref_alphas, ref_genotype, ref_metrics = reference
    assert alphas == ref_alphas  # bit-identical float32 alphas after the last epoch
    assert genotype == ref_genotype  # same cells and provenance, alphas hash included
    assert metrics == ref_metrics  # same losses, accuracies, lr and tau per epoch


def test_ctrl_c_leaves_a_resumable_run(tmp_path: Path, reference) -> None:
    run_dir = tmp_path / "run"
    process = start_search(run_dir, *ARGS)
    wait_mid_epoch(run_dir, process, min_step=1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and f"--resume {run_dir}" in err and "Traceback" not in err
    assert (run_dir / "checkpoint" / "last" / "state.pt").is_file()
    resume(run_dir)
    assert final_state(run_dir) == reference


def test_resuming_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert search(run_dir, "--epochs", "1").exit_code == 0
    before = (run_dir / "genotype.json").read_text()
    resume(run_dir)
    assert (run_dir / "genotype.json").read_text() == before
    assert len(read_lines(run_dir / "metrics.jsonl")) == 1
