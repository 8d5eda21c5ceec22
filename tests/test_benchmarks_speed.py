"""The speed benchmarks run end to end at tiny sizes and report positive, finite paired ratios."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gdas_cli.sampler import SAMPLING_MODES
from gdas_cli.search import LAYOUTS

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 2


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    paths = [p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), "--device", "cpu", *args],
                          check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def check_ratios(result: dict) -> None:
    """Wall-clock and (the scripts run on the CPU here) CPU-time ratios, every round's."""
    for timing in (result, result["cpu"]):
        assert len(timing["ratios"]) == ROUNDS
        for value in [timing["median_ratio"], *timing["ratios"], *timing["project_s"]]:
            assert math.isfinite(value) and value > 0, result


@pytest.fixture
def benchmarks(monkeypatch):
    """Import a benchmark script as a module (they import each other as siblings)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module


def test_search_step_covers_every_mode_and_layout_by_default(benchmarks):
    args = benchmarks("search_step").parse_args([])
    assert args.modes == list(SAMPLING_MODES) and args.layouts == list(LAYOUTS)
    assert (args.threads, args.batch, args.channels) == (1, 64, 16)


def test_search_step_pairs_every_mode():
    layout = "xautodl"  # the smaller supernet; the paper layout runs the same code
    proc = run_script("search_step.py", "-C", "2", "-N", "1", "--batch", "4", "--size", "8",
                      "--rounds", str(ROUNDS), "--warmup", "0", "--layouts", layout)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["machine"]["threads"] == 1 and report["config"]["rounds"] == ROUNDS
    assert set(report["results"]) == {layout}
    modes = report["results"][layout]
    assert set(modes) == set(SAMPLING_MODES)
    for mode, result in modes.items():
        check_ratios(result)
        assert report["median_ratios"][f"{layout}/{mode}"] == result["median_ratio"]
        if mode in ("darts", "gdas_all_ops"):
            assert result["baseline"].startswith("project GDAS step")
            continue
        assert result["baseline"] == "one-path limit"
        assert result["check"]["project_step_made_the_predicted_draws"] is True
        diff = result["check"]["limit_max_abs_logit_diff"]
        assert diff is None if mode in ("sample", "sample_cell") else diff < 1e-4, (mode, diff)  # per-example draws: no single limit network


def test_xautodl_step_pairs_the_released_step():
    pytest.importorskip("xautodl.models", reason="xautodl not installed (pip install --no-deps xautodl==1.0.0)")
    proc = run_script("xautodl_step.py", "-C", "4", "-N", "1", "--batch", "4", "--size", "8",
                      "--rounds", str(ROUNDS), "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_ratios(report)
    assert all(math.isfinite(t) and t > 0 for t in report["xautodl_s"])
    assert report["config"]["layout"] == "xautodl" and report["config"]["sampling"] == "batch"
    assert report["check"]["same_ops_on_every_edge"] is True and report["check"]["edges_compared"] > 0


def test_xautodl_step_without_xautodl_says_how_to_install(benchmarks, monkeypatch, capsys):
    script = benchmarks("xautodl_step")
    monkeypatch.setitem(sys.modules, "xautodl", None)  # import xautodl now raises ImportError
    assert script.main(["--rounds", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "pip install --no-deps xautodl==1.0.0" in err


def test_nb201_step_pairs_the_released_step_and_the_limit():
    pytest.importorskip("xautodl.models", reason="xautodl not installed (pip install --no-deps xautodl==1.0.0)")
    proc = run_script("nb201_step.py", "-C", "4", "-N", "1", "--batch", "4", "--size", "8",
                      "--rounds", str(ROUNDS), "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    config = report["config"]
    assert (config["space"], config["recipe"], config["sampling"]) == ("nas-bench-201",) * 2 + ("batch",)
    assert config["unchosen_grads"] is True and config["grad_clip_with_alphas"] is True  # the recipe's step
    assert report["machine"]["threads"] == 1 and report["loadavg_start"] is not None
    results = report["results"]
    assert set(results) == {"xautodl", "limit"}
    assert report["median_ratios"] == {name: r["median_ratio"] for name, r in results.items()}
    assert report["cpu_median_ratios"] == {name: r["cpu"]["median_ratio"] for name, r in results.items()}
    for result in results.values():
        check_ratios(result)
        assert all(math.isfinite(t) and t > 0 for t in result["baseline_s"])
    released = results["xautodl"]
    assert released["xautodl_network"] == "TinyNetworkGDAS"
    assert released["weights"]["project"] == released["weights"]["xautodl"]
    assert released["check"] == {"rounds_checked": ROUNDS, "edges_compared_per_round": 3 * 6,  # N=1: 3 searched cells
                                 "same_ops_on_every_edge": True, "project_ran_the_drawn_ops": True}
    limit = results["limit"]["check"]
    assert limit["rounds_checked"] == ROUNDS and limit["project_ran_the_drawn_ops"] is True
    assert 0.0 <= limit["limit_max_abs_logit_diff"] < 1e-5


def test_nb201_step_defaults_are_the_released_search_s(benchmarks):
    args = benchmarks("nb201_step").parse_args([])
    assert (args.channels, args.cells_per_stage, args.batch, args.size) == (16, 5, 64, 32)
    assert args.against == ["xautodl", "limit"] and args.unchosen_grads and args.track_running_stats == 0


def test_nb201_step_against_xautodl_without_xautodl_says_how_to_install(benchmarks, monkeypatch, capsys):
    script = benchmarks("nb201_step")
    monkeypatch.setitem(sys.modules, "xautodl", None)
    assert script.main(["--rounds", "1", "--against", "xautodl"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "pip install --no-deps xautodl==1.0.0" in err
