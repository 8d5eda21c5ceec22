"""--tensorboard: the event files, read back with TensorBoard's own reader, equal the run's records.

Tiny runs on the built-in digits and demo-text sets through the real CLI; a search killed with SIGKILL
and resumed continues its curves: every step once, the same values as an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import json
import math
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from search_helpers import TINY, gdas, read_lines, start_search

from cli_helpers import assert_one_line_error

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from gdas_cli.spaces import space_of_role  # noqa: E402

# 11 steps per epoch: running means logged at epoch steps 10 (global 10, 21, 32), records at 11, 22, 33
SEARCH = [*TINY, "--limit-train-batches", "11", "--epochs", "3", "--tensorboard"]
TRAIN = ["-C", "4", "--layers", "3", "--batch-size", "32", "--limit-train-batches", "11", "--limit-eval-batches", "2",
         "--device", "cpu", "--quiet", "--epochs", "2", "--val-split", "100", "--tensorboard"]
RUN_KEYS = ("seconds", "images_per_s", "tokens_per_s")  # differ between two runs of the same computation


def events(run_dir: Path) -> EventAccumulator:
    reader = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    reader = events(run_dir)
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def f32(value: float) -> float:
    """What TensorBoard stores of a number (a float32)."""
    return float(np.float32(value))


def numbers(record: dict) -> dict[str, float]:
    return {k: v for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def assert_epoch_curves(run_dir: Path, found: dict[str, list[tuple[int, float]]]) -> list[dict]:
    """epoch/<key> holds every numeric key of every record of metrics.jsonl at its step, and nothing else."""
    records = read_lines(run_dir / "metrics.jsonl")
    keys = {k for r in records for k in numbers(r)}
    assert {t.removeprefix("epoch/") for t in found if t.startswith("epoch/")} == keys
    for key in keys:
        expected = [(r["step"], f32(r[key])) for r in records if key in numbers(r)]
        got = found[f"epoch/{key}"]
        assert [s for s, _ in got] == [s for s, _ in expected], key
        assert all(g == e or (math.isnan(g) and math.isnan(e)) for (_, g), (_, e) in zip(got, expected, strict=True))
    return records


def assert_alpha_curves(run_dir: Path, found: dict[str, list[tuple[int, float]]]) -> None:
    """alphas/<role>/edge<i>/<op> is the softmax of each epoch's alphas in alphas.jsonl, at its step."""
    history = read_lines(run_dir / "alphas.jsonl")
    expected: dict[str, list[tuple[int, float]]] = {}
    for entry in history:
        for role, rows in entry["alphas"].items():
            probabilities = torch.tensor(rows, dtype=torch.float64).softmax(-1)
            for edge, row in enumerate(probabilities.tolist()):
                for op, p in zip(space_of_role(role).ops, row, strict=True):
                    expected.setdefault(f"alphas/{role}/edge{edge}/{op}", []).append((entry["step"], p))
    assert {t for t in found if t.startswith("alphas/")} == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in found[tag]] == [s for s, _ in points], tag
        assert [v for _, v in found[tag]] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-7), tag


def assert_no_step_twice(found: dict[str, list[tuple[int, float]]]) -> None:
    for tag, points in found.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), f"{tag}: {steps}"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("tb") / "search"
    result = gdas("search", "cnn", *SEARCH, "--quiet", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir


def test_a_search_writes_its_records_alphas_steps_and_cells(searched: Path) -> None:
    found = curves(searched)
    records = assert_epoch_curves(searched, found)
    assert [r["step"] for r in records] == [11, 22, 33]
    assert_alpha_curves(searched, found)
    assert {t for t in found if t.startswith("step/")} == {
        "step/train_loss", "step/train_top1", "step/train_arch_loss", "step/train_arch_top1"}
    assert [s for s, _ in found["step/train_loss"]] == [10, 21, 32]
    assert all(0 < v < 10 for _, v in found["step/train_loss"])
    images = events(searched).Images("genotype")
    assert [i.step for i in images] == [11, 22, 33]
    assert all(i.encoded_image_string.startswith(b"\x89PNG") and i.width > 200 for i in images)
    config = json.loads((searched / "config.json").read_text())
    assert config["run"]["records"]["tensorboard"] == "tensorboard" and config["engine"]["tensorboard"] is True


def _newest(run_dir: Path) -> int:
    """The largest step of any scalar the run's event files hold so far (-1: none)."""
    if not (run_dir / "tensorboard").is_dir():
        return -1
    return max((s for points in curves(run_dir).values() for s, _ in points), default=-1)


def _checkpointed(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "last" / "progress.json").read_text())["global_step"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def stop_when(run_dir: Path, process: subprocess.Popen, checkpoint: int, newest: int) -> None:
    """SIGKILL the run while its checkpoint is at global step `checkpoint` and its event files hold a step
    at or after `newest` (both checked while the process is stopped)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        at = _checkpointed(run_dir)
        assert at <= checkpoint, f"the run went past step {checkpoint} before it could be stopped there"
        if at == checkpoint:
            process.send_signal(signal.SIGSTOP)
            if _checkpointed(run_dir) == checkpoint and _newest(run_dir) >= newest:
                process.send_signal(signal.SIGKILL)
                process.communicate(timeout=60)
                return
            process.send_signal(signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError("the run never reached the point to kill it at")


@pytest.mark.parametrize(("extra", "checkpoint"), [
    # at the end of epoch 1 (step 11), after its record was written: the purge drops the killed session's
    # events from step 11 on, and the record at 11 is written again from the checkpoint
    ([], 11),
    # at step 21, a logged step of epoch 2: its running means are written again from the checkpoint's sums
    (["--checkpoint-every", "7"], 21),
], ids=["epoch-end", "mid-epoch"])
def test_a_killed_search_resumed_continues_the_same_curves(tmp_path: Path, searched: Path, extra, checkpoint) -> None:
    run_dir = tmp_path / "run"
    process = start_search(run_dir, *SEARCH, *extra)
    stop_when(run_dir, process, checkpoint, newest=checkpoint)  # an event the resumed session writes again
    assert process.returncode == -signal.SIGKILL
    result = gdas("search", "cnn", "--resume", run_dir, "--quiet")  # --tensorboard is kept from config.json
    assert result.exit_code == 0, result.output
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    found, reference = curves(run_dir), curves(searched)
    assert_no_step_twice(found)
    records = assert_epoch_curves(run_dir, found)
    assert_alpha_curves(run_dir, found)
    assert set(found) == set(reference)
    same = {t: v for t, v in found.items() if t.removeprefix("epoch/") not in RUN_KEYS}
    assert same == {t: v for t, v in reference.items() if t.removeprefix("epoch/") not in RUN_KEYS}
    uninterrupted = read_lines(searched / "metrics.jsonl")
    assert [{k: v for k, v in r.items() if k not in RUN_KEYS} for r in records] == [
        {k: v for k, v in r.items() if k not in RUN_KEYS} for r in uninterrupted]
    assert [i.step for i in events(run_dir).Images("genotype")] == [11, 22, 33]


def test_a_training_writes_its_records_and_steps(tmp_path: Path) -> None:
    run_dir = tmp_path / "train"
    result = gdas("train", "digits", "--genotype", "gdas", *TRAIN, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    found = curves(run_dir)
    assert_no_step_twice(found)
    records = assert_epoch_curves(run_dir, found)
    assert {"epoch/lr", "epoch/drop_path", "epoch/test_top1", "epoch/valid_top1"} <= set(found)
    assert [r["step"] for r in records] == [11, 22]
    assert {t for t in found if not t.startswith("epoch/")} == {"step/train_loss", "step/train_top1"}
    assert [s for s, _ in found["step/train_top1"]] == [10, 21]
    assert events(run_dir).Tags()["images"] == []


def test_an_rnn_search_and_a_language_model_write_their_records(tmp_path: Path) -> None:
    text = ["--dataset", "demo-text", "--epochs", "2", "--batch-size", "8", "--emsize", "16", "--bptt", "8",
            "--limit-train-batches", "3", "--device", "cpu", "-q", "--tensorboard"]
    run_dir = tmp_path / "rnn"
    result = gdas("search", "rnn", *text, "--run-dir", run_dir, "-o", tmp_path / "cell.json")
    assert result.exit_code == 0, result.output
    found = curves(run_dir)
    assert_epoch_curves(run_dir, found)
    assert {"epoch/valid_ppl", "epoch/tokens_per_s", "epoch/tau"} <= set(found)
    assert_alpha_curves(run_dir, found)
    assert [i.step for i in events(run_dir).Images("genotype")] == [3, 6]
    lm_dir = tmp_path / "lm"
    trained = gdas("train", "demo-text", "--genotype", tmp_path / "cell.json", *text[2:], "--run-dir", lm_dir,
                   "--no-test")
    assert trained.exit_code == 0, trained.output
    found = curves(lm_dir)
    assert_epoch_curves(lm_dir, found)
    assert {"epoch/valid_ppl", "epoch/train_loss", "epoch/tokens_per_s"} <= set(found)
    assert not any(tag.startswith("alphas/") for tag in found) and events(lm_dir).Tags()["images"] == []


def test_resumed_with_tensorboard_a_run_without_it_writes_its_whole_history(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = gdas("search", "cnn", *TINY, "--quiet", "--run-dir", run_dir, "--epochs", "1")
    assert first.exit_code == 0, first.output
    assert not (run_dir / "tensorboard").exists()
    again = gdas("search", "cnn", "--resume", run_dir, "--quiet", "--epochs", "2", "--tensorboard")
    assert again.exit_code == 0, again.output
    found = curves(run_dir)
    assert [s for s, _ in found["epoch/train_loss"]] == [3, 6]
    assert_epoch_curves(run_dir, found)
    assert_alpha_curves(run_dir, found)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["run"]["records"]["tensorboard"] == "tensorboard" and config["engine"]["tensorboard"] is True


def test_without_the_package_the_flag_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    result = gdas("search", "cnn", *TINY, "--quiet", "--run-dir", tmp_path / "run", "--tensorboard")
    assert_one_line_error(result, "--tensorboard", "pip install")
    assert not (tmp_path / "run").exists()
    trained = gdas("train", "digits", "--genotype", "gdas", *TRAIN, "--run-dir", tmp_path / "train")
    assert_one_line_error(trained, "--tensorboard", "pip install")
