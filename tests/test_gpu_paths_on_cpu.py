"""The GPU options on the CPU, as far as torch allows: bf16 autocast, torch.compile and channels-last,
through the real `gdas train` and `gdas search cnn` commands, against fp32 eager runs of the same seed.

Each run takes one training step (`--limit-train-batches 1`, one epoch) from the same initial
weights, so the epoch's train loss is the first step's loss (the same weights and batch on both
sides) and the evaluated losses show the weights after one update. Tolerances, relative to fp32:
- compile and channels-last reorder float32 arithmetic (fused kernels, NHWC convolution
  algorithms): 1e-4 on the first step's loss, 1e-3 after the update;
- bf16 autocast keeps 8 bits of mantissa (about 2 significant digits) in the convolutions: 2e-2.
Slow (torch.compile builds C++ kernels for about a minute): `pytest -m slow tests/test_gpu_paths_on_cpu.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import gdas

pytestmark = pytest.mark.slow

TRAIN = ["train", "digits", "-g", "gdas", "-C", "4", "--layers", "3", "--batch-size", "32", "--no-aux",
         "--drop-path", "0", "--limit-train-batches", "1", "--limit-eval-batches", "2", "--epochs", "1",
         "--seed", "1", "-q"]
SEARCH = ["search", "cnn", "--dataset", "digits", "-C", "8", "-N", "1", "--image-size", "8", "--batch-size", "32",
          "--limit-train-batches", "1", "--epochs", "1", "--seed", "1", "-q"]
EXACT_ISH = {"first": 1e-4, "after": 1e-3}
BF16 = {"first": 2e-2, "after": 2e-2}


def record(command: list[str], run_dir: Path, *extra: str) -> dict:
    result = gdas(*command, "--run-dir", run_dir, *extra)
    assert result.exit_code == 0, result.output
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])


@pytest.fixture(scope="module")
def fp32_training(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return record(TRAIN, tmp_path_factory.mktemp("fp32") / "run")


@pytest.mark.parametrize(
    "options, tolerance",
    [(["--precision", "bf16"], BF16), (["--compile"], EXACT_ISH), (["--channels-last"], EXACT_ISH)],
    ids=["bf16", "compile", "channels-last"],
)
def test_training_matches_fp32_eager(options: list[str], tolerance: dict, fp32_training: dict, tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    run_dir = tmp_path / "run"
    graphs = counters["stats"]["unique_graphs"]
    got = record(TRAIN, run_dir, *options)
    assert (counters["stats"]["unique_graphs"] > graphs) == ("--compile" in options)  # dynamo ran, or did not
    if "bf16" in options:
        assert got["train_loss"] != fp32_training["train_loss"]  # autocast ran
    config = json.loads((run_dir / "config.json").read_text())
    assert config["precision"] == ("bf16" if "bf16" in options else "fp32")
    assert config["engine"]["compile"] == ("--compile" in options)
    assert config["engine"]["channels_last"] == ("--channels-last" in options)
    assert got["train_loss"] == pytest.approx(fp32_training["train_loss"], rel=tolerance["first"])
    for key in ("valid_loss", "test_loss"):
        if key in got:
            assert got[key] == pytest.approx(fp32_training[key], rel=tolerance["after"])


def test_search_with_channels_last_matches_the_default_layout(tmp_path: Path) -> None:
    plain, nhwc = tmp_path / "plain", tmp_path / "nhwc"
    expected, got = record(SEARCH, plain), record(SEARCH, nhwc, "--channels-last")
    assert json.loads((nhwc / "config.json").read_text())["engine"]["channels_last"] is True
    assert got["train_loss"] == pytest.approx(expected["train_loss"], rel=EXACT_ISH["first"])
    assert got["train_arch_loss"] == pytest.approx(expected["train_arch_loss"], rel=EXACT_ISH["after"])  # after the W step
    # The alphas after the one A step are no check: gradients that are zero in exact arithmetic come out as
    # rounding noise either side of zero, and Adam's first step, lr * g / (|g| + 1e-8), turns any g above
    # 1e-8 into a full step of its sign, whichever layout made the noise.
