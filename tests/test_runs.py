"""`gdas runs list|compare` and `gdas plot curves` on real runs: a digits search, a training with a validation
split, a search caught while running and then killed (interrupted), and a run killed before its first
checkpoint (empty); every figure checked against the run's own records."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_helpers import assert_one_line_error, gdas
from search_helpers import TINY, read_lines

from gdas_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["-C", "4", "--layers", "3", "--batch-size", "32", "--limit-train-batches", "3", "--limit-eval-batches", "2",
         "--device", "cpu", "--quiet"]
# runs `gdas ARGS` as the script does and reports whether torch was imported
_RUNNER = (
    "import sys\n"
    "from gdas_cli.cli import main\n"
    "sys.argv[0] = 'gdas'\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('TORCH_IMPORTED=' + str('torch' in sys.modules), file=sys.stderr)\n"
)


def fresh_gdas(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", _RUNNER, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    made = {"search": root / "search", "train": root / "train", "live": root / "live", "empty": root / "empty"}
    result = gdas("search", "cnn", *TINY, "--quiet", "--run-dir", made["search"])
    assert result.exit_code == 0, result.output
    result = gdas("train", "digits", "--genotype", "gdas", "--epochs", "3", *TRAIN, "--val-split", "100",
                  "--run-dir", made["train"])
    assert result.exit_code == 0, result.output
    # a search of 16 epochs in its own process, listed while it runs (after its first epoch), then killed
    args = [*TINY[:-2], "--epochs", "16", "--quiet", "--device", "cpu", "--run-dir", made["live"]]
    process = subprocess.Popen([sys.executable, "-m", "gdas_cli", "search", "cnn", *args], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (made["live"] / "metrics.jsonl").is_file() and process.poll() is None:
            assert time.monotonic() < deadline, "the search wrote no epoch in 90 s"
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        listed = gdas("runs", "list", root, "--json")
        made["listed_while_running"] = listed.stdout  # type: ignore[assignment]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    made["pid"] = process.pid  # type: ignore[assignment]
    # what a run killed before its first checkpoint leaves: config.json alone
    made["empty"].mkdir()
    shutil.copy(made["search"] / "config.json", made["empty"] / "config.json")
    return made


def rows_by_name(output: str) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(output)}


def test_list_while_running_shows_the_live_lock(runs) -> None:
    live = rows_by_name(runs["listed_while_running"])["live"]
    assert live["state"] == "running" and live["pid"] == runs["pid"] and live["resume"] is None
    assert live["epochs_planned"] == 16 and live["epochs_done"] >= 1


def test_list_json_matches_the_records(runs) -> None:
    result = gdas("runs", "list", runs["search"].parent, "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [row["name"] for row in listed] == [
        row["name"] for row in sorted(listed, key=lambda r: (r["created"], r["name"]))]  # oldest first
    rows = rows_by_name(result.stdout)
    assert set(rows) == {"search", "train", "live", "empty"}

    search, records = rows["search"], read_lines(runs["search"] / "metrics.jsonl")
    genotype = json.loads((runs["search"] / "genotype.json").read_text())
    assert (search["kind"], search["dataset"], search["space"], search["genotype"]) == (
        "search cnn", "digits", "darts", None)
    assert (search["state"], search["epochs_done"], search["epochs_planned"]) == ("finished", 2, 2)
    assert search["chosen"] == {"checkpoint": "last", "epoch": 2, "by": None, "split": None, "test": None,
                                "valid": {"key": "train_arch_top1", "value": records[-1]["train_arch_top1"]}}
    assert search["final"] == records[-1]
    assert search["seconds"] == pytest.approx(sum(r["seconds"] for r in records), abs=1e-3)
    shares = genotype["provenance"]["param_free"]
    assert set(shares) == {"normal", "reduce"}  # no --frc: both cells searched
    assert search["param_free"] == {role: cell["share"] for role, cell in shares.items()}

    train, records = rows["train"], read_lines(runs["train"] / "metrics.jsonl")
    best = max(records, key=lambda r: (r["valid_top1"], -r["epoch"]))  # the first epoch of the best
    assert (train["kind"], train["genotype"], train["state"], train["epochs_done"]) == (
        "train", "gdas@1.0.0", "finished", 3)
    assert train["chosen"] == {
        "checkpoint": "best", "epoch": best["epoch"], "by": "valid_top1", "split": "valid",
        "valid": {"key": "valid_top1", "value": best["valid_top1"]},
        "test": {"key": "test_top1", "value": best["test_top1"]}}
    assert train["best"]["record"] == best and train["param_free"] is None

    live, records = rows["live"], read_lines(runs["live"] / "metrics.jsonl")
    assert (live["state"], live["epochs_done"], live["epochs_planned"]) == ("interrupted", len(records), 16)
    assert live["resume"] == f"gdas search cnn --resume {runs['live']}"
    assert rows["empty"]["state"] == "empty" and rows["empty"]["epochs_done"] == 0
    assert rows["empty"]["chosen"] is None and rows["empty"]["resume"] is None


def test_the_listed_resume_command_finishes_the_interrupted_run(runs, tmp_path) -> None:
    copy = tmp_path / "live"
    shutil.copytree(runs["live"], copy)
    resume = rows_by_name(gdas("runs", "list", tmp_path, "--json").stdout)["live"]["resume"]
    command = resume.split()
    assert command[:4] == ["gdas", "search", "cnn", "--resume"] and command[4] == str(copy)
    result = gdas(*command[1:], "--quiet")
    assert result.exit_code == 0, result.output
    row = rows_by_name(gdas("runs", "list", tmp_path, "--json").stdout)["live"]
    assert (row["state"], row["epochs_done"], row["resume"]) == ("finished", 16, None)


def test_runs_written_before_the_run_record_are_read_by_the_vocabulary(runs, tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(runs["train"], old)
    config = json.loads((old / "config.json").read_text())
    del config["run"]
    (old / "config.json").write_text(json.dumps(config))
    now = rows_by_name(gdas("runs", "list", runs["train"].parent, "--json").stdout)["train"]
    before = rows_by_name(gdas("runs", "list", tmp_path, "--json").stdout)["old"]
    assert (before["kind"], before["genotype"], before["state"]) == ("train", "gdas@1.0.0", "finished")
    assert before["chosen"] == now["chosen"] and before["best"] == now["best"]


def test_list_table_and_unreadable_runs(runs, tmp_path) -> None:
    shutil.copytree(runs["search"], tmp_path / "ok", ignore=shutil.ignore_patterns("checkpoint"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    result = CliRunner().invoke(app, ["runs", "list", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout and "search cnn" in result.stdout and "unreadable" in result.stdout
    rows = rows_by_name(gdas("runs", "list", tmp_path, "--json").stdout)
    assert rows["broken"]["state"] == "unreadable" and "config.json" in rows["broken"]["error"]


def test_compare_json_shows_what_differs_and_each_runs_records(runs) -> None:
    result = gdas("runs", "compare", runs["search"], runs["live"], "--json")
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert compared["runs"] == [str(runs["search"]), str(runs["live"])]
    assert compared["differ"]["engine.epochs"] == [2, 16] and compared["differ"]["task.epochs"] == [2, 16]
    assert "task.dataset" not in compared["differ"] and "engine.run_dir" not in compared["differ"]
    assert compared["differ"]["engine.device"] == ["auto", "cpu"]
    for row, run in zip(compared["records"], (runs["search"], runs["live"]), strict=True):
        records = read_lines(run / "metrics.jsonl")
        assert row["final"] == records[-1]
        assert row["best"]["record"] == max(records, key=lambda r: (r["train_arch_top1"], -r["epoch"]))
    table = gdas("runs", "compare", runs["search"], runs["train"])
    assert table.exit_code == 0 and "config keys that differ" in table.stdout and "final train_loss" in table.stdout


def test_plot_curves_draws_each_run_from_its_records(runs, tmp_path) -> None:
    from gdas_cli.curves import draw_curves
    from gdas_cli.runs import curves, read_run

    output = tmp_path / "curves.png"
    result = gdas("plot", "curves", runs["search"], runs["train"], "-o", output)
    assert result.exit_code == 0, result.output
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and output.stat().st_size > 10_000
    summaries = [read_run(runs["search"]), read_run(runs["train"])]
    fig = draw_curves([(s.name, curves(s)) for s in summaries])
    lines = {line.get_gid(): line for ax in fig.axes for line in ax.get_lines() if line.get_gid()}
    expected = {
        "search": {("train", "loss"): "train_loss", ("valid", "loss"): "train_arch_loss",
                   ("train", "top1"): "train_top1", ("valid", "top1"): "train_arch_top1"},
        "train": {(split, metric): f"{split}_{metric}" for split in ("train", "valid", "test")
                  for metric in ("loss", "top1")},
    }
    assert set(lines) == {f"{run}|{split}|{metric}" for run, keys in expected.items() for split, metric in keys}
    for run, keys in expected.items():
        records = read_lines(runs[run] / "metrics.jsonl")
        for (split, metric), key in keys.items():
            line = lines[f"{run}|{split}|{metric}"]
            assert list(line.get_xdata()) == [r["epoch"] for r in records]
            assert list(line.get_ydata()) == [r[key] for r in records]
    colours = {run: {lines[g].get_color() for g in lines if g.startswith(run + "|")} for run in expected}
    assert all(len(c) == 1 for c in colours.values()) and colours["search"] != colours["train"]


def test_bad_input_is_one_line(runs, tmp_path) -> None:
    assert_one_line_error(gdas("runs", "list", tmp_path / "nowhere"), "nowhere", "no such folder")
    assert_one_line_error(gdas("runs", "compare", runs["search"]), "at least two")
    assert_one_line_error(gdas("runs", "compare", runs["search"], tmp_path), str(tmp_path), "config.json")
    assert_one_line_error(gdas("plot", "curves", runs["empty"], "-o", tmp_path / "c.png"), "empty", "no finished epoch")
    assert_one_line_error(gdas("plot", "curves", runs["search"], "-o", tmp_path / "c.txt"), "--output", ".png")
    assert_one_line_error(gdas("plot", "curves", runs["search"], "-o", runs["search"] / "c.png"), "--output", "would write over")


def test_runs_and_curves_start_without_torch(runs, tmp_path) -> None:
    for args in (("runs", "list", runs["search"].parent, "--json"), ("runs", "--help"),
                 ("runs", "compare", runs["search"], runs["train"], "--json"),
                 ("plot", "curves", runs["train"], "-o", tmp_path / "c.svg"), ("plot", "curves", "--help")):
        done = fresh_gdas(*args)
        assert done.returncode == 0, done.stderr
        assert "TORCH_IMPORTED=False" in done.stderr, args
    shown = fresh_gdas("runs", "list", "--help").stdout
    assert "Examples" in shown and "gdas runs list runs/sweep --json" in shown
    assert "gdas plot curves runs/train-digits -o curves.png" in fresh_gdas("plot", "curves", "--help").stdout
