"""The NAS-Bench-201 space through the real CLI: arch strings as references, the zoo, counts equal to
xautodl's, a digits search that learns, derive, look-ups in a benchmark written by nats_bench's own
classes (tests/nb201_archive.py), kill and resume, --seeds, training, eval, export and the Hub round trip.

The building blocks are checked against xautodl itself in tests/test_nas_bench_201.py; here the
counts are compared with xautodl's `TinyNetwork` and `get_model_infos` (needs `pip install --no-deps
xautodl==1.0.0`) and the look-ups need nats_bench (the `nas-bench` extra); those tests skip without them.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_line_error
from search_helpers import final_state, gdas, read_lines, resume, start_search, wait_mid_epoch

from gdas_cli import create_model, load_genotype
from gdas_cli.genotype import to_arch_str
from gdas_cli.weights import load_network

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|"
NB201 = ["--space", "nas-bench-201", "--dataset", "digits"]
# 3 cells (N=1), C=4, 8x8 inputs, 3 steps per epoch: a fraction of a second per epoch
TINY = [*NB201, "-C", "4", "-N", "1", "--image-size", "8", "--batch-size", "32", "--limit-train-batches", "3",
        "--epochs", "2"]
TINY_TRAIN = ["-C", "4", "--layers", "1", "--batch-size", "32", "--limit-train-batches", "3",
              "--limit-eval-batches", "2", "--epochs", "2"]


def ok(result):
    assert result.exit_code == 0, result.output
    return result


# ---------------------------------------------------------------- references, zoo and counts


@pytest.mark.parametrize("arch", [RESNET, ALL_NONE, ALL_SKIP, MIXED])
def test_an_arch_string_is_a_reference_everywhere(arch: str, tmp_path: Path) -> None:
    assert ok(gdas("genotypes", "show", arch, "--format", "arch-str")).stdout.strip() == arch
    assert "space=nas-bench-201" in ok(gdas("genotypes", "show", arch)).stdout
    ok(gdas("export", arch, "-o", tmp_path / "cell"))  # a genotype-only folder, written from the string
    saved = tmp_path / "cell" / "genotype.json"
    assert json.loads(saved.read_text())["space"] == "nas-bench-201"
    assert ok(gdas("genotypes", "show", saved, "--format", "arch-str")).stdout.strip() == arch
    assert to_arch_str(load_genotype(str(saved))) == arch == to_arch_str(load_genotype(arch))


def test_arch_strings_of_other_spaces_and_bad_strings_are_one_line() -> None:
    assert_one_line_error(gdas("genotypes", "show", "gdas", "--format", "arch-str"), "gdas", "NAS-Bench-201")
    assert_one_line_error(gdas("genotypes", "show", "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
                          "nor_conv_5x5")
    assert_one_line_error(gdas("genotypes", "info", "|nor_conv_3x3~0|+|none~0|"), "|nor_conv_3x3~0|+|none~0|")


def test_the_zoo_lists_the_space_s_cells_with_sources() -> None:
    listed = json.loads(ok(gdas("genotypes", "list", "--space", "nas-bench-201", "--json")).stdout)
    names = {entry["name"] for entry in listed}
    assert {"nb201_resnet", "nb201_all_conv3x3", "nb201_all_skip", "gdas_nb201_cifar10"} <= names
    assert all(entry["space"] == "nas-bench-201" for entry in listed)
    darts = {entry["name"] for entry in json.loads(ok(gdas("genotypes", "list", "--space", "darts", "--json")).stdout)}
    assert "gdas" in darts and not names & darts
    assert ok(gdas("genotypes", "show", "nb201_resnet", "--format", "arch-str")).stdout.strip() == RESNET
    assert ok(gdas("genotypes", "show", "nb201_all_skip", "--format", "arch-str")).stdout.strip() == ALL_SKIP
    assert_one_line_error(gdas("genotypes", "list", "--space", "nasbench"), "--space", "nasbench")


NETS = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet16-120": (120, 16)}


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("arch", [RESNET, ALL_NONE, ALL_SKIP, ALL_CONV3, MIXED])
def test_info_counts_equal_tiny_network_s(arch: str, net: str) -> None:
    """`gdas genotypes info --net NET` against xautodl's TinyNetwork of the benchmark's network (C=16, N=5):
    parameters by `count_parameters`, mult-adds by `get_model_infos`, the counter behind the benchmark's FLOPs."""
    xautodl_models = pytest.importorskip("xautodl.models")
    from xautodl.models.cell_searchs.genotypes import Structure
    from xautodl.utils import count_parameters, get_model_infos

    classes, size = NETS[net]
    info = json.loads(ok(gdas("genotypes", "info", arch, "--net", net, "--json")).stdout)
    tiny = xautodl_models.get_cell_based_tiny_net(
        {"name": "infer.tiny", "C": 16, "N": 5, "genotype": Structure.str2structure(arch), "num_classes": classes}
    )
    mflops, _ = get_model_infos(tiny, (1, 3, size, size))
    assert (info["net"], info["C"], info["layers"]) == (net, 16, 5)
    assert info["params"] == count_parameters(tiny, None) == sum(p.numel() for p in tiny.parameters())
    assert info["mult_adds"] == round(mflops * 1e6)


def test_info_defaults_to_the_cifar10_network() -> None:
    default = json.loads(ok(gdas("genotypes", "info", RESNET, "--json")).stdout)
    cifar10 = json.loads(ok(gdas("genotypes", "info", RESNET, "--net", "cifar10", "--json")).stdout)
    assert default == cifar10
    text = ok(gdas("genotypes", "info", RESNET)).stdout
    assert "on cifar10 (C=16, 5 cells)" in text
    assert_one_line_error(gdas("genotypes", "info", RESNET, "--net", "imagenet"), "--net", "imagenet16-120")


# ---------------------------------------------------------------- search and derive


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """README's NAS-Bench-201 demo: the rule-sized digits search, every default untouched."""
    run_dir = tmp_path_factory.mktemp("nb201") / "demo"
    result = ok(gdas("search", "cnn", *NB201, "--run-dir", run_dir, "--json"))
    (run_dir / "summary.test.json").write_text(result.stdout)
    return run_dir


def test_the_demo_search_learns(demo: Path) -> None:
    summary = json.loads((demo / "summary.test.json").read_text())
    final = read_lines(demo / "metrics.jsonl")[-1]
    assert final["epoch"] == summary["epochs"]
    # the A steps' top-1 on the held-out half of the search split: chance is 10%
    assert final["train_arch_top1"] >= 60.0, final
    assert summary["movement"]["verdict"] == "learned"
    config = json.loads((demo / "config.json").read_text())
    assert config["task"]["space"] == "nas-bench-201" and config["task"]["recipe"] == "nas-bench-201"


def test_derive_uses_the_released_rule_and_writes_an_arch_string(demo: Path, tmp_path: Path) -> None:
    xautodl_genotypes = pytest.importorskip("xautodl.models.cell_searchs.genotypes")
    out = tmp_path / "cell.json"
    ok(gdas("derive", demo, "-o", out))
    derived = json.loads(out.read_text())
    assert derived["space"] == "nas-bench-201" and derived["derive_rule"] == "nb201"
    assert derived["provenance"]["space"] == "nas-bench-201"
    assert derived["cell"] == json.loads((demo / "genotype.json").read_text())["cell"]
    arch = ok(gdas("genotypes", "show", out, "--format", "arch-str")).stdout.strip()
    assert xautodl_genotypes.Structure.str2structure(arch).tostr() == arch
    assert_one_line_error(gdas("derive", demo, "--rule", "paper", "-o", tmp_path / "x.json"), "--rule", "paper")
    assert not (tmp_path / "x.json").exists()


def test_options_of_the_other_space_are_refused(tmp_path: Path) -> None:
    assert_one_line_error(gdas("search", "cnn", *TINY, "--frc", "--run-dir", tmp_path / "a"), "--frc")
    assert_one_line_error(gdas("search", "cnn", *TINY, "--layout", "xautodl", "--run-dir", tmp_path / "b"),
                          "--layout")
    darts = ["--dataset", "digits", "--epochs", "1"]
    assert_one_line_error(gdas("search", "cnn", *darts, "--track-stats", "--run-dir", tmp_path / "c"), "--track-stats")
    assert_one_line_error(gdas("search", "cnn", *darts, "--no-unchosen-grads", "--run-dir", tmp_path / "d"),
                          "--unchosen-grads")
    assert_one_line_error(gdas("search", "cnn", *darts, "--nas-bench", tmp_path, "--run-dir", tmp_path / "e"),
                          "--nas-bench")
    assert_one_line_error(gdas("search", "cnn", *NB201, "--recipe", "xautodl", "--run-dir", tmp_path / "f"),
                          "--recipe")
    assert not any((tmp_path / name).exists() for name in "abcdef")


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    args = [*TINY, "--image-size", "16", "--limit-train-batches", "6", "--checkpoint-every", "1"]
    reference = start_search(tmp_path / "reference", *args)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    run_dir = tmp_path / "run"
    process = start_search(run_dir, *args)
    wait_mid_epoch(run_dir, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert not (run_dir / "genotype.json").exists()
    resume(run_dir)
    assert final_state(run_dir) == final_state(tmp_path / "reference")


def test_seeds_rank_cells_trained_as_the_space_s_network(tmp_path: Path) -> None:
    result = ok(gdas("search", "cnn", *TINY, "--seeds", "2", "--run-dir", tmp_path / "seeds", "--json"))
    ranking = json.loads(result.stdout)["ranking"]
    assert sorted(row["seed"] for row in ranking["seeds"]) == [0, 1]
    for row in ranking["seeds"]:
        assert row["network"] == {"net": "nb201", "C": 4, "layers": 1}  # the supernet's C and N
        select = json.loads((Path(row["select_run"]) / "config.json").read_text())["task"]
        assert select["drop_path"] == 0 and select["auxiliary"] is False  # the benchmark's recipe
    winner = json.loads((tmp_path / "seeds" / "genotype.json").read_text())
    assert winner["space"] == "nas-bench-201" and winner["cell"] == ranking["seeds"][0]["genotype"]["cell"]


# ---------------------------------------------------------------- the benchmark


def test_each_epoch_s_cell_is_looked_up_in_the_benchmark(tmp_path: Path) -> None:
    """A search without the benchmark gives each epoch's derived cell; a benchmark holding those cells (and
    others) is written with nats_bench's own classes; the same search with --nas-bench logs their records
    in metrics.jsonl and takes the same steps."""
    pytest.importorskip("nats_bench")
    from nb201_archive import expected_accuracy, write_archive

    plain = tmp_path / "plain"
    ok(gdas("search", "cnn", *TINY, "--quiet", "--run-dir", plain))
    archs = []
    for epoch in (1, 2):
        ok(gdas("derive", plain, "--epoch", epoch, "-o", tmp_path / f"epoch{epoch}.json"))
        archs.append(to_arch_str(load_genotype(str(tmp_path / f"epoch{epoch}.json"))))
    cells = [RESNET, *dict.fromkeys(archs), ALL_SKIP]
    bench = write_archive(tmp_path / "NATS-tss-test-simple", cells)

    looked = tmp_path / "looked"
    ok(gdas("search", "cnn", *TINY, "--quiet", "--run-dir", looked, "--nas-bench", bench))
    plain_records, records = read_lines(plain / "metrics.jsonl"), read_lines(looked / "metrics.jsonl")
    for record, before, arch in zip(records, plain_records, archs, strict=True):
        assert record["alphas_sha256"] == before["alphas_sha256"] and record["train_loss"] == before["train_loss"]
        assert record["bench_arch"] == arch
        expected = expected_accuracy(cells.index(arch), "200", "cifar10-valid")
        assert record["bench_cifar10_valid_valid_top1"] == pytest.approx(expected["valid"])
        assert record["bench_imagenet16_120_test_top1"] == pytest.approx(
            expected_accuracy(cells.index(arch), "200", "ImageNet16-120")["test"]
        )

    shown = json.loads(ok(gdas("bench", looked / "genotype.json", "--nas-bench", bench, "--json")).stdout)
    assert shown["arch"] == archs[-1] and shown["index"] == cells.index(archs[-1])
    assert shown["datasets"]["cifar100"]["accuracy"] == pytest.approx(
        expected_accuracy(cells.index(archs[-1]), "200", "cifar100")
    )
    table = ok(gdas("bench", RESNET, "--nas-bench", bench, "--dataset", "cifar10", "--hp", "12")).stdout
    assert "cifar10" in table and f"{expected_accuracy(0, '12', 'cifar10')['test']:.2f}%" in table


def test_bench_errors_are_one_line(tmp_path: Path) -> None:
    line = assert_one_line_error(gdas("bench", RESNET), "--nas-bench")
    assert "NATS-tss-v1_0-3ffb9" in line  # where the files come from; nothing is downloaded
    assert_one_line_error(gdas("bench", RESNET, "--nas-bench", tmp_path / "nowhere"), str(tmp_path / "nowhere"))
    assert_one_line_error(gdas("bench", "gdas", "--nas-bench", tmp_path), "gdas", "NAS-Bench-201")
    assert_one_line_error(gdas("search", "cnn", *TINY, "--nas-bench", tmp_path / "nowhere",
                               "--run-dir", tmp_path / "run"), "--nas-bench")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- train, evaluate, export, publish


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("nb201-train") / "run"
    ok(gdas("train", "digits", "-g", RESNET, *TINY_TRAIN, "--val-split", "100", "--run-dir", run_dir, "--quiet"))
    return run_dir


def test_training_uses_the_benchmark_s_network_and_recipe(trained: Path) -> None:
    task = json.loads((trained / "config.json").read_text())["task"]
    assert task["net"] == "nb201" and task["auxiliary"] is False and task["drop_path"] == 0
    assert task["nesterov"] is True and task["schedule"] == "cosine"  # NAS-Bench-201's 200E config
    summary = json.loads(ok(gdas("eval", trained, "--json")).stdout)
    assert summary["network"] == {"net": "nb201", "C": 4, "layers": 1, "num_classes": 10, "auxiliary": False}
    assert summary["genotype"] == "nb201@1.0.0" and 0 <= summary["test_top1"] <= 100


def test_export_create_model_and_the_hub_round_trip(trained: Path, tmp_path: Path, loopback_hub,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from hub_server import TOKENS
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", next(iter(TOKENS)))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    weights = trained / "checkpoint" / "best" / "model.safetensors"
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = load_network(weights).eval()(images)

    out = tmp_path / "export"
    ok(gdas("export", trained, "-o", out, "--format", "onnx", "--push-to-hub", "test-org/nb201-digits", "--tag", "v1"))
    assert {"model.safetensors", "genotype.json", "config.json", "model.onnx"} <= {p.name for p in out.iterdir()}
    for model in (create_model(str(out), pretrained=True), create_model("hf-hub:test-org/nb201-digits@v1",
                                                                         pretrained=True)):
        assert model.genotype.space == "nas-bench-201" and model.pretrained_cfg["num_classes"] == 10
        with torch.no_grad():
            assert torch.equal(model.eval()(images), expected)
    assert to_arch_str(load_genotype("hf-hub:test-org/nb201-digits@v1")) == RESNET
    summary = json.loads(ok(gdas("eval", "--from-hub", "test-org/nb201-digits@v1", "--limit-batches", "1",
                                 "--json")).stdout)
    assert summary["dataset"] == "digits" and summary["network"]["net"] == "nb201"
