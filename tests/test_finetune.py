"""Fine-tuning: `gdas train --init` starts from published weights (here the zoo's shipped digits model)
strictly, with a fresh classifier for a new class count, and records where the weights came from."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gdas_cli import GdasError, NetworkArgs, build_network, create_model, load_genotype
from gdas_cli.cli import app
from gdas_cli.training.image import start_from

runner = CliRunner()
CLASSES = (3, 5, 8)  # a 3-class task the shipped model never saw as such
SMALL = ["-C", "8", "--layers", "8", "--epochs", "1", "--batch-size", "32", "--no-aux", "--workers", "0",
         "--device", "cpu", "--quiet", "--json"]


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
    """Real handwritten digits (scikit-learn's load_digits) as 32x32 PNGs in train/ and val/ class folders."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    bunch = sklearn_datasets.load_digits()
    root = tmp_path_factory.mktemp("digits-folder")
    for label in CLASSES:
        images = bunch.images[bunch.target == label]
        cut = len(images) * 2 // 3
        for split, part in (("train", images[:cut]), ("val", images[cut:])):
            folder = root / split / f"digit-{label}"
            folder.mkdir(parents=True)
            for i, pixels in enumerate(part):
                gray = Image.fromarray((pixels * 255 / 16).astype(np.uint8)).resize((32, 32), Image.Resampling.BILINEAR)
                gray.convert("RGB").save(folder / f"{i}.png")
    return root


def _train(root, run_dir, *extra):
    result = runner.invoke(app, ["train", f"folder:{root}", "--genotype", "gdas_frc", *SMALL, "--run-dir", str(run_dir),
                                 *extra])
    assert result.exit_code == 0, result.output
    return json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["test_top1"]


def test_fine_tuning_the_shipped_digits_model_beats_training_from_scratch(digit_folder, tmp_path):
    tuned = _train(digit_folder, tmp_path / "tuned", "--init", "gdas_frc_digits", "--seed", "0")
    scratch = _train(digit_folder, tmp_path / "scratch", "--seed", "0")
    print(f"after one epoch: fine-tuned {tuned:.1f}%, from scratch {scratch:.1f}% top-1 on {len(CLASSES)} classes")
    assert tuned >= 70.0 and tuned >= scratch + 30.0  # measured: 84.4% against 32.2% (chance: 33.3%)
    init = json.loads((tmp_path / "tuned" / "config.json").read_text())["task"]["init"]
    assert init["ref"] == "gdas_frc_digits" and init["kind"] == "zoo" and len(init["sha256"]) == 64
    assert init["fresh"] == ["classifier"]  # 10 digits -> 3 classes; nothing else starts fresh
    assert json.loads((tmp_path / "scratch" / "config.json").read_text())["task"]["init"] is None


def test_init_is_strict_about_the_architecture():
    model = build_network(load_genotype("gdas_frc"), NetworkArgs(C=8, layers=5, num_classes=3))
    with pytest.raises(GdasError, match="--init gdas_frc_digits: a cifar network with C=8 and 8 cells, but this run"):
        start_from(model, create_model("gdas_frc_digits", pretrained=True), "gdas_frc_digits")
    other = build_network(load_genotype("gdas"), NetworkArgs(C=8, layers=8, num_classes=3))
    with pytest.raises(GdasError, match="weights of gdas_frc@1.0.0, but --genotype is gdas@1.0.0"):
        start_from(other, create_model("gdas_frc_digits", pretrained=True), "gdas_frc_digits")
    same = build_network(load_genotype("gdas_frc"), NetworkArgs(C=8, layers=8, num_classes=10, auxiliary=True))
    source = create_model("gdas_frc_digits", pretrained=True)
    assert start_from(same, source, "x") == ["aux_head"]  # the shipped model has no auxiliary head
    assert all((same.state_dict()[k] == v).all() for k, v in source.state_dict().items())
