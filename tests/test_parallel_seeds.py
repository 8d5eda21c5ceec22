"""`torchrun --nproc_per_node P gdas search cnn --seeds K`: rank r runs seeds[r::P] as one-process runs, rank 0
ranks them. On CPU every part is deterministic, so the parent equals a one-process `--seeds K` run: the same
folders, ranking, genotype and records; a killed rank's group resumes (by hand, or torchrun --max-restarts)
to the same result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_elastic import kill_rank_after_first_checkpoint, torchrun

pytestmark = pytest.mark.distributed

SEEDS = ["search", "cnn", "--frc", "--dataset", "digits", "-C", "8", "-N", "1", "--image-size", "8", "--batch-size",
         "32", "--epochs", "2", "--limit-train-batches", "3", "--select-epochs", "1", "--select-channels", "8",
         "--select-layers", "3", "--seeds", "2", "--device", "cpu"]
CLI = [sys.executable, "-c", "from gdas_cli.cli import main; main()"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GDAS_COLLECTIVE_TIMEOUT": "30"}
DROP = ("seconds", "images_per_s", "created")


def run(command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, time.monotonic() - started


def contents(parent: Path) -> dict[str, object]:
    """Every file of the parent: the JSON records with its own path replaced and the wall-clock fields dropped,
    the weights, the rest (checkpoint files hold their files' hashes) by name."""

    def clean(value: object) -> object:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in DROP}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    found: dict[str, object] = {}
    for path in sorted(parent.rglob("*")):
        name = path.relative_to(parent).as_posix()
        if path.name == "model.safetensors":  # the weights (the file's bytes hold the run's own metadata)
            found[name] = {k: v.tolist() for k, v in sorted(load_file(str(path)).items())}
        elif (path.suffix == ".json" or path.suffix == ".jsonl") and "checkpoint" not in path.parts:
            text = path.read_text().replace(str(parent), "PARENT")
            lines = text.splitlines() if path.suffix == ".jsonl" else [text]
            found[name] = [clean(json.loads(line)) for line in lines]
        else:
            found[name] = "present"
    return found


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    parent = tmp_path_factory.mktemp("sequential") / "best"
    _, took = run([*CLI, *SEEDS, "--run-dir", str(parent)])
    print(f"\nsequential --seeds 2: {took:.1f} s")
    return contents(parent)


def test_two_ranks_search_two_seeds_as_one_process_would(tmp_path: Path, sequential: dict[str, object]) -> None:
    parent = tmp_path / "best"
    done, took = run(torchrun(*SEEDS, "--run-dir", str(parent)))
    print(f"\ntorchrun --nproc_per_node 2 --seeds 2: {took:.1f} s")
    got = contents(parent)
    assert got.keys() == sequential.keys()
    assert got == sequential
    assert done.stdout.count("best of 2 seeds") == 1 and done.stdout.count("search finished:") == 1  # rank 0 only
    for seed in (0, 1):
        assert done.stderr.count(f"seed {seed} (") == 2  # its search and its training, on one rank


def test_a_killed_rank_resumes_to_the_same_ranking(tmp_path: Path, sequential: dict[str, object]) -> None:
    parent = tmp_path / "best"
    killed = kill_rank_after_first_checkpoint(torchrun(*SEEDS, "--run-dir", str(parent)), parent / "seed-1")
    assert killed.returncode != 0 and not (parent / "ranking.json").exists()
    assert "[rank0]:" not in killed.stderr and "unexpected" not in killed.stderr  # the survivor stopped cleanly
    run(torchrun(*SEEDS, "--resume", str(parent)))
    assert contents(parent) == sequential


def test_a_restarted_group_resumes_its_seeds(tmp_path: Path, sequential: dict[str, object]) -> None:
    parent = tmp_path / "best"
    done = kill_rank_after_first_checkpoint(torchrun(*SEEDS, "--run-dir", str(parent), restarts=1), parent / "seed-1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert contents(parent) == sequential

