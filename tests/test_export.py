"""`gdas export`: sources (run folder, checkpoint, genotype), the published folder and its model
card, ONNX and torch.export files that match PyTorch (with their sidecar JSON), self-describing
configs (pretrained_cfg), `gdas eval EXPORT_DIR`, and failures that leave nothing behind.

Runs are laid out as gdas_cli/engine/ writes them (config.json, metrics.jsonl with test_top1 and
test_top5 in percent, checkpoint/{best,last}/model.safetensors) from tiny real networks.
"""

import importlib.util
import json
import stat

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file
from typer.testing import CliRunner

from gdas_cli import GdasError, NetworkArgs, build_network, load_genotype
from gdas_cli import export as export_module
from gdas_cli.cli import app
from gdas_cli.export import ExportRequest, export, resolve_source
from gdas_cli.files import sha256_file
from gdas_cli.hub import HubNetwork as GdasNetwork
from gdas_cli.published import parse_config
from gdas_cli.metrics import count_parameters
from gdas_cli.weights import load_network, save_network

runner = CliRunner()
RECORDS = [  # epoch 2 has the best test top-1: the best checkpoint holds it
    {"epoch": 1, "step": 10, "train_loss": 2.0, "test_loss": 1.9, "test_top1": 50.0, "test_top5": 90.0},
    {"epoch": 2, "step": 20, "train_loss": 1.5, "test_loss": 1.2, "test_top1": 70.0, "test_top5": 95.0},
    {"epoch": 3, "step": 30, "train_loss": 1.1, "test_loss": 1.3, "test_top1": 60.0, "test_top5": 97.0},
]


@pytest.fixture
def run_dir(tmp_path, tiny_checkpoint):
    run = tmp_path / "runs" / "train-digits-test"
    for which, seed, epoch in (("best", 0, 2), ("last", 1, 3)):
        folder = run / "checkpoint" / which
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(tiny_checkpoint("gdas_frc", seed).read_bytes())
        (folder / "progress.json").write_text(json.dumps({"epoch": epoch, "step": 0}))  # as the engine writes it
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    config = {
        "kind": "train", "gdas_version": "0.1.0", "torch_version": torch.__version__, "created": "2025-01-01T12:00:00",
        "engine": {"epochs": 3, "seed": 7},
        "task": {"dataset": "digits", "epochs": 3, "batch_size": 64, "lr": 0.05, "val_split": 300, "split_seed": 7,
                 "mean": [0.1, 0.2, 0.3],
                 "std": [0.4, 0.5, 0.6], "label_names": [f"digit {i}" for i in range(10)]},
    }
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_without_a_validation_split_a_run_exports_its_final_epoch(run_dir, tmp_path):
    config = json.loads((run_dir / "config.json").read_text())
    del config["task"]["val_split"]
    (run_dir / "config.json").write_text(json.dumps(config))  # best was then chosen on the test split: not used
    source = resolve_source(run_dir)
    assert source.weights == run_dir / "checkpoint" / "last" / "model.safetensors"
    assert source.training["checkpoint"] == "last (epoch 3)"
    assert source.training["checkpoint chosen on"] == "final epoch (no selection)"
    assert {r.metric: r.value for r in source.results} == {"top1_error": 40.0, "top5_error": 3.0}
    out = tmp_path / "out"
    export(ExportRequest(source=str(run_dir), output=out))
    assert json.loads((out / "config.json").read_text())["checkpoint_choice"] == "final epoch (no selection)"
    assert "the final epoch" in (out / "README.md").read_text()


def logits(model, seed=0):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def test_run_dir_source_prefers_best_and_reads_that_epoch(run_dir):
    source = resolve_source(run_dir)
    assert source.kind == "run" and source.weights == run_dir / "checkpoint" / "best" / "model.safetensors"
    assert source.dataset == "digits" and source.genotype.ref == "gdas_frc@1.0.0"
    assert {r.metric: r.value for r in source.results} == {"top1_error": 30.0, "top5_error": 5.0}
    assert all("epoch 2 (best checkpoint: chosen on the validation split)" in r.source for r in source.results)
    assert source.training["seed"] == 7 and source.training["checkpoint"] == "best (epoch 2)"


def test_run_dir_source_falls_back_to_last(run_dir):
    (run_dir / "checkpoint" / "best" / "model.safetensors").unlink()
    source = resolve_source(run_dir)
    assert source.weights == run_dir / "checkpoint" / "last" / "model.safetensors"
    assert {r.metric: r.value for r in source.results} == {"top1_error": 40.0, "top5_error": 3.0}


def test_other_sources(tiny_checkpoint, tmp_path):
    weights = resolve_source(tiny_checkpoint("gdas", 0))
    assert weights.kind == "weights" and weights.genotype.ref == "gdas@1.0.0" and not weights.results
    path = tmp_path / "cell.json"
    path.write_text(load_genotype("darts_v2").to_json())
    assert resolve_source(path).kind == "genotype" and resolve_source(path).genotype.name == "darts_v2"
    named = resolve_source("gdas_frc")
    assert named.kind == "genotype" and named.weights is None


def _bad_sources(tmp_path):
    search = tmp_path / "search-run"
    search.mkdir()
    (search / "genotype.json").write_text(load_genotype("gdas").to_json())
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    lm = tmp_path / "lm.safetensors"
    save_file({"w": torch.zeros(2)}, str(lm), metadata={"format": "gdas-lm-weights-v1"})
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"schema": "gdas-genotype"')
    return {
        "missing": (tmp_path / "nope" / "model.safetensors", "no such run directory"),
        "search run": (search, "export " + str(search / "genotype.json")),
        "foreign safetensors": (foreign, "not a gdas weights file"),
        "language-model weights": (lm, "publishes CNN weights only"),
        "other file": (text, "expected a training run directory"),
        "bad genotype json": (bad_json, "not valid JSON"),
        "unknown name": ("no_such_cell", "unknown genotype name"),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "search run", "foreign safetensors", "language-model weights", "other file", "bad genotype json",
     "unknown name"],
)
def test_bad_sources(tmp_path, case):
    source, needle = _bad_sources(tmp_path)[case]
    with pytest.raises(GdasError, match=needle.replace("(", r"\(")):
        export(ExportRequest(source=str(source), output=tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_export_run_writes_the_published_format(run_dir, tmp_path):
    out = tmp_path / "published"
    result = export(ExportRequest(source=str(run_dir), output=out))
    assert result.files == ["README.md", "cell.png", "config.json", "genotype.json", "model.safetensors"]
    assert sorted(p.name for p in out.iterdir()) == result.files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left

    config = parse_config((out / "config.json").read_text(), "config.json")
    best = load_network(run_dir / "checkpoint" / "best" / "model.safetensors")
    assert config.genotype == best.genotype and config.args == best.args
    assert config.weights_sha256 == sha256_file(out / "model.safetensors") and config.extra["dataset"] == "digits"
    assert load_genotype(str(out / "genotype.json")) == best.genotype
    loaded = GdasNetwork.from_pretrained(str(out))
    assert torch.equal(logits(loaded), logits(best))
    assert (out / "cell.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE((out / "model.safetensors").stat().st_mode) & 0o044 == 0o044  # readable, not 0600

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "gdas-cli" and card.data.license == "other"  # no --license: none claimed
    cfg = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert cfg["mean"] == [0.1, 0.2, 0.3] and cfg["std"] == [0.4, 0.5, 0.6] and cfg["dataset"] == "digits"
    assert cfg["label_names"][9] == "digit 9" and cfg["num_classes"] == 10 and cfg["input_size"] == [3, 32, 32]
    assert cfg["license"] is None and cfg["source"].startswith("gdas train run train-digits-test")
    assert loaded.pretrained_cfg["mean"] == (0.1, 0.2, 0.3) and loaded.pretrained_cfg["label_names"] == cfg["label_names"]
    assert {"gdas", "neural-architecture-search", "model_hub_mixin"} <= set(card.data.tags)
    assert card.data.metrics == ["top1-error", "top5-error"]
    assert {(r.metric_type, r.metric_value) for r in card.data.eval_results} == {("top1-error", 30.0), ("top5-error", 5.0)}
    for text in (
        "node 3 = skip_connect(c_{k-2}) + sep_conv_3x3(node 2)", "fixed reduction cell", f"{count_parameters(best):,}",
        "mult-adds", "| digits | test | top-1 error | 30.00% |", "best (epoch 2)", "**seed**: 7",
        "gdas eval --from-hub <org>/<name>@main", 'create_model("hf-hub:', "![gdas_frc@1.0.0 cells](cell.png)",
    ):
        assert text in card.text, text


def test_export_genotype_alone(tmp_path):
    out = tmp_path / "cell"
    result = export(ExportRequest(source="gdas", output=out))
    assert result.files == ["README.md", "cell.png", "config.json", "genotype.json"] and result.source.weights is None
    config = parse_config((out / "config.json").read_text(), "config.json")
    assert config.args is None and config.weights_sha256 is None and config.genotype == load_genotype("gdas")
    assert config.pretrained_cfg["source"] == "genotype gdas@1.0.0" and config.pretrained_cfg["mean"] is None
    assert load_genotype(str(out / "genotype.json")) == load_genotype("gdas")
    card = ModelCard.load(out / "README.md")
    assert "genotype-only" in card.data.tags and card.data.library_name == "gdas-cli"
    assert "![gdas@1.0.0 cells](cell.png)" in card.text and "gdas train cifar10 --genotype hf-hub:" in card.text
    assert "gdas eval" not in card.text


def test_onnx_and_pt2_match_pytorch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    # the ONNX exporter's time grows with the graph: 3 cells (both reduction cells) and no aux head
    weights = tmp_path / "small.safetensors"
    save_network(build_network(load_genotype("gdas"), NetworkArgs(C=8, layers=3, auxiliary=False)), weights)
    out = tmp_path / "exported"
    result = export(ExportRequest(source=str(weights), output=out, formats=("onnx", "pt2"), license="apache-2.0"))
    assert {"model.onnx", "model.onnx.json", "model.pt2", "model.pt2.json"} <= set(result.files)
    assert ModelCard.load(out / "README.md").data.license == "apache-2.0"
    for name in ("model.onnx.json", "model.pt2.json"):
        sidecar = json.loads((out / name).read_text())
        assert sidecar["pretrained_cfg"] == json.loads((out / "config.json").read_text())["pretrained_cfg"]
        assert sidecar["pretrained_cfg"]["license"] == "apache-2.0" and sidecar["input"]["shape"] == ["batch", 3, 32, 32]
    config = json.loads((out / "config.json").read_text())
    assert config["exports"]["onnx"]["opset"] == 18 and config["exports"]["onnx"]["file"] == "model.onnx"
    assert "model.onnx" in (out / "README.md").read_text()

    model = load_network(weights).eval()
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x)
    program = torch.export.load(str(out / "model.pt2")).module()  # batch 5: the batch axis is dynamic
    torch.testing.assert_close(program(x), expected, atol=1e-4, rtol=1e-3)
    if importlib.util.find_spec("onnxruntime") is None:
        assert "onnxruntime is not installed" in config["exports"]["onnx"]["checked"]
        return
    import onnxruntime

    assert config["exports"]["onnx"]["checked"].startswith("onnxruntime")
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"images": x.numpy()})  # batch 5: the batch axis is dynamic
    torch.testing.assert_close(torch.from_numpy(got), expected, atol=1e-4, rtol=1e-3)


def test_existing_output_needs_overwrite(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GdasError, match="not empty; pass --overwrite"):
        export(ExportRequest(source=str(tiny_checkpoint()), output=out))
    assert (out / "keep.txt").read_text() == "mine"
    export(ExportRequest(source=str(tiny_checkpoint()), output=out, overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("failure", [GdasError("exporter broke"), KeyboardInterrupt()])
def test_a_failed_export_leaves_nothing(tiny_checkpoint, tmp_path, monkeypatch, failure):
    def broken(model, folder, sample, check):
        (folder / "model.pt2").write_bytes(b"half")
        raise failure

    monkeypatch.setitem(export_module.EXPORTERS, "pt2", broken)
    with pytest.raises(type(failure)):
        export(ExportRequest(source=str(tiny_checkpoint()), output=tmp_path / "out", formats=("pt2",)))
    assert list(tmp_path.iterdir()) == []


def test_a_mismatching_export_is_refused(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "ATOL", -1.0)  # no output can match: the real check must refuse
    with pytest.raises(GdasError, match="model.pt2: outputs differ from PyTorch's"):
        export(ExportRequest(source=str(tiny_checkpoint()), output=tmp_path / "out", formats=("pt2",)))
    assert list(tmp_path.iterdir()) == []


def test_compare_rejects_different_outputs():
    a = torch.zeros(2, 10)
    assert export_module._compare(a, a + 1e-6, "x") <= 1e-6
    with pytest.raises(GdasError, match="outputs differ from PyTorch's by up to 1.00e-02"):
        export_module._compare(a, a + 1e-2, "model.onnx")
    with pytest.raises(GdasError, match="output shape"):
        export_module._compare(a, torch.zeros(3, 10), "model.onnx")


@pytest.mark.parametrize(
    "request_args, needle",
    [
        ({"source": "gdas", "formats": ("onnx",)}, "--format needs weights"),
        ({"formats": ("tflite",)}, "--format 'tflite'"),
        ({"output": None}, "give --output DIR, --push-to-hub ORG/NAME, or both"),
        ({"tag": "v1"}, "--tag and --private go with --push-to-hub"),
        ({"output": "missing-parent/out"}, "parent folder"),
    ],
)
def test_bad_options(tiny_checkpoint, tmp_path, monkeypatch, request_args, needle):
    monkeypatch.chdir(tmp_path)
    args = {"source": str(tiny_checkpoint()), "output": tmp_path / "out"} | request_args
    with pytest.raises(GdasError, match=needle.replace("(", r"\(")):
        export(ExportRequest(**args))
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_its_packages_is_a_clear_error(tiny_checkpoint, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real_find_spec(name, *a))
    with pytest.raises(GdasError, match=r"--format onnx needs onnxscript: pip install 'gdas-cli\[onnx\]'"):
        export(ExportRequest(source=str(tiny_checkpoint()), output=tmp_path / "out", formats=("onnx",)))
    assert list(tmp_path.iterdir()) == []


def test_cli_export_and_one_line_errors(run_dir, tmp_path):
    result = runner.invoke(app, ["export", str(run_dir), "-o", str(tmp_path / "cli-out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "run" and summary["genotype"] == "gdas_frc@1.0.0" and summary["push"] is None
    assert "model.safetensors" in summary["files"]

    result = runner.invoke(app, ["export", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing-here" in lines[0]
    assert not (tmp_path / "x").exists()


def test_an_export_folder_is_enough_to_evaluate_and_load(run_dir, tmp_path):
    from gdas_cli import create_model

    out = tmp_path / "published"
    export(ExportRequest(source=str(run_dir), output=out))
    for target in (out, out / "model.safetensors"):  # the data set comes from config.json
        result = runner.invoke(app, ["eval", str(target), "--limit-batches", "1", "--device", "cpu", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["dataset"] == "digits"
    model = create_model(out, pretrained=True)
    assert model.training and model.pretrained_cfg["dataset"] == "digits"
    assert torch.equal(logits(model), logits(load_network(run_dir / "checkpoint" / "best" / "model.safetensors")))
    assert create_model(str(out)).args == model.args  # untrained, same architecture
    (out / "model.safetensors").write_bytes(b"not the published file")
    with pytest.raises(GdasError, match="model.safetensors"):
        create_model(out, pretrained=True)


# ------------------------------------------------------------------ exported folders are sources too


def test_an_export_folder_exports_again_keeping_what_it_records(run_dir, tmp_path):
    first = tmp_path / "published"
    export(ExportRequest(source=str(run_dir), output=first))
    again = tmp_path / "again"
    result = runner.invoke(app, ["export", str(first), "-o", str(again), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["kind"] == "export" and summary["genotype"] == "gdas_frc@1.0.0"
    before, after = (json.loads((folder / "config.json").read_text()) for folder in (first, again))
    assert after["pretrained_cfg"] == before["pretrained_cfg"]  # data set, mean, std, class names, source
    assert after["checkpoint_choice"] == before["checkpoint_choice"] and after["dataset"] == "digits"
    stated = ModelCard.load(again / "README.md").data.eval_results
    assert {(r.metric_type, r.metric_value) for r in stated} == {("top1-error", 30.0), ("top5-error", 5.0)}
    assert torch.equal(logits(load_network(again / "model.safetensors")), logits(load_network(first / "model.safetensors")))


def test_an_export_folder_exports_to_onnx_as_its_weights_do(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    weights = tmp_path / "small.safetensors"  # 3 cells: the ONNX exporter's time grows with the graph
    save_network(build_network(load_genotype("gdas"), NetworkArgs(C=8, layers=3, auxiliary=False)), weights)
    first = tmp_path / "published"
    export(ExportRequest(source=str(weights), output=first, dataset="digits"))
    again = tmp_path / "onnx"
    result = runner.invoke(app, ["export", str(first), "-o", str(again), "--format", "onnx"])
    assert result.exit_code == 0, result.output
    assert "model.onnx matches PyTorch" in result.stdout
    sidecar = json.loads((again / "model.onnx.json").read_text())
    assert sidecar["pretrained_cfg"] == json.loads((first / "config.json").read_text())["pretrained_cfg"]


def test_a_zoo_folder_and_a_genotype_only_export_are_sources(tmp_path):
    from gdas_cli.genotype import data_dir

    zoo_folder = data_dir("zoo") / "weights" / "gdas_digits"
    source = resolve_source(zoo_folder)
    assert source.kind == "export" and source.dataset == "digits" and source.data_facts["label_names"] == list("0123456789")
    assert source.training["checkpoint chosen on"] == "final epoch (no selection)"
    genotype_only = tmp_path / "cell"
    export(ExportRequest(source="gdas_frc", output=genotype_only))
    assert resolve_source(genotype_only).kind == "genotype"
    result = runner.invoke(app, ["export", str(genotype_only), "-o", str(tmp_path / "out"), "--format", "onnx"])
    assert result.exit_code == 2 and "--format needs weights" in result.stderr and "searched" not in result.stderr


def test_a_changed_export_folder_is_refused_as_a_source(run_dir, tmp_path):
    first = tmp_path / "published"
    export(ExportRequest(source=str(run_dir), output=first))
    data = bytearray((first / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (first / "model.safetensors").write_bytes(bytes(data))
    result = runner.invoke(app, ["export", str(first), "-o", str(tmp_path / "again")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model.safetensors: sha256" in result.stderr and "does not match config.json" in result.stderr
    assert not (tmp_path / "again").exists()


@pytest.mark.slow
def test_a_shipped_zoo_folder_exports_to_onnx(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from gdas_cli.genotype import data_dir

    out = tmp_path / "digits-onnx"
    result = runner.invoke(app, ["export", str(data_dir("zoo") / "weights" / "gdas_digits"), "-o", str(out),
                                 "--format", "onnx"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((out / "model.onnx.json").read_text())
    assert sidecar["pretrained_cfg"]["dataset"] == "digits" and sidecar["input"]["shape"] == ["batch", 3, 32, 32]
