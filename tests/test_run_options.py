"""Every shared run option on every engine command is used or refused, never accepted and then ignored.

Each command runs once as it is (the baseline) and once per option, one training step each. An option
is either refused (exit 2, one line naming it, no run folder) or shown at work while the command ran:
- `--precision bf16`: autocast ran, so the first step's loss differs from the fp32 baseline;
- `--channels-last`: a forward pre-hook on every Conv2d saw channels-last inputs;
- `--compile`: torch._dynamo compiled a graph;
- `--deterministic`: torch.use_deterministic_algorithms(True) was called;
- `--sync-bn`: one process has nothing to synchronise, so it is refused everywhere here (under DDP it
  converts the BatchNorms; SyncBatchNorm needs CUDA, so no test here can run it).
`gdas train` with `--compile` builds C++ kernels for a minute: those cases are slow-marked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error, gdas

COMMANDS = {
    "search cnn": ["search", "cnn", "--dataset", "digits", "-C", "8", "-N", "1", "--image-size", "8",
                   "--batch-size", "16", "--epochs", "1"],
    "search cnn nas-bench-201": ["search", "cnn", "--space", "nas-bench-201", "--dataset", "digits", "-C", "4",
                                 "-N", "1", "--image-size", "8", "--batch-size", "16", "--epochs", "1"],
    "search rnn": ["search", "rnn", "--dataset", "demo-text", "--epochs", "1", "--batch-size", "8", "--emsize", "16",
                   "--bptt", "8"],
    "train digits": ["train", "digits", "-g", "gdas", "-C", "4", "--layers", "3", "--batch-size", "16", "--epochs",
                     "1", "--no-aux", "--drop-path", "0", "--limit-eval-batches", "1"],
    "train digits nas-bench-201": ["train", "digits", "-g", "nb201_resnet", "-C", "4", "--layers", "1",
                                   "--batch-size", "16", "--epochs", "1", "--limit-eval-batches", "1"],
    "train demo-text": ["train", "demo-text", "-g", "gdas_rnn", "--epochs", "1", "--batch-size", "8", "--emsize",
                        "16", "--bptt", "8", "--no-test"],
}
OPTIONS = {
    "--precision bf16": ["--precision", "bf16"],
    "--channels-last": ["--channels-last"],
    "--compile": ["--compile"],
    "--deterministic": ["--deterministic"],
    "--sync-bn": ["--sync-bn"],
}
# what each command does with each option; anything else must be refused
USED = {
    "search cnn": {"--precision bf16", "--channels-last", "--deterministic"},
    "search cnn nas-bench-201": {"--precision bf16", "--channels-last", "--deterministic"},
    "search rnn": {"--precision bf16", "--deterministic"},
    "train digits": {"--precision bf16", "--channels-last", "--compile", "--deterministic"},
    "train digits nas-bench-201": {"--precision bf16", "--channels-last", "--compile", "--deterministic"},
    "train demo-text": {"--precision bf16", "--deterministic"},
}


class Watch:
    """What the run did with the options: channels-last conv inputs, compiled graphs, deterministic mode."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from torch._dynamo.utils import counters

        self.counters = counters
        self.graphs_before = counters["stats"]["unique_graphs"]
        self.nhwc_inputs = 0
        self.deterministic_calls: list[bool] = []
        real = torch.use_deterministic_algorithms

        def spy(mode: bool, **kwargs) -> None:
            self.deterministic_calls.append(mode)
            real(mode, **kwargs)

        monkeypatch.setattr(torch, "use_deterministic_algorithms", spy)

        def conv_input(module: torch.nn.Module, args: tuple) -> None:
            if isinstance(module, torch.nn.Conv2d) and args and args[0].dim() == 4:
                x = args[0]
                if x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1 and not x.is_contiguous() and x.is_contiguous(
                        memory_format=torch.channels_last):
                    self.nhwc_inputs += 1

        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(conv_input)

    def close(self) -> None:
        self.handle.remove()
        torch.use_deterministic_algorithms(False)

    @property
    def compiled(self) -> bool:
        return self.counters["stats"]["unique_graphs"] > self.graphs_before


def first_loss(run_dir: Path) -> float:
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    return record["train_loss"]


def run(command: str, run_dir: Path, *extra: str):
    return gdas(*COMMANDS[command], "--limit-train-batches", "1", "--seed", "1", "--device", "cpu", "-q",
                "--run-dir", run_dir, *extra)


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    losses = {}
    for command in COMMANDS:
        run_dir = tmp_path_factory.mktemp("baseline") / "run"
        result = run(command, run_dir)
        assert result.exit_code == 0, (command, result.output)
        losses[command] = first_loss(run_dir)
    return losses


def cases():
    for command in COMMANDS:
        for option in OPTIONS:
            slow = command.startswith("train digits") and option == "--compile"
            yield pytest.param(command, option, id=f"{command}|{option}", marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("command, option", list(cases()))
def test_each_option_is_used_or_refused(command: str, option: str, baselines: dict[str, float], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    watch = Watch(monkeypatch)
    try:
        result = run(command, run_dir, *OPTIONS[option])
    finally:
        watch.close()
    if option not in USED[command]:
        assert_one_line_error(result, option.split()[0])
        assert not run_dir.exists()
        return
    assert result.exit_code == 0, result.output
    engine = json.loads((run_dir / "config.json").read_text())["engine"]
    if option == "--precision bf16":
        assert engine["precision"] == "bf16" and first_loss(run_dir) != baselines[command]
    elif option == "--channels-last":
        assert engine["channels_last"] and watch.nhwc_inputs > 0
    elif option == "--compile":
        assert engine["compile"] and watch.compiled
    elif option == "--deterministic":
        assert engine["deterministic"] and True in watch.deterministic_calls
    if option != "--compile":
        assert not watch.compiled


def test_the_refusals_say_why() -> None:
    from gdas_cli.search.cnn_task import SearchTask

    assert "--compile is for gdas train" in SearchTask.refuses["compile"]


def test_a_seeds_search_refuses_before_writing(tmp_path: Path) -> None:
    result = gdas(*COMMANDS["search cnn"], "--seeds", "2", "--compile", "-q", "--run-dir", tmp_path / "seeds")
    assert_one_line_error(result, "--compile")
    assert not (tmp_path / "seeds").exists()
