"""Turns the runs of scripts/train_digits_zoo.sh into the zoo's shipped digits models.

    python scripts/export_digits_zoo.py RUNS_DIR

For each run (gdas, gdas_frc): `gdas export` of its final epoch (no checkpoint is chosen on the test
split); the auxiliary head (training only, three quarters of the bytes) is dropped, and
config.json, model.safetensors and genotype.json are written to zoo/weights/<name>/; the top-1
error is measured on the digits test split through create_model, and
zoo/<name>.json written with the sha256 and the measured and counted numbers.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from gdas_cli.checkpoint import write_json
from gdas_cli.data import load_images, make_batches
from gdas_cli.export import ExportRequest, export
from gdas_cli.files import sha256_file
from gdas_cli.metrics import count_mult_adds, count_parameters
from gdas_cli.published import load_published_folder
from gdas_cli.zoo import read_entry

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"gdas": "gdas_digits", "gdas_frc": "gdas_frc_digits"}
SHIPPED = ("config.json", "model.safetensors", "genotype.json")
RECIPE = "scripts/train_digits_zoo.sh: C=8, 8 cells, 15 epochs, batch 64, SGD 0.05 cosine to 1e-4, seed 0, CPU"


def test_top1_error(name: str) -> float:
    from gdas_cli import create_model

    model = create_model(name, pretrained=True).eval()
    data = load_images("digits")
    batches = make_batches(data, "test", batch_size=512, device=torch.device("cpu"), train=False)
    correct = total = 0
    with torch.no_grad():
        for images, labels in batches.batches(0):
            correct += int((model(images).argmax(1) == labels).sum())
            total += labels.numel()
    return round(100.0 * (1 - correct / total), 4)


def publish(run_dir: Path, genotype: str, name: str) -> None:
    folder = ROOT / "zoo" / "weights" / name
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export"
        export(ExportRequest(source=str(run_dir), output=out, license="mit"))
        exported = json.loads((out / "config.json").read_text())
        model = load_published_folder(out)
        model.aux_head = None  # used by the training loss only
        model.args = dataclasses.replace(model.args, auxiliary=False)
        model.pretrained_cfg["source"] += ", auxiliary head dropped (scripts/export_digits_zoo.py)"
        model.save_folder(out / "small")
        config = json.loads((out / "small" / "config.json").read_text())
        config |= {k: exported[k] for k in ("dataset", "checkpoint_choice") if k in exported}
        write_json(out / "small" / "config.json", config)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for file in SHIPPED:
            shutil.copy(out / "small" / file, folder / file)
    entry = {
        "schema": "gdas-zoo-entry",
        "schema_version": 1,
        "name": name,
        "description": f"{genotype} cell in a small cifar-layout network (C=8, 8 cells) trained on the digits set",
        "genotype": config["genotype"]["name"] + "@" + config["genotype"]["version"],
        "network": config["network"],
        "dataset": "digits",
        "input_size": [3, 32, 32],
        "weights": {"folder": f"weights/{name}", "sha256": sha256_file(folder / "model.safetensors")},
        "metrics": {},
    }
    path = ROOT / "zoo" / f"{name}.json"
    path.write_text(json.dumps(entry, indent=2) + "\n")
    model = read_entry(path)
    from gdas_cli import create_model

    net = create_model(name, pretrained=True).eval()
    entry["metrics"] = {
        "top1_error": {
            "value": test_top1_error(name),
            "unit": "%",
            "source": "measured",
            "reference": f"digits test split (297 images), final epoch; {RECIPE}",
        },
        "params": {
            "value": count_parameters(net),
            "source": "counted",
            "reference": "gdas_cli.metrics.count_parameters",
        },
        "mult_adds": {
            "value": count_mult_adds(net, (1, 3, 32, 32)),
            "source": "counted",
            "reference": "gdas_cli.metrics.count_mult_adds at 1x3x32x32, conv and linear layers",
        },
    }
    path.write_text(json.dumps(entry, indent=2) + "\n")
    print(name, model.weights, entry["metrics"]["top1_error"]["value"])


if __name__ == "__main__":
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/zoo-digits")
    for genotype, name in MODELS.items():
        publish(runs / genotype, genotype, name)
