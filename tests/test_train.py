"""`gdas train` and `gdas eval` end to end on the real digits data, recipes, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gdas_cli.cli import app
from gdas_cli.genotype import load_local_genotype as load_genotype
from gdas_cli.metrics import count_mult_adds, count_parameters
from gdas_cli.training.image import make_config, make_scheduler
from gdas_cli.weights import load_network, read_metadata
from cli_helpers import assert_one_line_error

runner = CliRunner()
# a tiny network on the real 32x32 digits: a few steps, a couple of seconds on one CPU thread
TINY = ["-C", "4", "--layers", "3", "--batch-size", "32", "--limit-train-batches", "3", "--limit-eval-batches", "2",
        "--device", "cpu", "--quiet"]
EVAL_KEYS = {"checkpoint", "genotype", "dataset", "split", "images", "test_top1", "test_top5", "test_loss", "params",
             "mult_adds", "images_per_s", "device", "network", "checkpoint_choice"}


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])




@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("train") / "digits-run"
    result = run("train", "digits", "--genotype", "gdas", "--epochs", "2", *TINY, "--val-split", "100", "--seed", "3",
                 "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert f"gdas eval {run_dir}" in result.stdout
    return run_dir


def test_train_writes_the_run_directory(trained):
    assert {"config.json", "metrics.jsonl", "checkpoint"} <= {p.name for p in trained.iterdir()}
    for which in ("last", "best"):
        files = {p.name for p in (trained / "checkpoint" / which).iterdir()}
        assert {"model.safetensors", "state.pt", "progress.json"} <= files
    config = json.loads((trained / "config.json").read_text())
    assert config["kind"] == "train" and config["task"]["dataset"] == "digits"
    assert config["task"]["C"] == 4 and config["task"]["layers"] == 3 and config["task"]["num_classes"] == 10
    # digits is sized by the rule (sizing.train_sizes): lr 0.05, drop-path 0.1, the options given are yours
    assert config["task"]["lr"] == 0.05 and config["engine"]["limit_train_batches"] == 3
    assert config["task"]["sources"]["lr"] == "rule" and config["task"]["sources"]["C"] == "you"
    assert config["selection"] == {"checkpoint": "best", "by": "valid_top1", "mode": "max"}
    assert config["task"]["genotype"] == load_genotype("gdas").to_dict()
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert {"train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr", "drop_path", "seconds",
                "images_per_s", "valid_loss", "valid_top1", "valid_top5"} <= set(record)
        assert 0 <= record["test_top1"] <= record["test_top5"] <= 100
    assert records[0]["drop_path"] == 0 and records[1]["drop_path"] == pytest.approx(0.1 / 2)
    assert records[1]["lr"] < records[0]["lr"]  # cosine
    genotype, args = read_metadata(trained / "checkpoint" / "last" / "model.safetensors")
    assert genotype.name == "gdas" and args.C == 4 and args.layers == 3 and args.auxiliary
    # what a published model needs, recorded from the data; the validation split, recorded with its seed
    assert config["task"]["label_names"] == [str(d) for d in range(10)] and len(config["task"]["mean"]) == 3
    assert config["task"]["val_split"] == 100 and config["task"]["split_seed"] == 3
    split = json.loads((trained / "split.json").read_text())
    assert split["seed"] == 3 and len(split["valid"]) == 100 and len(split["train"]) == 1400
    assert not set(split["valid"]) & set(split["train"])


def test_without_a_validation_split_there_is_no_best(tmp_path):
    run_dir = tmp_path / "run"
    result = run("train", "digits", "--genotype", "gdas", "--epochs", "1", *TINY, "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert not (run_dir / "checkpoint" / "best").exists() and not (run_dir / "split.json").exists()
    assert "valid_top1" not in json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    refused = run("eval", run_dir, "--checkpoint", "best", "--device", "cpu")
    assert refused.exit_code == 2 and "trained without --val-split" in refused.output
    report = json.loads(run("eval", run_dir, "--json", "--limit-batches", "1", "--device", "cpu").stdout)
    assert report["checkpoint_choice"] == "final epoch (no selection)" and report["split"] == "test"


def test_eval_json_keys_and_counts(trained):
    result = run("eval", trained, "--json", "--limit-batches", "1", "--batch-size", "64", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == EVAL_KEYS
    assert report["images"] == 64 and report["dataset"] == "digits" and report["split"] == "test"
    assert 0 <= report["test_top1"] <= report["test_top5"] <= 100
    model = load_network(trained / "checkpoint" / "last" / "model.safetensors")
    assert report["params"] == count_parameters(model)
    assert report["mult_adds"] == count_mult_adds(model, (1, 3, 32, 32))
    text = run("eval", trained, "--checkpoint", "best", "--limit-batches", "1", "--device", "cpu")
    assert text.exit_code == 0 and "test_top1" in text.stdout and "mult-adds" in text.stdout
    assert "checkpoint: best valid_top1 (100 training images held out, seed 3); measured on the test" in (
        " ".join(text.stdout.split())
    )


def test_eval_matches_the_recorded_test_metrics_of_the_chosen_epoch(trained):
    """eval and export take the checkpoint the run chose (best by valid_top1 here); --checkpoint last the final one."""
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: (r["valid_top1"], -r["epoch"]))
    for extra, record in (((), best), (("--checkpoint", "last"), records[-1])):
        report = json.loads(run("eval", trained, "--json", "--limit-batches", "2", "--batch-size", "32", *extra).stdout)
        assert report["test_top1"] == pytest.approx(record["test_top1"])  # the same names as metrics.jsonl
        assert report["test_loss"] == pytest.approx(record["test_loss"], rel=1e-5)
    valid = run("eval", trained, "--json", "--split", "valid", "--limit-batches", "2", "--batch-size", "32")
    report = json.loads(valid.stdout)  # the held-out images, as training measured them (first 2 batches)
    assert report["images"] == 64 and report["valid_top1"] == pytest.approx(best["valid_top1"])


def test_resume_of_a_finished_run_changes_nothing(trained):
    before = (trained / "metrics.jsonl").read_text()
    result = run("train", "digits", "--resume", trained, "--quiet")
    assert result.exit_code == 0, result.output
    assert (trained / "metrics.jsonl").read_text() == before


def test_folder_dataset_both_spellings(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            folder = tmp_path / "flowers" / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40, 36), tuple(max(0, c - 20 * i) for c in colour)).save(folder / f"{i}.png")
    args = ["-g", "gdas_frc", "-C", "8", "--layers", "3", "--epochs", "1", "--batch-size", "4", "--workers", "0",
            "--device", "cpu", "--quiet"]
    colon = run("train", f"folder:{tmp_path / 'flowers'}", *args, "--run-dir", tmp_path / "a")
    assert colon.exit_code == 0, colon.output
    spaced = run("train", "folder", tmp_path / "flowers", *args, "--run-dir", tmp_path / "b")
    assert spaced.exit_code == 0, spaced.output
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["task"]["dataset"] == f"folder:{tmp_path / 'flowers'}" and config["task"]["num_classes"] == 2
    assert (tmp_path / "b" / "checkpoint" / "last" / "model.safetensors").is_file()


def test_recipes_follow_the_paper():
    cifar = make_config("cifar10", load_genotype("gdas"), {})
    assert (cifar.C, cifar.layers, cifar.batch_size, cifar.epochs) == (36, 20, 96, 600)
    assert (cifar.lr, cifar.lr_min) == (0.025, 1e-4)
    assert (cifar.momentum, cifar.weight_decay, cifar.grad_clip, cifar.aux_weight, cifar.drop_path, cifar.cutout) == \
        (0.9, 3e-4, 5.0, 0.4, 0.2, 16)
    assert cifar.schedule == "cosine" and not cifar.nesterov and cifar.label_smoothing == 0
    imagenet = make_config("imagenet", load_genotype("gdas"), {})
    assert (imagenet.C, imagenet.layers, imagenet.batch_size, imagenet.epochs) == (50, 14, 128, 250)
    assert (imagenet.lr, imagenet.schedule, imagenet.lr_gamma, imagenet.nesterov) == (0.1, "exponential", 0.97, True)
    assert (imagenet.weight_decay, imagenet.label_smoothing, imagenet.aux_weight) == (3e-5, 0.1, 0.4)
    assert make_config("imagenet", load_genotype("gdas_frc"), {}).C == 52
    override = make_config("cifar100", load_genotype("gdas"), {"lr": 0.1, "epochs": None, "C": 16})
    assert (override.lr, override.epochs, override.C) == (0.1, 600, 16)


def lrs_of(dataset: str, epochs: int = 4) -> list[float]:
    cfg = make_config(dataset, load_genotype("gdas"), {"epochs": epochs})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg)
    lrs = []
    for _ in range(epochs + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_lr_schedules():
    cifar = lrs_of("cifar10")
    assert cifar[0] == 0.025 and cifar[-1] == pytest.approx(1e-4)  # cosine to 1e-4, as the 2019 code
    assert cifar[2] == pytest.approx(1e-4 + (0.025 - 1e-4) / 2)  # half way: the cosine midpoint
    assert lrs_of("imagenet") == pytest.approx([0.1 * 0.97 ** e for e in range(5)])


# ------------------------------------------------------------------------------------------ bad input


def test_unknown_dataset(tmp_path):
    result = run("train", "mnist", "-g", "gdas", "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "mnist", "unknown dataset", "digits", "folder:PATH")
    assert not (tmp_path / "r").exists()


def test_missing_imagenet_folder(tmp_path):
    result = run("train", "imagenet", "-g", "gdas", "--data-dir", tmp_path / "nowhere", "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "--data-dir", "ImageNet", "train")
    assert not (tmp_path / "r").exists()


def test_missing_cifar_says_where_to_put_it(tmp_path):
    result = run("train", "cifar10", "-g", "gdas", "--data-dir", tmp_path, "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "CIFAR-10", "cifar-10-batches-py", "--download")
    assert not (tmp_path / "r").exists()


def test_missing_or_empty_folder(tmp_path):
    assert_one_line_error(run("train", f"folder:{tmp_path / 'none'}", "-g", "gdas"), "no such folder")
    (tmp_path / "empty" / "train" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "val" / "cls").mkdir(parents=True)
    result = run("train", f"folder:{tmp_path / 'empty'}", "-g", "gdas", "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "no images")
    assert not (tmp_path / "r").exists()


def test_rnn_genotype_is_refused(tmp_path):
    result = run("train", "digits", "-g", "gdas_rnn", "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "--genotype", "rnn", "cnn")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--epochs", "0"), ("--drop-path", "1.5"),
                                           ("--precision", "fp8"), ("--schedule", "step")])
def test_bad_values(tmp_path, option, value):
    result = run("train", "digits", "-g", "gdas", option, value, "--run-dir", tmp_path / "r")
    assert_one_line_error(result, option)
    assert not (tmp_path / "r").exists()


def test_missing_genotype(tmp_path):
    assert_one_line_error(run("train", "digits", "--run-dir", tmp_path / "r"), "--genotype", "required")


def test_non_empty_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text("precious\n")
    result = run("train", "digits", "-g", "gdas", "--run-dir", tmp_path / "r", *TINY)
    assert_one_line_error(result, "not empty", "--resume")
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == "precious\n"


def test_checkpoint_of_another_genotype(trained):
    before = (trained / "checkpoint" / "last" / "model.safetensors").read_bytes()
    result = run("eval", trained, "--genotype", "gdas_frc")
    assert_one_line_error(result, "model.safetensors", "do not fit", "gdas_frc@")
    assert (trained / "checkpoint" / "last" / "model.safetensors").read_bytes() == before


def test_resume_refuses_changed_settings_and_other_datasets(trained):
    before = (trained / "metrics.jsonl").read_text()
    assert_one_line_error(run("train", "digits", "--resume", trained, "--lr", "0.5"), "--lr", "0.5", "keeps its config")
    assert_one_line_error(run("train", "digits", "--resume", trained, "-g", "gdas_frc"), "--genotype")
    assert_one_line_error(run("train", "cifar10", "--resume", trained), "digits")
    assert_one_line_error(run("train", "digits", "--resume", trained.parent / "nothing"), "config.json")
    assert (trained / "metrics.jsonl").read_text() == before


def test_eval_bad_inputs(tmp_path, trained):
    assert_one_line_error(run("eval", tmp_path / "missing"), "no such run folder")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    assert_one_line_error(run("eval", tmp_path / "junk.safetensors"), "junk.safetensors")
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((trained / "checkpoint" / "last" / "model.safetensors").read_bytes())
    assert_one_line_error(run("eval", lone), "--dataset")
    assert_one_line_error(run("eval", lone, "--dataset", "digits", "--split", "valid"), "--split valid", "--val-split")


def test_mixed_precision_and_channels_last_on_cpu(tmp_path):
    """fp16 autocast with loss scaling: the GradScaler state is checkpointed with the run."""
    from gdas_cli.checkpoint import load_state

    run_dir = tmp_path / "fp16"
    result = run("train", "digits", "-g", "gdas", "--epochs", "1", *TINY, "--precision", "fp16", "--channels-last",
                 "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["precision"] == "fp16" and config["engine"]["channels_last"]
    state = load_state(run_dir / "checkpoint" / "last" / "state.pt")
    assert state["scaler"]["scale"] > 0
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["train_loss"] == pytest.approx(2.3, abs=0.3)


def test_eval_hands_language_model_runs_to_lm(tmp_path, monkeypatch):
    import gdas_cli.evaluate

    run_dir = tmp_path / "lm-run"
    (run_dir / "checkpoint" / "last").mkdir(parents=True)
    (run_dir / "checkpoint" / "last" / "model.safetensors").write_bytes(b"")  # never read: config.json says lm
    config = {"kind": "lm", "engine": {}, "task": {"genotype": {"kind": "rnn"}}}
    (run_dir / "config.json").write_text(json.dumps(config))
    calls = []
    def fake(path, dataset=None, split="test", data_dir=None, test_batch_size=None):
        calls.append((path, split, test_batch_size))
        return {"ppl": 1.0}

    monkeypatch.setattr(gdas_cli.evaluate, "evaluate_lm_run", fake)
    result = run("eval", run_dir, "--json", "--split", "valid")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ppl": 1.0} and calls == [(run_dir, "valid", None)]
    assert run("eval", run_dir, "--json", "--test-batch-size", "1").exit_code == 0
    assert calls[-1] == (run_dir, "test", 1)  # the paper-exact perplexity stays one option away
