"""Recurrent cells: the final LM of every rnn genotype, the paper's parameter counts, the search cell's
sampling (one-hot forward, only chosen ops computed, gradient to the alphas), T=1 derive, a short search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gdas_cli import GdasError
from gdas_cli.genotype import Genotype, iter_zoo, load_local_genotype as load_genotype
from gdas_cli.metrics import count_parameters
from gdas_cli.models import rnn as rnn_models
from gdas_cli.models.rnn import DATASET_ARGS, RNNArgs, RNNLanguageModel, lm_loss
from gdas_cli.ops import RNN_PRIMITIVES
from gdas_cli.search import rnn as search_rnn
from gdas_cli.search.rnn import SoftPlan, build_rnn_search_network, fixed_plan, hard_plan
from gdas_cli.search.rnn_derive import derive_rnn_edges, derive_rnn_genotype, rnn_edge_count

RNN_GENOTYPES = [g.ref for g in iter_zoo("rnn")]
TINY = RNNArgs(ntoken=50, ninp=12, dropout=0.3, dropouth=0.2, dropoutx=0.3, dropouti=0.1, dropoute=0.1)


@pytest.mark.parametrize("ref", RNN_GENOTYPES)
def test_every_rnn_genotype_builds_a_language_model_that_runs(ref: str) -> None:
    genotype = load_genotype(ref)
    torch.manual_seed(0)
    model = RNNLanguageModel(genotype, TINY)
    assert len(model.cell.Ws) == genotype.recurrent.steps
    tokens = torch.randint(0, 50, (6, 3))
    out = model(tokens, model.init_hidden(3))
    assert out.logits.shape == (18, 50) and out.hidden.shape == (3, 12) and out.raw.shape == (6, 3, 12)
    assert torch.equal(out.hidden, out.raw[-1])
    loss, nll = lm_loss(out, tokens.reshape(-1), tar=100.0)
    loss.backward()
    tar = 100.0 * (out.raw[1:] - out.raw[:-1]).pow(2).mean()
    torch.testing.assert_close(loss, nll + tar)
    assert nll.item() > 0 and tar.item() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_cell_follows_the_genotype_equations() -> None:
    """h_t recomputed by hand from W0, W_i and the genotype (eval mode: no masks)."""
    genotype = load_genotype("gdas_rnn")
    torch.manual_seed(1)
    model = RNNLanguageModel(genotype, TINY).eval()
    cell = model.cell
    x, h = torch.randn(4, 12), torch.randn(4, 12)
    c0, g0 = (torch.cat([x, h], dim=1) @ cell.W0).chunk(2, dim=1)
    states = [h + c0.sigmoid() * (g0.tanh() - h)]
    for i, node in enumerate(genotype.recurrent.nodes):
        s = states[node[0].input]
        c, g = (s @ cell.Ws[i]).chunk(2, dim=1)
        states.append(s + c.sigmoid() * (rnn_models.ACTIVATIONS[node[0].op](g) - s))
    expected = torch.stack(states[1:]).mean(0)
    out, last = cell(x.unsqueeze(0), h)
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(last, expected)


def test_decoder_is_tied_to_the_embedding_and_state_dict_has_no_shared_tensors() -> None:
    model = RNNLanguageModel(load_genotype("gdas_rnn"), TINY)
    names = list(model.state_dict())
    assert "encoder.weight" in names and not any(n.startswith("decoder.") for n in names)
    with torch.no_grad():
        model.encoder.weight.zero_()
    out = model.eval()(torch.zeros(2, 1, dtype=torch.long), model.init_hidden(1))
    assert torch.count_nonzero(out.logits) == 0  # logits come from the (zeroed) embedding matrix


@pytest.mark.parametrize("dataset, vocab, millions, exact", [("ptb", 10_000, 23, 22_960_000), ("wt2", 33_278, 33, 33_127_878)])
def test_paper_parameter_counts_of_the_gdas_rnn(dataset: str, vocab: int, millions: int, exact: int) -> None:
    """Tables 3-4: 23M on PTB (emb = hid = 850), 33M on WT2 (700); built on the meta device."""
    with torch.device("meta"):
        model = RNNLanguageModel(load_genotype("gdas_rnn"), RNNArgs(ntoken=vocab, **DATASET_ARGS[dataset]))
    params = count_parameters(model)
    ninp = DATASET_ARGS[dataset]["ninp"]
    assert params == vocab * ninp + (2 * ninp) ** 2 + 8 * ninp * 2 * ninp + vocab == exact
    assert round(params / 1e6) == millions


def test_cnn_genotype_cannot_build_a_language_model() -> None:
    with pytest.raises(GdasError, match="a cnn genotype cannot build a recurrent language model"):
        RNNLanguageModel(load_genotype("gdas_frc"), TINY)


# ---------------------------------------------------------------------------------------- search cell


def search_net(sampling: str = "gdas", seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_rnn_search_network(60, ninp=10, sampling=sampling, **kwargs)


def test_search_network_matches_reference_8_1() -> None:
    net = search_net()
    assert net.alphas_recurrent.shape == (36, 5) == (rnn_edge_count(8), len(RNN_PRIMITIVES))
    assert 0.5e-3 < net.alphas_recurrent.std().item() < 2e-3
    assert isinstance(net.cell.bn, torch.nn.BatchNorm1d) and not net.cell.bn.affine
    assert net.cell.W0.shape == (20, 20) and len(net.cell.Ws) == 8
    weights = list(net.weights())
    assert len(weights) + 1 == len(list(net.parameters()))
    assert all(w is not net.alphas_recurrent for w in weights)
    defaults = build_rnn_search_network(100)
    assert defaults.args.ninp == 300 and defaults.args.dropoute == 0.0 and defaults.args.dropout == 0.75


def count_activations(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Rows (examples x nodes) each activation processes, through the search cell's op table."""
    rows = {name: 0 for name in rnn_models.ACTIVATIONS}

    def counting(name, fn):
        def wrapped(x):
            rows[name] += x.numel() // x.size(-1)
            return fn(x)
        return wrapped

    table = {name: counting(name, fn) for name, fn in rnn_models.ACTIVATIONS.items()}
    monkeypatch.setattr(search_rnn, "ACTIVATIONS", table)
    return rows


def test_gdas_forward_computes_only_the_chosen_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    net = search_net().train()
    net.set_tau(5.0)
    plan = net.sample()
    rows = count_activations(monkeypatch)
    T, B = 3, 4
    net(torch.randint(0, 60, (T, B)), net.init_hidden(B), plan)
    chosen = torch.tensor(plan.index)
    for k, name in enumerate(RNN_PRIMITIVES[1:], start=1):
        assert rows[name] == T * B * int((chosen == k).sum()), name  # one row per step, example and edge
    # darts mode runs every op on every edge
    soft = search_net("darts").train()
    rows = count_activations(monkeypatch)
    soft(torch.randint(0, 60, (T, B)), soft.init_hidden(B))
    assert all(rows[name] == T * B * 36 for name in RNN_PRIMITIVES[1:])


def test_gdas_forward_is_the_one_hot_architecture_and_gradient_reaches_alphas() -> None:
    net = search_net().eval()  # eval: no dropout masks, running BN stats: forwards are comparable
    plan = net.sample()
    assert all(torch.equal(node.weights, torch.ones_like(node.weights)) for node in plan.nodes if node.inputs)
    one_hot = torch.nn.functional.one_hot(torch.tensor(plan.index), len(RNN_PRIMITIVES)).float()
    tokens, hidden = torch.randint(0, 60, (4, 3)), net.init_hidden(3)
    sampled = net(tokens, hidden, plan)
    torch.testing.assert_close(sampled.logits, net(tokens, hidden, SoftPlan(one_hot)).logits, rtol=1e-5, atol=1e-5)
    sampled.logits.logsumexp(-1).mean().backward()
    grad = net.alphas_recurrent.grad
    computed = torch.tensor(plan.index) != RNN_PRIMITIVES.index("none")
    assert computed.any()
    assert (grad[computed] != 0).all()  # every op's alpha of a computed edge, via the softmax Jacobian
    assert (grad[~computed] == 0).all()  # an edge that drew `none` is not computed at all


def test_soft_gumbel_weights_every_activation_by_a_fresh_soft_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 2019 code's estimator: F.gumbel_softmax(alphas, tau, hard=False), every op of every edge run."""
    net = search_net("soft-gumbel").train()
    net.set_tau(2.0)
    torch.manual_seed(1)
    first = net.sample()
    torch.manual_seed(1)
    again, other = net.sample(), net.sample()
    assert isinstance(first, SoftPlan) and first.probs.shape == (36, 5)
    torch.testing.assert_close(first.probs, again.probs)  # a function of the torch RNG (checkpointed)
    assert not torch.allclose(first.probs, other.probs)  # a new draw per forward
    torch.testing.assert_close(first.probs.sum(-1), torch.ones(36))
    assert ((first.probs > 0) & (first.probs < 1)).all()  # soft: no one-hot
    # the same formula as torch's own soft Gumbel-softmax, given the same noise
    noise = torch.distributions.Gumbel(0.0, 1.0).sample((36, 5))
    monkeypatch.setattr(search_rnn, "soft_gumbel", lambda a, tau, generator=None: torch.softmax((a + noise) / tau, -1))
    rows = count_activations(monkeypatch)
    T, B = 3, 4
    out = net(torch.randint(0, 60, (T, B)), net.init_hidden(B))
    assert all(rows[name] == T * B * 36 for name in RNN_PRIMITIVES[1:])  # no acceleration step
    out.logits.logsumexp(-1).mean().backward()
    assert (net.alphas_recurrent.grad != 0).all()  # every alpha, `none` too (through the softmax)
    assert isinstance(net.eval_plan(), SoftPlan)  # a mixture evaluates with its softmax weights


def test_soft_gumbel_is_softmax_of_noisy_log_probabilities() -> None:
    from gdas_cli.sampler import soft_gumbel

    alphas = torch.randn(7, 5)
    generator = torch.Generator().manual_seed(3)
    sample = soft_gumbel(alphas, 0.5, generator=generator)
    generator.manual_seed(3)
    noise = -torch.empty(7, 5).exponential_(generator=generator).log()
    torch.testing.assert_close(sample, torch.softmax((alphas + noise) / 0.5, -1))  # log_softmax shifts rows only


def test_one_draw_per_forward_with_one_host_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    net = search_net().train()
    calls = []
    real_draw = search_rnn.draw
    monkeypatch.setattr(search_rnn, "draw", lambda *a, **k: calls.append(1) or real_draw(*a, **k))
    net(torch.randint(0, 60, (5, 2)), net.init_hidden(2))
    assert len(calls) == 1  # shared by the batch and all 5 time steps


def test_all_none_node_outputs_zeros_before_bn() -> None:
    net = search_net().eval()
    index = [RNN_PRIMITIVES.index("none")] * 36
    index[0] = RNN_PRIMITIVES.index("relu")  # node 1 reads s0; nodes 2..8 drew none on every edge
    hard = torch.nn.functional.one_hot(torch.tensor(index), 5).float()
    plan = hard_plan(hard, index, 8)
    assert [len(n.inputs) for n in plan.nodes] == [1, 0, 0, 0, 0, 0, 0, 0]
    out = net(torch.randint(0, 60, (2, 3)), net.init_hidden(3), plan)
    assert torch.isfinite(out.logits).all()


def test_eval_mode_runs_the_derived_cell() -> None:
    net = search_net().eval()
    with torch.no_grad():
        net.alphas_recurrent.normal_()
    edges = derive_rnn_edges(torch.softmax(net.alphas_recurrent, -1))
    plan = net.eval_plan()
    assert [(n.inputs, [g for g, _ in n.groups]) for n in plan.nodes] == [([j], [RNN_PRIMITIVES[k]]) for j, k in edges]
    assert all(n.weights is None for n in plan.nodes)
    assert isinstance(search_net("darts").eval_plan(), SoftPlan)


def test_unknown_sampling_mode_is_a_user_error() -> None:
    with pytest.raises(GdasError, match="--sampling"):
        build_rnn_search_network(10, sampling="sample")


# ---------------------------------------------------------------------------------------------- derive


def test_derive_keeps_one_input_per_node_and_never_none() -> None:
    probs = torch.full((36, 5), 0.1)
    probs[:, 0] = 0.6  # none dominates every edge: still never chosen
    offset = 0
    for i in range(8):
        probs[offset + i // 2, 2] = 0.3  # node i: best non-none edge is input i // 2, op relu
        offset += i + 1
    genotype = derive_rnn_genotype(probs, name="t", provenance={"epoch": 3})
    assert genotype.kind == "rnn" and genotype.derive_rule == "rnn"
    assert [(n[0].op, n[0].input) for n in genotype.recurrent.nodes] == [("relu", i // 2) for i in range(8)]
    assert genotype.recurrent.concat == tuple(range(1, 9))
    assert Genotype.from_json(genotype.to_json()) == genotype


def test_derive_ties_go_to_the_lower_input_and_the_earlier_op() -> None:
    edges = derive_rnn_edges(torch.full((36, 5), 0.2))
    assert edges == [(0, 1)] * 8  # input 0, tanh (the first non-none op)


def test_derive_rejects_wrong_shapes() -> None:
    with pytest.raises(GdasError, match=r"must be \(36, 5\)"):
        derive_rnn_edges(torch.zeros(14, 8))
    with pytest.raises(GdasError, match="--name"):
        derive_rnn_genotype(torch.zeros(36, 5), name="Bad Name")


def test_fixed_plan_of_a_zoo_genotype_reproduces_its_edges() -> None:
    genotype = load_genotype("darts_v2_rnn")
    edges = [(n[0].input, RNN_PRIMITIVES.index(n[0].op)) for n in genotype.recurrent.nodes]
    plan = fixed_plan(edges, 8)
    assert derive_rnn_edges(torch.nn.functional.one_hot(torch.tensor(plan.index), 5).float() + 0.01) == edges


# ------------------------------------------------------------------------------------------ short search


def test_one_epoch_search_on_demo_text_gives_a_valid_rnn_genotype(tmp_path: Path) -> None:
    from gdas_cli.engine import EngineConfig
    from gdas_cli.search.rnn_task import resolve_search_config, run_rnn_search

    config = resolve_search_config("demo-text", {"epochs": 1, "batch_size": 8, "emsize": 16, "bptt": 10})
    run_dir = tmp_path / "search"
    engine = EngineConfig(epochs=1, run_dir=str(run_dir), device="cpu", limit_train_batches=4, quiet=True)
    result = run_rnn_search(config, engine)
    assert result["epochs"] == 1 and result["last"]["step"] == 4
    genotype = load_genotype(str(run_dir / "genotype.json"))
    assert genotype.kind == "rnn" and genotype.recurrent.steps == 8 and genotype.derive_rule == "rnn"
    assert all(node[0].op != "none" for node in genotype.recurrent.nodes)
    prov = genotype.provenance
    assert prov["dataset"] == "demo-text" and prov["epoch"] == 1 and len(prov["alphas_sha256"]) == 64
    from search_helpers import PROVENANCE_KEYS

    assert PROVENANCE_KEYS <= set(prov) and prov["space"] == "darts_rnn" and "param_free" not in prov
    for name in ("config.json", "metrics.jsonl", "alphas.jsonl", "genotypes.jsonl"):
        assert (run_dir / name).is_file(), name
    for which in ("last", "best"):
        assert (run_dir / "checkpoint" / which / "model.safetensors").is_file()
    alphas = json.loads((run_dir / "alphas.jsonl").read_text().splitlines()[0])
    assert alphas["epoch"] == 1 and len(alphas["alphas"]["recurrent"]) == 36
    record = json.loads((run_dir / "metrics.jsonl").read_text())
    assert record["tau"] == 10.0 and record["valid_ppl"] > 1 and "arch_loss" in " ".join(record)
    # `derive` of the run's last epoch (the only one, so also the best) gives the same cell
    from gdas_cli.search.rnn_task import derive_rnn_run, is_rnn_search_run

    assert is_rnn_search_run(run_dir) and not is_rnn_search_run(tmp_path)
    assert derive_rnn_run(run_dir, epoch=1).recurrent == genotype.recurrent
    # the CLI's `derive` and `plot alphas` dispatch on the run's kind
    from typer.testing import CliRunner

    from gdas_cli.cli import app

    runner = CliRunner()
    derived = runner.invoke(app, ["derive", str(run_dir), "-o", str(tmp_path / "rnn.json")])
    assert derived.exit_code == 0, derived.output
    assert load_genotype(str(tmp_path / "rnn.json")).recurrent == genotype.recurrent
    refused = runner.invoke(app, ["derive", str(run_dir), "--rule", "pairs"])
    assert refused.exit_code == 2 and "T=1" in refused.stderr
    plotted = runner.invoke(app, ["plot", "alphas", str(run_dir), "-o", str(tmp_path / "alphas.png")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "alphas.png").read_bytes()[:4] == b"\x89PNG"
    # the derived genotype trains a final model
    RNNLanguageModel(genotype, TINY)


def test_search_rnn_with_soft_gumbel_through_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gdas_cli.cli import app

    runner = CliRunner()
    run_dir = tmp_path / "soft"
    args = ["search", "rnn", "--dataset", "demo-text", "--sampling", "soft-gumbel", "--epochs", "1",
            "--batch-size", "8", "--emsize", "16", "--bptt", "10", "--limit-train-batches", "2", "--quiet",
            "--device", "cpu", "--run-dir", str(run_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    genotype = load_genotype(str(run_dir / "genotype.json"))
    assert genotype.provenance["sampling"] == "soft-gumbel" and genotype.kind == "rnn"
    assert json.loads((run_dir / "config.json").read_text())["task"]["sampling"] == "soft-gumbel"
    shown = runner.invoke(app, ["search", "rnn", "--help"], env={"COLUMNS": "300"})
    assert "soft-gumbel" in shown.output and "published PTB cell" in shown.output
