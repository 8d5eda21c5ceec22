"""Language-model training and RNN search on the engine: loss goes down, the ASGD switch rule and its
effect, exact resume after a kill, perplexity evaluation, and the CLI end to end with bad input."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gdas_cli import language
from gdas_cli.cli.search import app as search_app
from gdas_cli.cli.train import app as train_app
from gdas_cli.engine import EngineConfig, RunInterrupted, Runtime, config_from_dict, resume_settings
from gdas_cli.evaluate import evaluate_lm_run
from gdas_cli.search import rnn_task
from gdas_cli.training import lm as lm_training
from gdas_cli.genotype import load_local_genotype as load_genotype
from cli_helpers import assert_one_line_error

TINY_TRAIN = {"batch_size": 8, "emsize": 16, "bptt": 8, "eval_batch_size": 10, "test_batch_size": 10}
TINY_SEARCH = {"batch_size": 8, "emsize": 16, "bptt": 8}
ENGINE = {"device": "cpu", "quiet": True}
runner = CliRunner()


def run_lm_training(config: lm_training.LMTrainConfig, engine: dict) -> dict:
    return lm_training.run_lm_training(config, EngineConfig(epochs=config.epochs, **engine))


def run_rnn_search(config: rnn_task.LMSearchConfig, engine: dict) -> dict:
    return rnn_task.run_rnn_search(config, EngineConfig(epochs=config.epochs, **engine))


def resume_run(run_dir: Path) -> tuple[str, dict]:
    """What `--resume RUN` does with no other option: the saved configs, run on."""
    kind = json.loads((run_dir / "config.json").read_text())["kind"]
    if kind == "lm":
        task, engine = resume_settings(run_dir, lm_training.LMTrainTask, {})
        config = config_from_dict(lm_training.LMTrainConfig, task, "config.json")
        return kind, lm_training.run_lm_training(config, engine, resume=True)
    task, engine = resume_settings(run_dir, rnn_task.RNNSearchTask, {})
    config = config_from_dict(rnn_task.LMSearchConfig, task, "config.json")
    return kind, rnn_task.run_rnn_search(config, engine, resume=True)


# ------------------------------------------------------------------------------------------ ASGD rule


@pytest.mark.parametrize(
    "history, loss, nonmono, switch",
    [
        ([5.0, 4.0, 3.9, 3.8, 3.7], 9.0, 5, False),  # only 5 SGD epochs logged: never before the 6th
        ([4.0, 5.0, 4.5, 4.4, 4.3, 4.2], 4.1, 5, True),  # worse than 4.0, the best before the last 5
        ([5.0, 4.0, 3.9, 3.8, 3.7, 3.6], 4.9, 5, False),  # better than 5.0, the only loss before the window
        ([4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], 4.5, 5, True),  # no improvement on 4.0 within the window
        ([4.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0], 3.9, 5, False),  # a new best: keep SGD
        ([3.0, 2.0], 2.5, 0, True),  # nonmono 0: any loss above the best so far switches
    ],
)
def test_asgd_switch_rule(history: list[float], loss: float, nonmono: int, switch: bool) -> None:
    assert lm_training.should_switch_to_asgd(history, loss, nonmono) is switch


def test_asgd_switch_rule_is_strict_at_equality() -> None:
    assert not lm_training.should_switch_to_asgd([1.0] * 6, 1.0, 5)


def test_segment_schedule_is_seeded_variable_and_covers_the_data() -> None:
    def schedule(seed: int, jitter: bool) -> list[tuple[int, int]]:
        return language.segment_schedule(1000, 35, torch.Generator().manual_seed(seed), jitter)

    train = schedule(0, jitter=True)
    assert train == schedule(0, jitter=True) and train != schedule(1, jitter=True)
    assert all(5 <= n <= 55 for _, n in train[:-1]) and len({n for _, n in train}) > 5
    starts = [s for s, _ in train]
    assert starts[0] == 0 and all(a + n == b for (a, n), b in zip(train, starts[1:]))
    assert train[-1][0] + train[-1][1] <= 999  # targets need one row more
    search = schedule(0, jitter=False)
    assert {n for _, n in search[:-1]} <= {35, 17}


# ------------------------------------------------------------------------------------------ training


def train_config(**overrides) -> lm_training.LMTrainConfig:
    return lm_training.resolve_train_config("demo-text", load_genotype("gdas_rnn"), {**TINY_TRAIN, **overrides})


def test_a_few_training_steps_lower_the_validation_loss() -> None:
    torch.manual_seed(0)
    task = lm_training.LMTrainTask(train_config())
    task.setup(Runtime(device=torch.device("cpu")))
    before = language.stream_loss(task.model, task.valid_eval, 8)
    for segment in list(task.train_batches().batches(0))[:12]:
        out = task.train_step(segment, task.rt)
        assert set(out) == {"loss", "n"} and out["n"].item() == segment.targets.numel()
    after = language.stream_loss(task.model, task.valid_eval, 8)
    assert after < before - 0.5, (before, after)


def test_training_run_evaluates_perplexity_and_writes_safetensors(tmp_path: Path) -> None:
    run_dir = tmp_path / "lm"
    result = run_lm_training(train_config(epochs=2), {**ENGINE, "run_dir": str(run_dir), "limit_train_batches": 5})
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and all(r["optimizer"] == "sgd" for r in records)
    assert all(r["tokens_per_s"] > 0 and "images_per_s" not in r for r in records)  # a language model reads tokens
    assert records[1]["valid_ppl"] == pytest.approx(torch.tensor(records[1]["valid_loss"]).exp().item(), rel=1e-6)
    assert result["best"] == min(r["valid_loss"] for r in records)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "lm" and config["task"]["genotype"]["name"] == "gdas_rnn"
    assert config["task"]["corpus"]["vocab"] == 2002
    metrics = evaluate_lm_run(run_dir)
    assert metrics["valid_loss"] == pytest.approx(result["best"], rel=1e-6)
    assert metrics["test_ppl"] > 1 and metrics["averaged"] is False
    assert metrics["params"] == 2002 * 16 + 32 * 32 + 8 * 16 * 32 + 2002
    assert evaluate_lm_run(run_dir, split="valid").keys() == metrics.keys() - {"test_loss", "test_ppl"}


def test_switch_to_asgd_then_evaluate_and_save_averaged_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(lm_training, "should_switch_to_asgd", lambda history, loss, nonmono: True)
    run_dir = tmp_path / "asgd"
    run_lm_training(train_config(epochs=3), {**ENGINE, "run_dir": str(run_dir), "limit_train_batches": 4})
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["optimizer"] for r in records] == ["asgd", "asgd", "asgd"]  # switched after epoch 1's evaluation
    state = torch.load(run_dir / "checkpoint" / "last" / "state.pt", weights_only=True)
    assert state["task"]["optimizer_kind"] == "asgd" and state["task"]["switched_at"] == 1
    last = run_dir / "checkpoint" / "last"
    raw, averaged = load_file(str(last / "model.safetensors")), load_file(str(last / "averaged.safetensors"))
    assert raw.keys() == averaged.keys() and any(not torch.equal(raw[k], averaged[k]) for k in raw)
    # the recorded validation loss of epoch 3 is that of the averaged weights
    metrics = evaluate_lm_run(last, split="valid")
    assert metrics["averaged"] is True
    assert metrics["valid_loss"] == pytest.approx(records[-1]["valid_loss"], rel=1e-6)


def interrupt_at(monkeypatch, cls: type, step: int) -> None:
    """Send ourselves SIGINT during the `step`-th train step (1-based), as Ctrl-C would."""
    original = cls.train_step
    calls = {"n": 0}

    def train_step(self, batch, rt):
        calls["n"] += 1
        if calls["n"] == step:
            signal.raise_signal(signal.SIGINT)
        return original(self, batch, rt)

    monkeypatch.setattr(cls, "train_step", train_step)


def same_weights(a: Path, b: Path) -> bool:
    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_killed_training_resumes_to_the_same_weights(tmp_path: Path, monkeypatch) -> None:
    # switch to ASGD after epoch 1, so the kill lands mid-epoch with ASGD state and a carried hidden state
    monkeypatch.setattr(lm_training, "should_switch_to_asgd", lambda history, loss, nonmono: len(history) == 0)
    engine = {**ENGINE, "limit_train_batches": 5}
    run_lm_training(train_config(epochs=3), {**engine, "run_dir": str(tmp_path / "straight")})
    with monkeypatch.context() as patch:
        interrupt_at(patch, lm_training.LMTrainTask, 8)
        with pytest.raises(RunInterrupted, match="epoch 2 step 3"):
            run_lm_training(train_config(epochs=3), {**engine, "run_dir": str(tmp_path / "killed")})
    kind, result = resume_run(tmp_path / "killed")
    assert kind == "lm" and result["last"]["epoch"] == 3
    for name in ("model.safetensors", "averaged.safetensors"):
        assert same_weights(tmp_path / "straight/checkpoint/last" / name, tmp_path / "killed/checkpoint/last" / name)
    straight = (tmp_path / "straight/metrics.jsonl").read_text().splitlines()
    resumed = (tmp_path / "killed/metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "tokens_per_s")} for x in lines]
    assert strip(straight) == strip(resumed)


def test_killed_search_resumes_to_the_same_alphas_and_genotype(tmp_path: Path, monkeypatch) -> None:
    def config() -> rnn_task.LMSearchConfig:
        return rnn_task.resolve_search_config("demo-text", {**TINY_SEARCH, "epochs": 2})

    engine = {**ENGINE, "limit_train_batches": 4}
    run_rnn_search(config(), {**engine, "run_dir": str(tmp_path / "straight")})
    with monkeypatch.context() as patch:
        interrupt_at(patch, rnn_task.RNNSearchTask, 6)
        with pytest.raises(RunInterrupted):
            run_rnn_search(config(), {**engine, "run_dir": str(tmp_path / "killed")})
    assert not (tmp_path / "killed/genotype.json").exists()
    kind, _ = resume_run(tmp_path / "killed")
    assert kind == "search"
    assert same_weights(tmp_path / "straight/checkpoint/last/model.safetensors",
                        tmp_path / "killed/checkpoint/last/model.safetensors")
    for name in ("alphas.jsonl", "genotypes.jsonl", "genotype.json"):  # a genotype records the run's name
        assert (tmp_path / "straight" / name).read_text() == (tmp_path / "killed" / name).read_text().replace(
            '"run": "killed"', '"run": "straight"'), name


def test_search_a_step_zeroes_alpha_gradients_and_computes_no_weight_gradients() -> None:
    torch.manual_seed(0)
    task = rnn_task.RNNSearchTask(rnn_task.resolve_search_config("demo-text", TINY_SEARCH))
    task.setup(Runtime(device=torch.device("cpu")))
    seen = []
    original_step = task.a_optimizer.step

    def step(*args, **kwargs):
        seen.append((task.model.alphas_recurrent.grad.clone(), [p.grad for p in task.model.weights()]))
        return original_step(*args, **kwargs)

    task.a_optimizer.step = step
    segments = list(task.train_batches().batches(0))[:2]
    for segment in segments:
        task.train_step(segment, task.rt)
    (first, weights_first), (second, _) = seen
    assert all(g is None for g in weights_first)  # zeroed after the W step, untouched by the A step
    # the second A step's gradient is its own (not the sum with the first's): recompute it alone
    assert not torch.allclose(second, first)
    assert task.model.alphas_recurrent.grad is None  # zeroed (set to None) after the step


# ------------------------------------------------------------------------------------------ CLI




def test_cli_search_then_train_then_evaluate_on_demo_text(tmp_path: Path) -> None:
    genotype_path = tmp_path / "cell.json"
    searched = runner.invoke(search_app, [
        "rnn", "--dataset", "demo-text", "--epochs", "1", "--batch-size", "8", "--emsize", "16", "--bptt", "8",
        "--limit-train-batches", "3", "--run-dir", str(tmp_path / "search"), "--device", "cpu", "-q",
        "-o", str(genotype_path),
    ])
    assert searched.exit_code == 0, searched.output
    assert searched.stdout.strip() == str(genotype_path)  # --quiet: the one result line
    genotype = load_genotype(str(genotype_path))
    assert genotype.kind == "rnn" and genotype.provenance["source"] == "gdas search rnn"
    trained = runner.invoke(train_app, [
        "demo-text", "--genotype", str(genotype_path), "--epochs", "1", "--batch-size", "8", "--emsize", "16",
        "--bptt", "8", "--test-batch-size", "10", "--limit-train-batches", "3", "--run-dir", str(tmp_path / "lm"),
        "--device", "cpu", "-q",
    ])
    assert trained.exit_code == 0, trained.output
    assert "test_ppl" in trained.stdout and "valid_ppl" in trained.stdout
    metrics = evaluate_lm_run(tmp_path / "lm")
    assert metrics["genotype"] == genotype.ref and metrics["test_ppl"] > 1


def test_cli_resume_of_a_finished_run_is_a_no_op(tmp_path: Path) -> None:
    args = ["demo-text", "--genotype", "gdas_rnn", "--epochs", "1", "--batch-size", "8", "--emsize", "16",
            "--bptt", "8", "--limit-train-batches", "2", "--run-dir", str(tmp_path / "lm"), "--device", "cpu", "-q",
            "--no-test"]
    assert runner.invoke(train_app, args).exit_code == 0
    before = (tmp_path / "lm/metrics.jsonl").read_text()
    again = runner.invoke(train_app, ["demo-text", "--resume", str(tmp_path / "lm"), "-q", "--no-test"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "lm/metrics.jsonl").read_text() == before


def test_cli_bad_input_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for split in ("train", "valid", "test"):
        (empty / f"ptb.{split}.txt").write_text("a b c\n" if split != "valid" else "", encoding="utf-8")
    cases = [
        (train_app, ["ptb", "--genotype", "gdas_rnn", "--data-dir", str(tmp_path / "missing")], ["no such directory"]),
        (train_app, ["ptb", "--genotype", "gdas_rnn", "--data-dir", str(tmp_path)], ["no train split", "ptb.train.txt"]),
        (train_app, ["ptb", "--genotype", "gdas_rnn", "--data-dir", str(empty)], ["ptb.valid.txt", "empty"]),
        (train_app, ["ptb", "--genotype", "gdas_rnn"], ["--data-dir is required"]),
        (train_app, ["ptb", "--genotype", "gdas_frc", "--data-dir", str(empty)], ["cnn genotype", "rnn genotype"]),
        (train_app, ["wt2"], ["--genotype is required"]),
        (train_app, ["demo-text", "--genotype", "no_such_cell"], ["unknown genotype name"]),
        (train_app, ["demo-text", "--resume", str(tmp_path)], ["no config.json"]),
        (search_app, ["rnn", "--dataset", "imdb"], ["unknown corpus"]),
        (search_app, ["rnn", "--dataset", "demo-text", "--sampling", "cell"], ["--sampling"]),
        (search_app, ["rnn", "--dataset", "wt2", "--data-dir", str(empty)], ["empty"]),
    ]
    for app, args, needles in cases:
        assert_one_line_error(runner.invoke(app, args), *needles)
    assert not any((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else True


def test_evaluate_lm_run_rejects_other_runs_and_other_corpora(tmp_path: Path) -> None:
    from gdas_cli import GdasError

    with pytest.raises(GdasError, match="neither a run folder"):
        evaluate_lm_run(tmp_path)
    run_dir = tmp_path / "lm"
    run_lm_training(train_config(epochs=1), {**ENGINE, "run_dir": str(run_dir), "limit_train_batches": 2})
    other = tmp_path / "other"
    other.mkdir()
    for split in ("train", "valid", "test"):
        (other / f"{split}.txt").write_text("a b c d\n" * 50, encoding="utf-8")
    with pytest.raises(GdasError, match="vocabulary of 5 words, but .* was trained on 2002"):
        evaluate_lm_run(run_dir, dataset="ptb", data_dir=str(other))


def test_root_app_exposes_the_commands_and_gdas_eval_reports_perplexity(tmp_path: Path) -> None:
    from gdas_cli.cli import app

    assert "rnn" in runner.invoke(app, ["search", "--help"]).stdout
    listed = runner.invoke(app, ["train", "--help"]).stdout
    assert all(name in listed for name in ("ptb", "wt2", "demo-text"))
    run_dir = tmp_path / "lm"
    run_lm_training(train_config(epochs=1), {**ENGINE, "run_dir": str(run_dir), "limit_train_batches": 2})
    result = runner.invoke(app, ["eval", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics == evaluate_lm_run(run_dir)
    assert metrics["test_ppl"] > 1 and metrics["params"] > 0


def test_rnn_genotype_given_to_train_cifar10_is_one_line_exit_2(tmp_path: Path) -> None:
    from gdas_cli.cli import app

    result = runner.invoke(app, ["train", "cifar10", "--genotype", "gdas_rnn", "--data-dir", str(tmp_path)])
    assert_one_line_error(result, "rnn genotype", "CNN")
