"""The CNN supernet: layouts, alphas, parameter groups, FRC, and the paper's G1 parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gdas_cli import GdasError
from gdas_cli.search import LAYOUTS, build_search_network
from gdas_cli.search.supernet import FixedReductionSearchCell, SearchCell

SMALL = {"C": 8, "N": 1, "num_classes": 4}


def test_paper_layout_is_eight_cells_with_reductions_at_two_and_five() -> None:
    net = build_search_network(16, 2, 10)
    assert net.cell_types == ["normal", "normal", "reduce", "normal", "normal", "reduce", "normal", "normal"]
    assert all(len(cell.edges) == 14 and all(len(e) == 8 for e in cell.edges) for cell in net.cells)
    assert len(net.last_act) == 0  # GAP + linear only


def test_xautodl_layout_is_six_cells_with_bn_relu_head() -> None:
    net = build_search_network(16, 2, 10, layout="xautodl")
    assert net.cell_types == ["normal", "normal", "reduce", "normal", "reduce", "normal"]
    assert isinstance(net.last_act[0], nn.BatchNorm2d) and isinstance(net.last_act[1], nn.ReLU)


def test_parameter_counts_match_the_2019_code() -> None:
    # the 2019 code, measured (docs/sources.md, "Search network"): NetworkACC2(16, 10, 8) 1.9306M, NetworkFACC1 1.3419M weight parameters
    assert round(sum(p.numel() for p in build_search_network(16, 2, 10).weights()) / 1e6, 4) == 1.9306
    assert round(sum(p.numel() for p in build_search_network(16, 2, 10, frc=True).weights()) / 1e6, 4) == 1.3419


def test_alphas_shapes_init_and_parameter_groups() -> None:
    torch.manual_seed(0)
    net = build_search_network(16, 2, 10)
    assert [a.shape for a in net.alphas()] == [(14, 8), (14, 8)]
    assert all(0.5e-3 < a.std().item() < 2e-3 for a in net.alphas())
    weights, alphas = list(net.weights()), net.alphas()
    assert {id(p) for p in weights}.isdisjoint({id(a) for a in alphas})
    assert len(weights) + len(alphas) == len(list(net.parameters()))


def test_search_ops_have_affine_free_bn_and_frc_keeps_affine() -> None:
    net = build_search_network(8, 1, 10, frc=True)
    assert [a.shape for a in net.alphas()] == [(14, 8)]
    assert net.cell_types == ["normal", None, "normal", None, "normal"]
    for cell in net.cells:
        bns = [m for m in cell.modules() if isinstance(m, nn.BatchNorm2d)]
        if isinstance(cell, SearchCell):
            assert not any(bn.affine for bn in bns)
        else:
            assert isinstance(cell, FixedReductionSearchCell)
            body = [m for m in cell.body.conv_branches.modules() if isinstance(m, nn.BatchNorm2d)]
            assert all(bn.affine for bn in body)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("frc", [False, True])
@pytest.mark.parametrize("sampling", ["cell", "batch", "sample", "darts"])
def test_forward_backward_every_configuration(layout: str, frc: bool, sampling: str) -> None:
    net = build_search_network(8, 2 if layout == "xautodl" else 1, 4, frc=frc, sampling=sampling, layout=layout)
    net.set_tau(5.0)
    logits = net(torch.randn(3, 3, 16, 16))
    assert logits.shape == (3, 4)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    for alpha in net.alphas():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_only_sampled_ops_run_in_the_supernet() -> None:
    net = build_search_network(**SMALL)
    seen = []
    for cell in net.cells:
        for edge in cell.edges:
            for op in edge:
                op.register_forward_hook(lambda m, i, o: seen.append(m))
    net(torch.randn(2, 3, 8, 8))
    assert len(seen) == 14 * len(net.cells)  # one op per edge
    net.sampling = "darts"
    seen.clear()
    net(torch.randn(2, 3, 8, 8))
    assert len(seen) == 14 * 8 * len(net.cells)


def test_generator_makes_the_supernet_forward_reproducible() -> None:
    torch.manual_seed(0)
    net = build_search_network(**SMALL).eval()
    x = torch.randn(2, 3, 8, 8)
    outs = []
    for _ in range(2):
        net.generator = torch.Generator().manual_seed(4)
        outs.append(net(x))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize(
    "kwargs, option",
    [({"frc": True, "C": 12}, "--channels"), ({"layout": "nasnet"}, "--layout"), ({"sampling": "soft"}, "--sampling"),
     ({"N": 0}, "--cells-per-stage")],
)
def test_bad_network_arguments_name_the_option(kwargs: dict, option: str) -> None:
    with pytest.raises(GdasError, match=option):
        build_search_network(**{**SMALL, **kwargs})


def test_genotype_of_a_supernet_builds_a_cifar_network() -> None:
    from gdas_cli.models import NetworkArgs, build_network

    net = build_search_network(8, 1, 10, frc=True)
    genotype = net.genotype()
    model = build_network(genotype, NetworkArgs(C=8, layers=5, auxiliary=False))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


# ------------------------------------------------------------------------- end to end through the CLI

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from search_helpers import PROVENANCE_KEYS, assert_one_line_error, gdas, read_lines, search, snapshot  # noqa: E402

from gdas_cli import load_genotype  # noqa: E402
from gdas_cli.models import NetworkArgs, build_network  # noqa: E402
from gdas_cli.search.derive import alphas_sha256  # noqa: E402
from gdas_cli.sizing import DataFacts, Machine  # noqa: E402


@pytest.fixture(scope="module")
def frc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("search") / "frc"
    result = search(run_dir, "--frc")
    assert result.exit_code == 0, result.output
    return run_dir


def test_two_epoch_search_ends_with_a_genotype_that_builds(frc_run: Path) -> None:
    genotype = load_genotype(str(frc_run / "genotype.json"))
    assert genotype.uses_frc and genotype.derive_rule == "paper"
    prov = genotype.provenance
    assert (prov["dataset"], prov["epoch"], prov["recipe"], prov["sampling"], prov["seed"]) == ("digits", 2, "paper", "cell", 0)
    assert PROVENANCE_KEYS <= set(prov) and set(prov["param_free"]) == {"normal"}  # the FRC is not searched
    last = read_lines(frc_run / "alphas.jsonl")[-1]
    assert prov["alphas_sha256"] == alphas_sha256({t: torch.tensor(a) for t, a in last["alphas"].items()})
    net = build_network(genotype, NetworkArgs(C=8, layers=5, auxiliary=False))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_eval_of_a_search_run_points_to_derive(frc_run: Path) -> None:
    assert_one_line_error(gdas("eval", frc_run), str(frc_run), "gdas derive")


def test_run_directory_holds_every_record(frc_run: Path) -> None:
    metrics = read_lines(frc_run / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2]
    for key in ("train_loss", "train_top1", "train_arch_loss", "train_arch_top1", "tau", "lr", "seconds"):
        assert all(isinstance(m[key], float) for m in metrics), key
    assert metrics[0]["tau"] == 10.0 and metrics[1]["tau"] == 1.0  # linear 10 -> 1 over 2 epochs
    assert metrics[0]["lr"] == pytest.approx(0.05)  # the sizing rule's (sizing.py)
    assert [r["epoch"] for r in read_lines(frc_run / "genotypes.jsonl")] == [1, 2]
    alphas = read_lines(frc_run / "alphas.jsonl")
    assert list(alphas[0]["alphas"]) == ["normal"] and alphas[0]["alphas"] != alphas[1]["alphas"]
    split = json.loads((frc_run / "split.json").read_text())
    assert split["seed"] == 0 and len(split["train"]) == len(split["valid"]) == 750
    assert not set(split["train"]) & set(split["valid"])
    config = json.loads((frc_run / "config.json").read_text())
    assert config["kind"] == "search" and config["task"]["frc"] is True and config["task"]["arch_betas"] == [0.5, 0.999]
    # a CNN search chooses its final epoch (paper Alg. 1): no checkpoint/best, and config.json says so
    assert (frc_run / "checkpoint" / "last" / "model.safetensors").is_file()
    assert not (frc_run / "checkpoint" / "best").exists()
    assert config["selection"] == {"checkpoint": "last", "by": None, "mode": None}
    assert alphas[-1]["step"] == metrics[-1]["step"] == 6


def test_recipes_and_overrides_resolve_into_config(tmp_path: Path) -> None:
    from gdas_cli.search.config import resolve_config

    paper = resolve_config("paper", "cifar10", {})
    assert (paper.epochs, paper.batch_size, paper.weight_decay, paper.tau_min, paper.layout) == (240, 128, 3e-4, 1.0, "paper")
    assert (paper.lr, paper.lr_min, paper.arch_lr, paper.arch_betas, paper.arch_weight_decay) == (0.025, 1e-3, 3e-4, (0.5, 0.999), 1e-3)
    xautodl = resolve_config("xautodl", "cifar10", {"epochs": 3})
    assert (xautodl.epochs, xautodl.batch_size, xautodl.weight_decay, xautodl.nesterov, xautodl.tau_min,
            xautodl.layout) == (3, 256, 5e-4, True, 0.1, "xautodl")
    assert paper.sources["epochs"] == "paper" and paper.sources["batch_size"] == "2019 code"
    assert xautodl.sources["epochs"] == "you" and xautodl.sources["batch_size"] == "2020 code"
    # a data set other than the paper's: the sizing rule, from its facts and the machine
    facts, cpu = DataFacts("digits", 1500, 10, 8), Machine("cpu", 2)
    digits = resolve_config("paper", "digits", {"channels": 16}, facts, cpu)
    assert (digits.channels, digits.cells_per_stage, digits.image_size, digits.layout) == (16, 1, 8, "xautodl")
    assert (digits.batch_size, digits.lr, digits.arch_lr, digits.arch_weight_decay) == (64, 0.05, 3e-3, 0.0)
    assert (digits.epochs, digits.tau_min, digits.hflip, digits.workers) == (40, 1.0, False, 1)
    assert digits.sources["channels"] == "you" and digits.sources["epochs"] == "rule" and digits.sources["lr_min"] == "paper"
    gpu = resolve_config("paper", "folder:x", {}, DataFacts("folder:x", 50_000, 10, 64), Machine("cuda", 8))
    assert (gpu.image_size, gpu.batch_size, gpu.epochs, gpu.channels, gpu.cells_per_stage) == (32, 128, 120, 16, 2)
    assert gpu.hflip is True and gpu.sources["hflip"] == "ours"
    # the paper's data sets keep the paper's recipe whatever the machine
    assert resolve_config("paper", "cifar10", {}, DataFacts("cifar10", 50_000, 10, 32), cpu).epochs == 240


def test_xautodl_recipe_runs_with_sample_granularity(tmp_path: Path) -> None:
    result = search(tmp_path / "run", "--recipe", "xautodl", "-N", "2", "--sampling", "sample", "-C", "4",
                    "--epochs", "1", "--nesterov")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())["task"]
    assert (config["layout"], config["sampling"], config["nesterov"], config["epochs"]) == ("xautodl", "sample", True, 1)
    assert load_genotype(str(tmp_path / "run" / "genotype.json")).reduce != "frc"


def test_folder_dataset(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / "imgs" / split / label).mkdir(parents=True)
            for i in range(8):
                pixels = (rng.rand(12, 10, 3) * 255).astype("uint8")
                Image.fromarray(pixels).save(tmp_path / "imgs" / split / label / f"{i}.png")
    result = gdas("search", "cnn", "--dataset", f"folder:{tmp_path / 'imgs'}", "-C", "4", "-N", "1", "--batch-size", "4",
                  "--image-size", "8", "--epochs", "1", "--quiet", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert sorted(split["train"] + split["valid"]) == list(range(16))
    # the search needs train/ alone (the val/ folder above is not read), and never records the local path
    assert load_genotype(str(tmp_path / "run" / "genotype.json")).provenance["dataset"] == "folder"


def test_progress_and_summary_lines_unless_quiet(tmp_path: Path) -> None:
    from search_helpers import TINY

    result = gdas("search", "cnn", *TINY, "--epochs", "1", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.stderr and "train_arch_top1" in result.stderr and "tau" in result.stderr
    assert "genotype.json" in result.stdout and result.stderr.startswith("plan: gdas search cnn on digits")
    quiet = gdas("search", "cnn", *TINY, "--epochs", "1", "--run-dir", tmp_path / "quiet", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr.strip() == ""
    assert quiet.stdout.strip() == str(tmp_path / "quiet" / "genotype.json")  # the one result line


def test_plot_alphas(frc_run: Path, tmp_path: Path) -> None:
    result = gdas("plot", "alphas", frc_run, "-o", tmp_path / "alphas.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "alphas.png").read_bytes()[:4] == b"\x89PNG"
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    assert_one_line_error(gdas("plot", "alphas", not_a_run, "-o", tmp_path / "x.png"), str(not_a_run), "alphas.jsonl")


# ------------------------------------------------------------------------------------------ bad input


def test_missing_data_dir(tmp_path: Path) -> None:
    result = search(tmp_path / "run", "--dataset", "cifar10", "--data-dir", tmp_path / "nowhere")
    assert_one_line_error(result, "--data-dir", "nowhere")
    assert not (tmp_path / "run").exists()


def test_unknown_dataset(tmp_path: Path) -> None:
    assert_one_line_error(search(tmp_path / "run", "--dataset", "mnist"), "--dataset", "mnist")
    assert not (tmp_path / "run").exists()


def test_frc_needs_channels_multiple_of_eight(tmp_path: Path) -> None:
    assert_one_line_error(search(tmp_path / "run", "--frc", "-C", "12"), "--channels", "12", "multiple of 8")
    assert not (tmp_path / "run").exists()


def test_non_numeric_flag(tmp_path: Path) -> None:
    assert_one_line_error(search(tmp_path / "run", "--lr", "fast"), "--lr")
    assert not (tmp_path / "run").exists()


def test_existing_run_dir_is_not_overwritten(frc_run: Path) -> None:
    before = snapshot(frc_run)
    assert_one_line_error(search(frc_run, "--frc"), str(frc_run), "--resume")
    assert snapshot(frc_run) == before


def test_resume_with_another_configuration_is_refused(frc_run: Path, tmp_path: Path) -> None:
    before = snapshot(frc_run)
    result = gdas("search", "cnn", "--resume", frc_run, "--no-frc", "--quiet")
    assert_one_line_error(result, f"--resume {frc_run}", "frc: True -> False")
    assert_one_line_error(gdas("search", "cnn", "--resume", frc_run, "--epochs", "1"), "epochs: 2 -> 1", "never shortened")
    assert_one_line_error(gdas("search", "cnn", "--resume", tmp_path), str(tmp_path), "config.json")
    assert snapshot(frc_run) == before


@pytest.mark.parametrize("victim", ["model.safetensors", "state.pt"])
def test_corrupted_or_truncated_checkpoint(frc_run: Path, tmp_path: Path, victim: str) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(frc_run, run)
    target = run / "checkpoint" / "last" / victim
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    before = snapshot(run)
    assert_one_line_error(gdas("search", "cnn", "--resume", run, "--quiet"), victim)
    assert snapshot(run) == before
    if victim == "model.safetensors":
        assert_one_line_error(gdas("derive", target), str(target))


# ------------------------------------------------------------------------------------------ the demo


def demo_search(run_dir: Path, *extra: str):
    """README's "Try it" search, exactly (plus a CPU device)."""
    return gdas("search", "cnn", "--frc", "--dataset", "digits", "--run-dir", run_dir, "--device", "cpu", *extra)


@pytest.mark.slow
def test_readme_demo_search_learns_and_says_so(tmp_path: Path) -> None:
    """README's Try-it search (the sizing rule's 40 epochs on digits): well above chance on the valid half,
    and alphas that moved beyond the noise threshold; measured 94.7% and 2.2x in 56 s on 2 cores."""
    result = demo_search(tmp_path / "demo")
    assert result.exit_code == 0, result.output
    last = read_lines(tmp_path / "demo" / "metrics.jsonl")[-1]
    assert last["train_arch_top1"] >= 60.0, last
    movement = load_genotype(str(tmp_path / "demo" / "genotype.json")).provenance["movement"]
    assert movement["verdict"] == "learned" and movement["signal_to_noise"] >= 2.0, movement
    assert "the alphas learned" in result.stdout


def test_demo_recipe_learns_in_a_few_epochs(tmp_path: Path) -> None:
    """The short check: the rule's digits search is well above chance (10%) on the valid half after 4 of its
    40 epochs (measured 67%; 20% after the first), in about 6 s."""
    result = demo_search(tmp_path / "demo", "--epochs", "4", "--quiet")
    assert result.exit_code == 0, result.output
    assert read_lines(tmp_path / "demo" / "metrics.jsonl")[-1]["train_arch_top1"] >= 40.0
