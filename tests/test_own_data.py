"""Your own data on the first try: recipes sized to the data, a search that says when it learned nothing,
one checkpoint story, and models published without local paths.

The folder data sets here are real images: the handwritten digits scikit-learn ships in its wheel
(`sklearn/datasets/data/digits.csv.gz`, 8x8 pixels, the `demo` extra), written out as PNG files in the
ImageFolder layout a user would have, four classes of them (chance: 25%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gdas_cli.cli import app
from gdas_cli.data import describe, load_images
from gdas_cli.genotype import load_local_genotype
from gdas_cli.movement import NOISE_MOVED, NOISE_RATIO, measure
from gdas_cli.ops import PRIMITIVES
from gdas_cli.search.derive import derive_cell, non_none
from gdas_cli.sizing import DataFacts, Machine, search_sizes, train_sizes
from cli_helpers import assert_one_line_error

runner = CliRunner()
CLASSES = ("zero", "one", "two", "three")


def gdas(*args):
    return runner.invoke(app, [str(a) for a in args])


def digits_folder(root: Path, side: int = 8, test: str | None = "val", share: float = 0.2) -> Path:
    """Four classes of sklearn's real digits as `side`x`side` grey PNGs: root/train/<class>/ and root/<test>/."""
    from PIL import Image

    from gdas_cli.data import _digits_arrays

    pixels, labels = _digits_arrays()
    rng = np.random.RandomState(0)
    for label, name in enumerate(CLASSES):
        index = np.flatnonzero(labels == label)
        rng.shuffle(index)
        held = int(len(index) * share) if test else 0
        for k, i in enumerate(index):
            split = test if k < held else "train"
            folder = root / str(split) / name
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray((pixels[i] / 16 * 255).astype(np.uint8), mode="L")
            image.resize((side, side), Image.Resampling.BILINEAR).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_folder(tmp_path_factory.mktemp("own") / "digits4")


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------------ the rule


def test_describe_reads_a_folder_without_decoding_it(folder: Path) -> None:
    facts = describe(f"folder:{folder}")
    assert (facts.train_images, facts.classes, facts.image_size) == (578, 4, 8)
    assert describe("digits") == DataFacts("digits", 1500, 10, 8)  # the digits' own 8x8 pixels


@pytest.mark.parametrize(
    "facts, machine, expected",
    [
        # the built-in digits on a laptop: 40 epochs of 12 steps at their own 8x8
        (DataFacts("digits", 1500, 10, 8), Machine("cpu", 2), (8, 64, 40, 8, 1)),
        # a small folder of 32 px images: 16 px on a CPU, enough epochs for 30,000 images per half
        (DataFacts("folder:a", 578, 4, 32), Machine("cpu", 2), (16, 64, 104, 8, 1)),
        # tiny: the batch never goes below 16, the epochs stay within 10..240
        (DataFacts("folder:b", 40, 2, 300), Machine("cpu", 1), (16, 16, 240, 8, 1)),
        # CIFAR-sized on a GPU: the paper's supernet, half the paper's 6M images per half
        (DataFacts("folder:c", 50_000, 10, 64), Machine("cuda", 8), (32, 128, 120, 16, 2)),
    ],
)
def test_search_sizes_follow_the_documented_rule(facts: DataFacts, machine: Machine, expected: tuple) -> None:
    sizes = search_sizes(facts, machine)
    got = (sizes["image_size"], sizes["batch_size"], sizes["epochs"], sizes["channels"], sizes["cells_per_stage"])
    assert got == expected
    assert sizes["layout"] == "xautodl" and sizes["arch_weight_decay"] == 0.0 and sizes["workers"] <= machine.cores


@pytest.mark.parametrize(
    "facts, machine, expected",
    [
        (DataFacts("digits", 1500, 10, 8), Machine("cpu", 2), (16, 8, 64, 10, 0.05)),  # the old digits demo recipe
        (DataFacts("folder:a", 578, 4, 32), Machine("cpu", 2), (16, 8, 16, 26, 0.05)),
        (DataFacts("folder:c", 50_000, 10, 32), Machine("cuda", 8), (36, 20, 96, 600, 0.025)),  # the paper's
        (DataFacts("folder:d", 5_000, 10, 32), Machine("cuda", 8), (16, 8, 96, 600, 0.05)),
    ],
)
def test_train_sizes_follow_the_documented_rule(facts: DataFacts, machine: Machine, expected: tuple) -> None:
    sizes = train_sizes(facts, machine)
    assert (sizes["C"], sizes["layers"], sizes["batch_size"], sizes["epochs"], sizes["lr"]) == expected
    assert sizes["image_size"] == 32  # the CIFAR network's input: its auxiliary head needs it


# ------------------------------------------------------------------------------------- folder data


def test_folder_statistics_size_and_layout(folder: Path, tmp_path: Path) -> None:
    data = load_images(f"folder:{folder}", image_size=16)
    assert data.image_size == 16 and data.train.images.shape[1:] == (3, 16, 16) and len(data.test) == 142
    scaled = data.train.images.double() / 255
    assert data.mean == pytest.approx(scaled.mean(dim=(0, 2, 3)).tolist(), abs=1e-9)
    assert data.std == pytest.approx(scaled.std(dim=(0, 2, 3)).tolist(), abs=1e-9)  # grey digits: their own, not ImageNet's
    assert data.extra["classes"] == sorted(CLASSES)
    search_only = load_images(f"folder:{digits_folder(tmp_path / 'trainonly', test=None)}", test=False)
    assert search_only.test is None and len(search_only.train) == 720
    extra = folder / "val" / "four"
    extra.mkdir()
    (extra / "4.png").write_bytes(next((folder / "val" / "zero").iterdir()).read_bytes())
    try:
        line = assert_one_line_error(gdas("train", f"folder:{folder}", "-g", "gdas", "--run-dir", tmp_path / "r"))
    finally:
        (extra / "4.png").unlink()
        extra.rmdir()
    assert "extra 'four'" in line and "train/<class>/<image>" in line and not (tmp_path / "r").exists()


def test_a_channel_that_never_varies_does_not_divide_by_zero(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), colour).save(tmp_path / split / name / f"{i}.png")
    data = load_images(f"folder:{tmp_path}")
    assert data.std[1] == pytest.approx(1 / 255)  # green is 0 everywhere
    assert torch.isfinite(torch.tensor(data.std)).all()


# ------------------------------------------------------------------------------------------- search


@pytest.fixture(scope="module")
def default_search(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`gdas search cnn --dataset folder:...` with no tuning option at all (the sizing rule decides)."""
    run_dir = tmp_path_factory.mktemp("search") / "run"
    result = gdas("search", "cnn", "--dataset", f"folder:{folder}", "--device", "cpu", "--run-dir", run_dir, "--json")
    assert result.exit_code == 0, result.output
    return run_dir, json.loads(result.stdout)


def test_default_folder_search_learns_and_says_so(default_search: tuple[Path, dict]) -> None:
    """Measured: about 90% valid top-1 (chance 25%) and alphas at 2.5-3x their noise, in about a minute."""
    run_dir, summary = default_search
    last = read_lines(run_dir / "metrics.jsonl")[-1]
    assert last["train_arch_top1"] >= 60.0, last
    movement = summary["movement"]
    assert movement["verdict"] == "learned", movement
    assert movement["moved"] >= NOISE_MOVED and movement["signal_to_noise"] >= NOISE_RATIO
    config = json.loads((run_dir / "config.json").read_text())["task"]
    assert config["sources"]["epochs"] == "rule" and config["epochs"] == 104 and config["image_size"] == 8
    assert summary["chosen"]["checkpoint"] == "last" and summary["chosen"]["epoch"] == 104
    genotype = load_local_genotype(summary["genotype"])
    assert genotype.provenance["movement"] == movement and genotype.provenance["dataset"] == "folder"
    assert str(run_dir.parent) not in (run_dir / "genotype.json").read_text()  # the run's name, never a path


def test_show_and_plot_a_searched_cell(default_search: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, _ = default_search
    shown = gdas("genotypes", "show", run_dir / "genotype.json")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("[p=") == 16 and "the alphas learned" in shown.stdout  # 8 edges x 2 cells
    plotted = gdas("plot", "alphas", run_dir, "-o", tmp_path / "alphas.png")
    assert plotted.exit_code == 0 and (tmp_path / "alphas.png").read_bytes()[:4] == b"\x89PNG"


def test_far_too_few_steps_say_noise(folder: Path, tmp_path: Path) -> None:
    """Two steps cannot move the alphas: the summary, derive and the genotype all say so."""
    run_dir = tmp_path / "short"
    result = gdas("search", "cnn", "--dataset", f"folder:{folder}", "--epochs", "1", "--limit-train-batches", "2",
                  "--device", "cpu", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "indistinguishable from noise" in warnings[0] and "--seeds" in warnings[0]
    assert load_local_genotype(str(run_dir / "genotype.json")).provenance["movement"]["verdict"] == "noise"
    derived = gdas("derive", run_dir, "-o", tmp_path / "cell.json")
    assert derived.exit_code == 0 and "indistinguishable from noise" in derived.stderr


def test_the_noise_verdict_on_known_alphas() -> None:
    """Untouched alphas are noise; a consistent preference far beyond the random walk of the steps is not."""
    torch.manual_seed(0)
    flat = 1e-3 * torch.randn(14, len(PRIMITIVES))
    strong = flat.clone()
    strong[:, PRIMITIVES.index("sep_conv_3x3")] += 1.0
    options = {"ops": PRIMITIVES, "n_inputs": 2, "choices": non_none(PRIMITIVES), "arch_lr": 3e-3, "steps": 500}
    for alphas, verdict in ((flat, "noise"), (strong, "learned")):
        cell = derive_cell(torch.softmax(alphas, -1))
        assert measure({"normal": alphas}, {"normal": cell}, **options)["verdict"] == verdict
    random_walk = 3e-3 * 500**0.5 * torch.randn(14, len(PRIMITIVES))  # where 500 Adam steps of noise end
    walked = measure({"normal": random_walk}, {"normal": derive_cell(torch.softmax(random_walk, -1))}, **options)
    assert walked["verdict"] == "noise" and walked["signal_to_noise"] < NOISE_RATIO  # moved, but no more than noise


def test_plan_and_estimate(folder: Path, tmp_path: Path) -> None:
    result = gdas("search", "cnn", "--dataset", f"folder:{folder}", "--epochs", "1", "--limit-train-batches", "24",
                  "--batch-size", "16", "--device", "cpu", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"plan: gdas search cnn on folder:{folder} (578 training images, 4 classes, 8x8), CPU")
    plan = {line.split(":")[0].strip(): line for line in lines[1:6]}
    assert "epochs 1" in plan["you"] and "batch_size 16" in plan["you"]
    assert "image_size 8" in plan["rule"] and "arch_weight_decay 0" in plan["rule"]
    assert "lr_min 0.001" in plan["paper"] and "arch_betas 0.5/0.999" in plan["2019 code"]
    assert any(line.startswith("estimate: about ") for line in lines)


# --------------------------------------------------------------------------------- train and publish


@pytest.fixture(scope="module")
def folder_model(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short training on the folder with the rule's recipe (2 epochs of it), holding 40 images out."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    result = gdas("train", f"folder:{folder}", "-g", "gdas_frc", "-C", "8", "--epochs", "2", "--val-split", "40",
                  "--limit-train-batches", "4", "--device", "cpu", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "result: checkpoint/best, epoch" in result.stdout and "chosen by its valid_top1" in result.stdout
    return run_dir


def test_folder_training_recipe_is_sized_to_the_data(folder_model: Path) -> None:
    task = json.loads((folder_model / "config.json").read_text())["task"]
    assert (task["layers"], task["batch_size"], task["image_size"], task["hflip"]) == (8, 16, 32, True)
    assert task["sources"]["layers"] == "rule" and task["sources"]["C"] == "you" and task["sources"]["hflip"] == "ours"
    assert task["label_names"] == sorted(CLASSES) and task["mean"][0] == task["mean"][2]  # grey: its own statistics


def test_a_published_folder_model_holds_no_local_path(folder_model: Path, folder: Path, tmp_path: Path,
                                                     loopback_hub, monkeypatch) -> None:
    from hub_server import TOKENS

    monkeypatch.setenv("HF_TOKEN", next(iter(TOKENS)))
    out = tmp_path / "export"
    result = gdas("export", folder_model, "-o", out, "--push-to-hub", "test-org/own-digits", "--tag", "v1")
    assert result.exit_code == 0, result.output
    for path in out.iterdir():
        if path.suffix in (".json", ".md"):
            text = path.read_text()
            assert str(folder) not in text and str(folder_model) not in text, path.name
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "folder" and config["pretrained_cfg"]["label_names"] == sorted(CLASSES)
    assert "--dataset folder:PATH" in (out / "README.md").read_text()
    asked = gdas("eval", "--from-hub", "test-org/own-digits@v1")
    assert_one_line_error(asked, "local image folder", "--dataset folder:PATH", "zero")
    report = gdas("eval", "--from-hub", "test-org/own-digits@v1", "--dataset", f"folder:{folder}", "--json")
    assert report.exit_code == 0, report.output
    local = json.loads(gdas("eval", folder_model, "--json").stdout)  # the same checkpoint, the run's choice
    assert json.loads(report.stdout)["test_top1"] == pytest.approx(local["test_top1"])


# ------------------------------------------------------------------------------------ resume, extend


def test_resume_with_more_epochs_extends_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "train"
    tiny = ["-g", "gdas", "-C", "4", "--layers", "3", "--batch-size", "32", "--limit-train-batches", "2",
            "--limit-eval-batches", "1", "--device", "cpu", "--quiet"]
    assert gdas("train", "digits", *tiny, "--epochs", "2", "--run-dir", run_dir).exit_code == 0
    result = gdas("train", "digits", "--resume", run_dir, "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert f"resuming {run_dir} from {run_dir / 'checkpoint' / 'last'} at the start of epoch 3 of 4" in result.stderr
    records = read_lines(run_dir / "metrics.jsonl")
    config = json.loads((run_dir / "config.json").read_text())
    lr, floor = config["task"]["lr"], config["task"]["lr_min"]
    four = [floor + (lr - floor) * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]
    # epochs 1-2 ran the 2-epoch cosine; 3-4 follow the 4-epoch one, as if 4 had been asked for
    assert [r["lr"] for r in records][2:] == pytest.approx(four[2:])
    assert records[3]["drop_path"] == pytest.approx(config["task"]["drop_path"] * 3 / 4)
    assert config["engine"]["epochs"] == config["task"]["epochs"] == 4
    assert config["extended"] == [{"from": 2, "to": 4, "after_epoch": 2}]
    assert_one_line_error(gdas("train", "digits", "--resume", run_dir, "--epochs", "3"), "never shortened")
