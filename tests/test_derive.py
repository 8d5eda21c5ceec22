"""Deriving genotypes from alphas: the paper rule, the xautodl pairs rule, ties, FRC, hashing."""

from __future__ import annotations

import pytest
import torch

from gdas_cli import GdasError, Genotype
from gdas_cli.genotype import FRC, Edge
from gdas_cli.ops import PRIMITIVES
from gdas_cli.search.derive import alphas_sha256, derive_cell, derive_genotype

OP = {name: k for k, name in enumerate(PRIMITIVES)}
NODE_EDGES = [(0, 2), (2, 5), (5, 9), (9, 14)]  # flat edge ranges of nodes 0..3


def uniform() -> list[list[float]]:
    return [[0.1] * len(PRIMITIVES) for _ in range(14)]


def set_p(rows: list[list[float]], node: int, j: int, op: str, p: float) -> None:
    rows[NODE_EDGES[node][0] + j][OP[op]] = p


def test_paper_rule_keeps_two_distinct_inputs_by_best_non_none_probability() -> None:
    rows = uniform()
    set_p(rows, 3, 4, "sep_conv_3x3", 0.5)
    set_p(rows, 3, 4, "dil_conv_5x5", 0.45)  # second op on the same input: ignored by `paper`
    set_p(rows, 3, 1, "skip_connect", 0.3)
    set_p(rows, 3, 2, "none", 0.9)  # `none` never counts
    cell = derive_cell(rows, "paper")
    assert cell.nodes[3] == (Edge("sep_conv_3x3", 4), Edge("skip_connect", 1))
    assert cell.concat == (2, 3, 4, 5)


def test_pairs_rule_may_take_two_ops_on_one_input() -> None:
    rows = uniform()
    set_p(rows, 3, 4, "sep_conv_3x3", 0.5)
    set_p(rows, 3, 4, "dil_conv_5x5", 0.45)
    set_p(rows, 3, 1, "skip_connect", 0.3)
    cell = derive_cell(rows, "pairs")
    assert cell.nodes[3] == (Edge("sep_conv_3x3", 4), Edge("dil_conv_5x5", 4))


def test_ties_go_to_the_lower_input_and_the_earlier_op() -> None:
    rows = uniform()  # everything tied
    paper = derive_cell(rows, "paper")
    assert all(node == (Edge("max_pool_3x3", 0), Edge("max_pool_3x3", 1)) for node in paper.nodes)
    pairs = derive_cell(rows, "pairs")
    assert all(node == (Edge("max_pool_3x3", 0), Edge("avg_pool_3x3", 0)) for node in pairs.nodes)
    set_p(rows, 1, 2, "dil_conv_3x3", 0.3)
    set_p(rows, 1, 2, "sep_conv_3x3", 0.3)  # same value, earlier in PRIMITIVES: wins
    set_p(rows, 1, 1, "skip_connect", 0.3)  # same score as input 2, lower input: listed first
    assert derive_cell(rows, "paper").nodes[1] == (Edge("skip_connect", 1), Edge("sep_conv_3x3", 2))


def test_frc_genotype_has_the_fixed_reduce_cell_and_builds() -> None:
    probs = {"normal": torch.softmax(torch.randn(14, 8), -1)}
    genotype = derive_genotype(probs, rule="paper", frc=True, provenance={"dataset": "digits"})
    assert genotype.reduce == FRC and genotype.uses_frc
    assert genotype.derive_rule == "paper" and genotype.name == "searched" and genotype.version == "1.0.0"
    again = Genotype.from_json(genotype.to_json())
    assert again == genotype and again.provenance == {"dataset": "digits"}
    from gdas_cli.models import NetworkArgs, build_network

    net = build_network(genotype, NetworkArgs(C=8, layers=5, auxiliary=False))
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("rule", ["paper", "pairs"])
def test_derive_matches_the_supernet(rule: str) -> None:
    from gdas_cli.search import build_search_network

    net = build_search_network(C=4, N=1)
    with torch.no_grad():
        for alpha in net.alphas():
            alpha.normal_()
    genotype = net.genotype(rule)
    assert genotype.normal == derive_cell(torch.softmax(net.alphas_normal.detach(), -1), rule)
    assert genotype.reduce == derive_cell(torch.softmax(net.alphas_reduce.detach(), -1), rule)


def test_bad_shapes_rules_and_names_are_user_errors() -> None:
    with pytest.raises(GdasError, match="--rule"):
        derive_cell(uniform(), "best")
    with pytest.raises(GdasError, match=r"\(14, 8\)"):
        derive_cell(uniform()[:10], "paper")
    with pytest.raises(GdasError, match="version"):
        derive_genotype({"normal": uniform()}, frc=True, version="one")
    with pytest.raises(GdasError, match="name"):
        derive_genotype({"normal": uniform()}, frc=True, name="Bad Name")


def test_alphas_hash_is_stable_and_sensitive() -> None:
    alphas = {"normal": torch.zeros(14, 8), "reduce": torch.ones(14, 8)}
    digest = alphas_sha256(alphas)
    assert digest == alphas_sha256({"reduce": torch.ones(14, 8), "normal": torch.zeros(14, 8, dtype=torch.float64)})
    bumped = torch.zeros(14, 8)
    bumped[3, 3] = 1e-6
    assert alphas_sha256({"normal": bumped, "reduce": torch.ones(14, 8)}) != digest


# ------------------------------------------------------------------------------------- gdas derive CLI

from pathlib import Path  # noqa: E402

from search_helpers import assert_one_line_error, gdas, read_lines, search, snapshot  # noqa: E402

from gdas_cli import load_genotype  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("derive") / "run"
    result = search(path, "-C", "4")  # searched normal and reduce cells
    assert result.exit_code == 0, result.output
    return path


def test_derive_run_dir_reproduces_the_final_genotype(run_dir: Path, tmp_path: Path) -> None:
    result = gdas("derive", run_dir, "-o", tmp_path / "g.json")
    assert result.exit_code == 0, result.output
    derived, final = load_genotype(str(tmp_path / "g.json")), load_genotype(str(run_dir / "genotype.json"))
    assert derived == final and derived.reduce != FRC
    assert derived.provenance["alphas_sha256"] == final.provenance["alphas_sha256"]
    assert derived.provenance["run"] == run_dir.name  # the run's name: a genotype never records a local path
    assert str(run_dir.parent) not in derived.to_json()


def test_derive_prints_json_and_takes_rule_epoch_name_version(run_dir: Path) -> None:
    result = gdas("derive", run_dir, "--rule", "pairs", "--epoch", "1", "--name", "my_cell", "--version", "2.1.0")
    assert result.exit_code == 0, result.output
    genotype = Genotype.from_json(result.stdout)
    assert (genotype.name, genotype.version, genotype.derive_rule) == ("my_cell", "2.1.0", "pairs")
    assert genotype.provenance["epoch"] == 1
    first = read_lines(run_dir / "alphas.jsonl")[0]["alphas"]
    assert genotype.normal == derive_cell(torch.softmax(torch.tensor(first["normal"]), -1), "pairs")
    assert genotype.provenance["alphas_sha256"] == alphas_sha256({t: torch.tensor(a) for t, a in first.items()})


def test_derive_from_a_checkpoint_file_or_folder(run_dir: Path) -> None:
    final = load_genotype(str(run_dir / "genotype.json"))
    for source in (run_dir / "checkpoint" / "last", run_dir / "checkpoint" / "last" / "model.safetensors"):
        result = gdas("derive", source)
        assert result.exit_code == 0, result.output
        genotype = Genotype.from_json(result.stdout)
        assert genotype == final and genotype.provenance["epoch"] == 2
        assert genotype.provenance["alphas_sha256"] == final.provenance["alphas_sha256"]


def test_derive_bad_input(run_dir: Path, tmp_path: Path) -> None:
    before = snapshot(run_dir)
    assert_one_line_error(gdas("derive", run_dir, "--epoch", "7"), "--epoch 7", "1..2")
    assert_one_line_error(gdas("derive", run_dir, "--rule", "best"), "--rule", "best")
    assert_one_line_error(gdas("derive", run_dir, "--version", "v1"), "version")
    assert_one_line_error(gdas("derive", tmp_path / "nothing"), "nothing")
    assert_one_line_error(gdas("derive", run_dir / "checkpoint" / "last", "--epoch", "1"), "--epoch")
    assert_one_line_error(gdas("derive", run_dir, "-o", tmp_path / "no" / "g.json"), "--output")
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    assert_one_line_error(gdas("derive", bogus), str(bogus))
    assert snapshot(run_dir) == before


# ------------------------------------------------------------- parameter-free share, --max-skip (P-DARTS)

from gdas_cli.collapse import param_free, share_line  # noqa: E402
from gdas_cli.nb201 import OPS as NB201_OPS  # noqa: E402
from gdas_cli.search.spaces import searched_genotype  # noqa: E402


def skip_heavy_alphas() -> torch.Tensor:
    """Every node of the normal cell keeps skip_connect(0) (its alpha 3, 3.5, 4, 4.5: node 0's is the weakest)
    and sep_conv_3x3(1); every other entry is 0."""
    alphas = torch.zeros(14, len(PRIMITIVES))
    for node, (start, _) in enumerate(NODE_EDGES):
        alphas[start, OP["skip_connect"]] = 3.0 + 0.5 * node
        alphas[start + 1, OP["sep_conv_3x3"]] = 2.0
    return alphas


def test_max_skip_replaces_the_weakest_skips_as_p_darts_does() -> None:
    alphas = {"normal": skip_heavy_alphas()}
    plain = searched_genotype("darts", alphas, arch_lr=3e-4, steps=10)
    assert [node[0] for node in plain.normal.nodes] == [Edge("skip_connect", 0)] * 4
    assert plain.provenance["param_free"]["normal"] == {
        "share": 0.5, "param_free": 4, "edges": 8, "ops": {"skip_connect": 4}}
    limited = searched_genotype("darts", alphas, arch_lr=3e-4, steps=10, max_skip=2)
    # P-DARTS: the skip of lowest probability gets probability 0 and the cell is derived again, until at most 2.
    # Node 0 has only inputs 0 and 1, so its edge from 0 takes its next-best op (all tied: max_pool_3x3, the
    # earlier op); node 1 then prefers input 2 (1/8) to the masked input 0 (1/(7 + e^3.5)).
    assert limited.normal.nodes == (
        (Edge("sep_conv_3x3", 1), Edge("max_pool_3x3", 0)),
        (Edge("sep_conv_3x3", 1), Edge("max_pool_3x3", 2)),
        (Edge("skip_connect", 0), Edge("sep_conv_3x3", 1)),
        (Edge("skip_connect", 0), Edge("sep_conv_3x3", 1)),
    )
    record = limited.provenance["max_skip"]
    assert (record["limit"], record["skips_before"], record["skips_after"]) == (2, 4, 2)
    assert [(r["node"], r["input"]) for r in record["replaced"]] == [(0, 0), (1, 0)]
    p0 = torch.softmax(alphas["normal"][0].double(), -1)[OP["skip_connect"]].item()
    assert record["replaced"][0]["p_skip"] == round(p0, 4) and "P-DARTS" in record["rule"]
    assert limited.provenance["param_free"]["normal"]["ops"] == {"max_pool_3x3": 2, "skip_connect": 2}
    untouched = searched_genotype("darts", alphas, arch_lr=3e-4, steps=10, max_skip=4)
    assert untouched.normal == plain.normal and untouched.provenance["max_skip"]["replaced"] == []
    none_left = searched_genotype("darts", alphas, arch_lr=3e-4, steps=10, max_skip=0)
    assert all(edge.op != "skip_connect" for node in none_left.normal.nodes for edge in node)


def test_nas_bench_201_counts_none_and_limits_skips_by_its_own_rule() -> None:
    alphas = torch.zeros(6, len(NB201_OPS))
    alphas[:, NB201_OPS.index("skip_connect")] = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    alphas[0, NB201_OPS.index("nor_conv_3x3")] = 0.5  # edge 1<-0's next-best op
    alphas[1, NB201_OPS.index("none")] = 1.5  # edge 2<-0's next-best: `none`, which this rule keeps
    genotype = searched_genotype("nas-bench-201", {"cell": alphas}, arch_lr=3e-4, steps=10, max_skip=4)
    ops = [edge.op for node in genotype.cell.nodes for edge in node]
    assert ops == ["nor_conv_3x3", "none", "skip_connect", "skip_connect", "skip_connect", "skip_connect"]
    assert genotype.provenance["param_free"]["cell"]["share"] == round(5 / 6, 4)  # none and skips, not the conv
    assert share_line(genotype).startswith("warning: the cell cell is mostly parameter-free")
    with pytest.raises(GdasError, match="--max-skip: the darts_rnn space"):
        searched_genotype("darts_rnn", {"recurrent": torch.zeros(36, 5)}, arch_lr=3e-3, steps=10, max_skip=1)


def test_collapse_warning_names_the_cell_and_the_remedies() -> None:
    mostly_free = Genotype.from_dict({**load_genotype("gdas").to_dict(), "normal": {
        "nodes": [[["skip_connect", 0], ["max_pool_3x3", 1]], [["skip_connect", 0], ["avg_pool_3x3", 1]],
                  [["skip_connect", 0], ["sep_conv_3x3", 1]], [["skip_connect", 0], ["sep_conv_3x3", 1]]],
        "concat": [2, 3, 4, 5]}})
    line = share_line(mostly_free)
    assert line.startswith("warning: the normal cell is mostly parameter-free") and "normal 6/8 edges (75%" in line
    assert "--max-skip" in line and "--epoch" in line and "--arch-weight-decay" in line
    assert param_free(load_genotype("gdas_rnn")) == {} and share_line(load_genotype("gdas_rnn")) is None
    # the paper's cells: GDAS's normal cell is half skips (not above half: no warning); GDAS (FRC)'s keeps 5 of 8
    assert share_line(load_genotype("gdas")) == (
        "parameter-free ops: normal 4/8 edges (50%: skip_connect x4); reduce 0/8 edges (0%)")
    frc = share_line(load_genotype("gdas_frc"))
    assert frc.startswith("warning: the normal cell") and "normal 5/8 edges" in frc and "reduce" not in frc


def test_derive_max_skip_on_a_run(run_dir: Path) -> None:
    result = gdas("derive", run_dir, "--max-skip", "0")
    assert result.exit_code == 0, result.output
    genotype = Genotype.from_json(result.stdout)
    assert all(edge.op != "skip_connect" for node in genotype.normal.nodes for edge in node)
    assert genotype.provenance["max_skip"]["limit"] == 0
    assert "parameter-free ops: normal" in result.stderr and "--max-skip 0:" in result.stderr
    assert_one_line_error(gdas("derive", run_dir, "--max-skip", "-1"), "--max-skip")
