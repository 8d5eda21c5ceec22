"""Faults of several processes: torchrun restarts a group that lost a rank, and a lost rank without restarts.

Two gloo processes on CPU. A worker is killed with SIGKILL once the run has written its first checkpoint:
- with `--max-restarts 1`, torchrun starts the group again with the same command; the engine sees the
  restart (TORCHELASTIC_RESTART_COUNT) and resumes the run from checkpoint/last, so the finished run
  equals an uninterrupted one (records and weights, as the Ctrl-C resume test of tests/test_ddp.py);
- without restarts, the surviving rank stops with one line naming the lost rank and the resume
  command, exit 1, well within the collective timeout (GDAS_COLLECTIVE_TIMEOUT, here 30 s).
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

pytestmark = pytest.mark.distributed

TRAIN = ["train", "digits", "-g", "gdas", "-C", "4", "--layers", "3", "--epochs", "2", "--batch-size", "16",
         "--limit-train-batches", "5", "--limit-eval-batches", "2", "--drop-path", "0", "--seed", "7", "--device", "cpu",
         "--quiet", "--checkpoint-every", "3"]
SEARCH = ["search", "cnn", "--dataset", "digits", "-C", "8", "-N", "1", "--image-size", "8", "--batch-size", "16",
          "--limit-train-batches", "5", "--epochs", "2", "--device", "cpu", "--quiet", "--checkpoint-every", "3"]
TIMEOUT_S = 30
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GDAS_COLLECTIVE_TIMEOUT": str(TIMEOUT_S)}


def torchrun(*args: str, restarts: int = 0) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--max-restarts",
            str(restarts), "--no-python", sys.executable, "-c", "from gdas_cli.cli import main; main()", *args]


def worker_of_rank(agent: int, rank: int) -> int:
    """The pid of torchrun's worker process with RANK=rank."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == agent and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    raise AssertionError(f"no worker of rank {rank} under torchrun {agent}")


def kill_rank_after_first_checkpoint(command: list[str], run_dir: Path, rank: int = 1) -> subprocess.CompletedProcess:
    started = time.monotonic()
    agent = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    progress = run_dir / "checkpoint" / "last" / "progress.json"
    while not progress.is_file():
        assert agent.poll() is None, agent.communicate()[1][-3000:]
        assert time.monotonic() - started < 180, "no checkpoint within 3 minutes"
        time.sleep(0.01)
    assert not json.loads(progress.read_text())["finished"]
    os.kill(worker_of_rank(agent.pid, rank), signal.SIGKILL)
    try:
        out, err = agent.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(agent.pid, signal.SIGKILL)
        raise AssertionError("torchrun hung after a worker was killed") from None
    return subprocess.CompletedProcess(command, agent.returncode, out, err)


def records(run_dir: Path) -> list[dict]:
    drop = ("seconds", "images_per_s")
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoint" / "last" / "model.safetensors"))


def uninterrupted(args: list[str], run_dir: Path) -> Path:
    done = subprocess.run(torchrun(*args, "--run-dir", str(run_dir)), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_a_restarted_training_resumes_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    reference = uninterrupted(TRAIN, tmp_path / "reference")
    run_dir = tmp_path / "elastic"
    done = kill_rank_after_first_checkpoint(torchrun(*TRAIN, "--run-dir", str(run_dir), restarts=1), run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert records(run_dir) == records(reference)
    expected, got = weights(reference), weights(run_dir)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_restarted_search_resumes_and_derives_the_uninterrupted_cell(tmp_path: Path) -> None:
    reference = uninterrupted(SEARCH, tmp_path / "reference")
    run_dir = tmp_path / "elastic"
    done = kill_rank_after_first_checkpoint(torchrun(*SEARCH, "--run-dir", str(run_dir), restarts=1), run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert records(run_dir) == records(reference)
    alphas = [json.loads((run / "alphas.jsonl").read_text().splitlines()[-1]) for run in (reference, run_dir)]
    assert alphas[0] == alphas[1]
    cells = [json.loads((run / "genotype.json").read_text())["normal"] for run in (reference, run_dir)]
    assert cells[0] == cells[1]


def test_a_lost_rank_without_restarts_is_one_line_not_a_hang(tmp_path: Path) -> None:
    run_dir = tmp_path / "lost"
    started = time.monotonic()
    done = kill_rank_after_first_checkpoint(torchrun(*TRAIN, "--run-dir", str(run_dir)), run_dir)
    assert time.monotonic() - started < 120 + TIMEOUT_S
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1, done.stderr[-3000:]
    assert ours[0].startswith("error: rank 0 of 2: lost rank 1 (")
    assert f"{run_dir}/checkpoint/last is kept" in ours[0] and f"gdas train digits --resume {run_dir}" in ours[0]
    # no worker raised past the CLI (torchrun prefixes a worker's traceback with [rankN]:); the only
    # traceback is torchrun's own report that a worker failed
    assert "[rank0]:" not in done.stderr and "unexpected" not in done.stderr
    resumed = subprocess.run(torchrun("train", "digits", "--resume", str(run_dir), "--quiet"), env=ENV,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(records(run_dir)) == 2
