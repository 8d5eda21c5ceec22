"""The model zoo: every zoo/ entry validated (as torchvision tests its weights metadata), create_model
and list_models, bad entries, torch.hub through hubconf.py, and the zoo inside a real wheel.

Pretrained entries (weights on the Hub, sha256-checked) are exercised against the loopback Hub in
test_hub.py; every shipped entry is genotype-only until weights are published.
"""

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import gdas_cli
from gdas_cli import GdasError, create_model, list_models
from gdas_cli.files import sha256_file
from gdas_cli.weights import save_network
from gdas_cli.genotype import data_dir, load_local_genotype as load_genotype
from gdas_cli.metrics import count_mult_adds, count_parameters
from gdas_cli.zoo import ZOO_PATH_ENV, load_zoo, read_entry

ROOT = Path(__file__).resolve().parent.parent
ENTRY_FILES = sorted((ROOT / "zoo").glob("*.json"))
PAPER_MODELS = {
    "gdas_cifar10", "gdas_frc_cifar10", "gdas_cifar100", "gdas_frc_cifar100", "gdas_imagenet", "gdas_frc_imagenet",
    "darts_v2_cifar10",
}


def test_the_zoo_has_the_papers_models():
    assert PAPER_MODELS <= set(list_models())
    assert data_dir("zoo") == ROOT / "zoo"


@pytest.mark.parametrize("path", ENTRY_FILES, ids=[p.stem for p in ENTRY_FILES])
def test_entry_metadata(path):
    raw = json.loads(path.read_text())
    entry = read_entry(path)
    assert raw["schema"] == "gdas-zoo-entry" and raw["schema_version"] == 1
    assert entry.name == path.stem
    genotype = load_genotype(entry.genotype)
    assert "@" in entry.genotype, "pin the genotype version, so a new genotype version cannot change the model"
    assert entry.dataset in {"cifar10", "cifar100", "imagenet", "digits"}
    expected_classes = {"cifar10": 10, "cifar100": 100, "imagenet": 1000, "digits": 10}[entry.dataset]
    assert entry.network.num_classes == expected_classes
    assert {"top1_error", "params", "mult_adds"} <= set(entry.metrics)
    for name, metric in entry.metrics.items():
        assert metric.reference.strip()
        if name.endswith("_error"):
            assert metric.unit == "%" and 0 < metric.value < 100
    if entry.weights is None:
        assert not entry.pretrained and all(m.source != "measured" for m in entry.metrics.values())
    elif entry.weights.folder is not None:  # shipped in the package: the folder is there, its hash matches
        assert sha256_file(path.parent / entry.weights.folder / "model.safetensors") == entry.weights.sha256
    else:  # a published checkpoint is pinned to a commit and hashed
        assert len(entry.weights.revision) == 40 and len(entry.weights.sha256) == 64

    model = create_model(entry.name)
    assert model.genotype == genotype and model.args == entry.network
    assert entry.metrics["params"].source == "counted"
    assert count_parameters(model) == entry.metrics["params"].value
    assert count_mult_adds(model, (1, *entry.input_size)) == entry.metrics["mult_adds"].value


@pytest.mark.parametrize(
    "name, paper_params_m",
    [("gdas_cifar10", 3.4), ("gdas_frc_cifar10", 2.5), ("gdas_imagenet", 5.3), ("gdas_frc_imagenet", 4.4)],
)
def test_counted_sizes_round_to_the_papers(name, paper_params_m):
    entry = load_zoo()[name]
    assert round(entry.metrics["params"].value / 1e6, 1) == paper_params_m
    if entry.network.net == "imagenet":  # Table 2 reports mult-adds: 581M and 497M
        assert round(entry.metrics["mult_adds"].value / 1e6) == {"gdas_imagenet": 581, "gdas_frc_imagenet": 497}[name]


def test_list_models_filters_on_published_weights():
    everything = list_models()
    assert everything == sorted(p.stem for p in ENTRY_FILES)
    with_weights = [n for n, e in load_zoo().items() if e.pretrained]
    assert list_models(pretrained=True) == sorted(with_weights)
    assert list_models(pretrained=False) == everything  # timm: False means "all of them"


def test_list_models_shell_patterns_as_timm():
    assert list_models("*frc*") == sorted(n for n in list_models() if "frc" in n) != []
    assert list_models("gdas_frc_cifar10") == ["gdas_frc_cifar10"]
    assert list_models(["darts_*", "*imagenet"]) == sorted(
        n for n in list_models() if n.startswith("darts_") or n.endswith("imagenet")
    )
    assert list_models("gdas*", exclude_filters="*frc*") == sorted(
        n for n in list_models() if n.startswith("gdas") and "frc" not in n
    )
    assert list_models("*frc*", pretrained=True) == sorted(set(list_models("*frc*")) & set(list_models(pretrained=True)))
    assert list_models("no_such_*") == []


def test_pretrained_without_published_weights_is_a_clear_error():
    assert "gdas_frc_cifar10" not in list_models(pretrained=True)
    with pytest.raises(GdasError, match=r"gdas_frc_cifar10: no pretrained weights are published.*pretrained=False"):
        create_model("gdas_frc_cifar10", pretrained=True)


def test_create_model_options():
    model = create_model("gdas_frc_cifar10", num_classes=3, C=8, layers=5, auxiliary=False)
    assert isinstance(model, gdas_cli.published.GdasNetwork) and model.aux_head is None
    assert model.args.num_classes == 3 and model.args.C == 8 and model.args.layers == 5
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_create_model_timm_arguments():
    model = create_model("gdas_frc_cifar10", C=8, layers=5, in_chans=3, drop_path_rate=0.2)
    assert model.training and model.drop_path_prob == 0.2
    with pytest.raises(GdasError, match="in_chans 1: these networks take 3-channel"):
        create_model("gdas_frc_cifar10", in_chans=1)
    with pytest.raises(GdasError, match=r"drop_path_rate must be in \[0, 1\)"):
        create_model("gdas_frc_cifar10", drop_path_rate=1.5)


def test_create_model_checkpoint_path(tmp_path):
    source = create_model("gdas_frc_cifar10", num_classes=3, C=8, layers=5)
    save_network(source, tmp_path / "model.safetensors")
    model = create_model("gdas_frc_cifar10", num_classes=3, C=8, layers=5, checkpoint_path=tmp_path / "model.safetensors")
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(GdasError, match="checkpoint_path .* holds gdas_frc@1.0.0 .* but the model is"):
        create_model("gdas_frc_cifar10", num_classes=4, C=8, layers=5, checkpoint_path=tmp_path)


@pytest.mark.parametrize(
    "call, needles",
    [
        (lambda: create_model("no_such_model"), ["'no_such_model': unknown model", "gdas_frc_cifar10"]),
        (lambda: create_model("gdas_frc"), ["is a genotype", "gdas_frc_cifar10"]),
        (lambda: create_model("gdas_frc_cifar10", width=3), ["unknown option(s) width"]),
        (lambda: create_model("gdas_frc_cifar10", C="8"), ["C must be int"]),
        (lambda: create_model("hf-hub:not a repo"), ["a Hub reference is org/name"]),
    ],
)
def test_create_model_bad_input(call, needles):
    with pytest.raises(GdasError) as info:
        call()
    for needle in needles:
        assert needle in str(info.value)


def _good_entry(name="my_model"):
    return json.loads((ROOT / "zoo" / "gdas_frc_cifar10.json").read_text()) | {"name": name}


def _write(folder, name, data):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_extra_zoo_folder_adds_entries(tmp_path, monkeypatch):
    _write(tmp_path / "zoo", "my_model", _good_entry())
    monkeypatch.setenv(ZOO_PATH_ENV, str(tmp_path / "zoo"))
    assert "my_model" in list_models() and "gdas_frc_cifar10" in list_models()
    assert create_model("my_model").genotype.name == "gdas_frc"


SHA = "0" * 64
BAD_ENTRIES = {
    "schema": ({"schema": "timm-cfg"}, "schema"),
    "unknown field": ({"url": "http://x"}, "url: unknown field"),
    "name differs from file": ({"name": "other"}, "name"),
    "bad genotype ref type": ({"genotype": 3}, "genotype"),
    "network field missing": ({"network": {"net": "cifar", "C": 36}}, "missing network argument"),
    "network type": ({"network": {"net": "cifar", "C": 36.5, "layers": 20, "num_classes": 10, "auxiliary": True}}, "C must be int"),
    "input size": ({"input_size": [3, 224, 224]}, "input_size"),
    "weights shape": ({"weights": "org/repo"}, "weights"),
    "weights sha": ({"weights": {"repo_id": "org/repo", "revision": "v1", "sha256": "abc"}}, "weights.sha256"),
    "weights repo": ({"weights": {"repo_id": "repo", "revision": "v1", "sha256": SHA}}, "weights.repo_id"),
    "measured without weights": (
        {"metrics": {"top1_error": {"value": 3.0, "source": "measured", "reference": "me"}}}, "needs published weights"),
    "unknown metric": ({"metrics": {"accuracy": {"value": 97, "source": "paper", "reference": "x"}}}, "unknown metric"),
    "metric without reference": ({"metrics": {"params": {"value": 1, "source": "counted"}}}, "reference"),
    "metric source": ({"metrics": {"params": {"value": 1, "source": "guess", "reference": "x"}}}, "source"),
}


@pytest.mark.parametrize("change, needle", BAD_ENTRIES.values(), ids=list(BAD_ENTRIES))
def test_bad_entries_are_one_clear_error(tmp_path, monkeypatch, change, needle):
    _write(tmp_path / "zoo", "my_model", _good_entry() | change)
    monkeypatch.setenv(ZOO_PATH_ENV, str(tmp_path / "zoo"))
    with pytest.raises(GdasError) as info:
        list_models()
    assert str(tmp_path / "zoo" / "my_model.json") in str(info.value) and needle in str(info.value)


def test_duplicate_names_and_bad_folders(tmp_path, monkeypatch):
    _write(tmp_path / "zoo", "gdas_frc_cifar10", _good_entry("gdas_frc_cifar10"))
    monkeypatch.setenv(ZOO_PATH_ENV, str(tmp_path / "zoo"))
    with pytest.raises(GdasError, match="already defined by"):
        list_models()
    monkeypatch.setenv(ZOO_PATH_ENV, str(tmp_path / "missing"))
    with pytest.raises(GdasError, match="is not a folder"):
        list_models()


def test_torch_hub_load_local():
    spec = importlib.util.spec_from_file_location("gdas_hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    public = {name for name in dir(hubconf) if not name.startswith("_") and callable(getattr(hubconf, name))}
    assert public == set(list_models())  # what torch.hub.list shows: one entry point per zoo model
    assert "GDAS (FRC)" in hubconf.gdas_frc_cifar10.__doc__
    model = torch.hub.load(str(ROOT), "gdas_frc_cifar10", source="local", C=8, layers=5, num_classes=4)
    assert isinstance(model, gdas_cli.published.GdasNetwork) and model.args.num_classes == 4
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(GdasError, match="no pretrained weights"):
        torch.hub.load(str(ROOT), "gdas_frc_imagenet", source="local", pretrained=True)


def test_wheel_ships_the_zoo_and_the_installed_package_reads_it(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = out.glob("gdas_cli-*.whl")
    prefix = "gdas_cli/zoo/"
    shipped = {n[len(prefix):] for n in zipfile.ZipFile(wheel).namelist() if n.startswith(prefix)}
    weights = {f"weights/{m}/{f}" for m in SHIPPED for f in ("config.json", "genotype.json", "model.safetensors")}
    assert shipped == {p.name for p in ENTRY_FILES} | weights
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import gdas_cli, gdas_cli.genotype as g; print(g.data_dir('zoo')); print(','.join(gdas_cli.list_models()));"
        "gdas_cli.create_model('gdas_frc_digits', pretrained=True)"  # offline, from the installed package
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    zoo_dir, names = result.stdout.split()
    assert zoo_dir.startswith(str(target)) and names.split(",") == list_models()


SHIPPED = ("gdas_digits", "gdas_frc_digits")


def _digits_test_split():
    from gdas_cli.data import load_images

    test = load_images("digits").test
    return test.images.float() / 255, test.labels


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_digits_models_are_accurate_offline(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert name in list_models(pretrained=True) and name in list_models("*digits", pretrained=True)
    model = create_model(name, pretrained=True)
    assert model.training  # as timm: the caller switches to eval
    model.eval()
    cfg = model.pretrained_cfg  # what the export recorded is enough to prepare the images
    assert cfg["dataset"] == "digits" and cfg["label_names"] == [str(d) for d in range(10)] and cfg["license"] == "mit"
    images, labels = _digits_test_split()
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        top1 = (model((images - mean) / std).argmax(1) == labels).float().mean().item()
    assert top1 >= 0.97, f"{name}: {100 * top1:.2f}% top-1 on the digits test split"
    recorded = load_zoo()[name].metrics["top1_error"]
    assert recorded.source == "measured" and recorded.value == pytest.approx(100 * (1 - top1), abs=1e-3)


def test_shipped_weights_are_sha256_checked(tmp_path, monkeypatch):
    entry = json.loads((ROOT / "zoo" / "gdas_frc_digits.json").read_text())
    folder = tmp_path / "zoo"
    shutil.copytree(ROOT / "zoo" / "weights" / "gdas_frc_digits", folder / "weights" / "mine")
    entry |= {"name": "mine", "weights": {"folder": "weights/mine", "sha256": "0" * 64}}
    (folder / "mine.json").write_text(json.dumps(entry))
    monkeypatch.setenv(ZOO_PATH_ENV, str(folder))
    with pytest.raises(GdasError, match="sha256 .* does not match the zoo entry"):
        create_model("mine", pretrained=True)
    entry["weights"]["folder"] = "../outside"
    (folder / "mine.json").write_text(json.dumps(entry))
    with pytest.raises(GdasError, match="weights.folder: '../outside' must be a relative path inside the zoo folder"):
        list_models()
