"""Best of K seeds (`gdas search cnn --seeds K`): K searches under one parent, ranked by a short
training on the train half and top-1 on the valid half; Ctrl-C-safe and resumable as a whole."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from gdas_cli.engine import EngineConfig, RunInterrupted
from gdas_cli.genotype import load_local_genotype
from gdas_cli.search import cnn_task
from gdas_cli.search.config import resolve_config
from gdas_cli.search.seeds import SeedsPlan, new_plan, run_seeds
from search_helpers import assert_one_line_error, gdas, read_lines, snapshot

SEARCH = {"frc": True, "channels": 8, "cells_per_stage": 1, "image_size": 8, "batch_size": 32, "epochs": 2,
          "limit_train_batches": 3}
# the short training of each cell: a 3-cell network without aux head, 2 valid batches
SELECT = {"C": 8, "layers": 3, "batch_size": 32, "auxiliary": False, "limit_eval_batches": 2}


def tiny_plan(parent: Path) -> SeedsPlan:
    config = resolve_config("paper", "digits", SEARCH)
    engine = EngineConfig(epochs=2, run_dir=str(parent), device="cpu", limit_train_batches=3)
    return new_plan(config, engine, 2, 1, select=SELECT)


def interrupt_second_search(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ctrl-C in the 5th step of seed 1's search (its second epoch), as a user would press it."""
    said: list[str] = []
    steps = {"n": 0}
    real = cnn_task.search_step

    def step(*args, **kwargs):
        if any(line.startswith("seed 1 (2/2): search") for line in said):
            steps["n"] += 1
            if steps["n"] == 5:
                signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(cnn_task, "search_step", step)
    return said


def test_best_of_two_seeds_resumes_ranks_and_derives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = tmp_path / "best"
    said = interrupt_second_search(monkeypatch)
    with pytest.raises(RunInterrupted, match=f"resume with: gdas search cnn --resume {parent}"):
        run_seeds(tiny_plan(parent), parent, say=said.append)
    monkeypatch.undo()
    assert said == [f"seed 0 (1/2): search in {parent / 'seed-0'}", f"seed 1 (2/2): search in {parent / 'seed-1'}"]
    assert (parent / "seed-0" / "genotype.json").is_file() and not (parent / "seed-1" / "genotype.json").exists()
    assert len(read_lines(parent / "seed-1" / "metrics.jsonl")) == 1  # stopped in its second epoch
    first = snapshot(parent / "seed-0")
    listed = {row["name"]: row for row in json.loads(gdas("runs", "list", tmp_path, "--json").stdout)}
    assert listed["best"]["kind"] == "search cnn --seeds" and listed["best"]["state"] == "interrupted"
    assert listed["best"]["resume"] == f"gdas search cnn --resume {parent}"
    assert listed["best/seed-1"]["state"] == "interrupted" and listed["best/seed-0"]["state"] == "finished"

    resumed = gdas("search", "cnn", "--resume", parent)
    assert resumed.exit_code == 0, resumed.output
    assert snapshot(parent / "seed-0") == first  # a finished search is skipped, not redone
    assert len(read_lines(parent / "seed-1" / "metrics.jsonl")) == 2
    ranking = json.loads((parent / "ranking.json").read_text())
    rows = ranking["seeds"]
    assert sorted(r["seed"] for r in rows) == [0, 1] and ranking["winner"] == rows[0]["seed"]
    assert rows[0]["valid_top1"] >= rows[1]["valid_top1"]
    assert all(r["params"] > 0 and r["network"] == {"net": "cifar", "C": 8, "layers": 3} for r in rows)
    for row in rows:  # each cell trained on the train half of the one shared split, evaluated on its valid half
        split = json.loads((parent / f"seed-{row['seed']}" / "split.json").read_text())
        assert split["seed"] == 0
        select = json.loads((parent / "select" / f"seed-{row['seed']}" / "config.json").read_text())
        assert select["task"]["epochs"] == 1 and select["task"]["C"] == 8
        assert read_lines(parent / "select" / f"seed-{row['seed']}" / "metrics.jsonl")[-1]["test_top1"] == (
            row["valid_top1"]
        )
    assert "valid top-1" in resumed.stdout and f"{rows[0]['valid_top1']:.2f}%" in resumed.stdout

    winner = load_local_genotype(parent / "genotype.json")
    searched = load_local_genotype(parent / f"seed-{ranking['winner']}" / "genotype.json")
    assert winner.normal == searched.normal and winner.reduce == searched.reduce
    best = winner.provenance["best_of_seeds"]
    assert [r["seed"] for r in best["ranking"]] == [r["seed"] for r in rows]

    derived = gdas("derive", parent, "-o", tmp_path / "cell.json")
    assert derived.exit_code == 0, derived.output
    cell = load_local_genotype(tmp_path / "cell.json")
    assert cell.normal == winner.normal and cell.provenance["seed"] == ranking["winner"]
    assert cell.provenance["best_of_seeds"]["ranking"] == best["ranking"]

    listed = {row["name"]: row for row in json.loads(gdas("runs", "list", tmp_path, "--json").stdout)}
    parent_row = listed["best"]  # its epochs and time are its parts', its figure the winner's
    assert (parent_row["state"], parent_row["epochs_done"], parent_row["epochs_planned"]) == ("finished", 6, 6)
    assert parent_row["chosen"]["seed"] == ranking["winner"]
    assert parent_row["chosen"]["valid"] == {"key": "valid_top1", "value": rows[0]["valid_top1"]}
    assert parent_row["param_free"] == {"normal": winner.provenance["param_free"]["normal"]["share"]}
    assert_one_line_error(gdas("plot", "curves", parent, "-o", tmp_path / "c.png"), "a parent run", "seed-0")
    assert parent_row["seconds"] == pytest.approx(sum(listed[f"best/{p}"]["seconds"] for p in (
        "seed-0", "seed-1", "select/seed-0", "select/seed-1")), abs=1e-3)

    done = snapshot(parent)
    again = gdas("search", "cnn", "--resume", parent, "--quiet")
    assert again.exit_code == 0, again.output
    assert snapshot(parent) == done  # a finished parent: nothing is redone; the ranking is written alike
    assert_one_line_error(gdas("search", "cnn", "--resume", parent, "--seeds", "3"), "--seeds", "seeds.json")
    assert_one_line_error(gdas("search", "cnn", "--resume", parent / "seed-0", "--seeds", "2"), "--seeds", "single")


def test_select_epochs_needs_seeds_and_unfinished_parent_does_not_derive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_one_line_error(gdas("search", "cnn", "--dataset", "digits", "--select-epochs", "2"), "--select-epochs")
    parent = tmp_path / "p"
    parent.mkdir()
    (parent / "seeds.json").write_text(json.dumps(tiny_plan(parent).to_dict()))
    assert_one_line_error(gdas("derive", parent), "--resume", str(parent))
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun (tests/test_parallel_seeds.py) bad input is refused alike
    result = gdas("search", "cnn", "--dataset", "digits", "--seeds", "0")
    assert_one_line_error(result, "--seeds", "must be in [1, 100]")


def test_a_restarted_torchrun_group_resumes_a_seeds_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `--seeds` parent has no checkpoint of its own: its seeds.json tells a restarted group to resume it."""
    from gdas_cli.cli._run_options import RunOptions

    parent = tmp_path / "best"
    parent.mkdir()
    given = RunOptions(run_dir=parent, explicit=frozenset({"run_dir"}))
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert (given.mode, given.resumed_run()) == ("auto", None)  # nothing started yet: a new run
    (parent / "seeds.json").write_text(json.dumps(tiny_plan(parent).to_dict()))
    assert given.resumed_run() == parent
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert (given.mode, given.resumed_run()) == ("never", None)  # the first start never resumes
