"""Every sampling mode: what it draws, how often, what runs, and where the gradient goes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gdas_cli.sampler import (
    SAMPLING_MODES,
    AllOpsCellSample,
    ExampleCellSample,
    HardCellSample,
    sample_cells,
)
from gdas_cli.search import build_search_network

K, EDGES, BATCH = 8, 14, 6
TYPES = ["normal", "normal", "reduce", "normal", "reduce", "normal"]  # the xautodl layout with N=2
HARD = ["cell", "batch", "sample", "sample_cell", "gdas_all_ops"]  # every mode but darts


class CountingOp(nn.Module):
    """Scales its input by a learnable factor k+1 and counts calls and examples."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(k + 1)))
        self.calls = self.examples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.examples += x.size(0)
        return x * self.scale


def alphas(seed: int = 0) -> dict[str, nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return {t: nn.Parameter(torch.randn(EDGES, K, generator=gen)) for t in ("normal", "reduce")}


def draw_all(mode: str, seed: int = 1, tau: float = 1.0) -> tuple[dict[str, nn.Parameter], list]:
    a = alphas()
    return a, sample_cells(a, TYPES, mode, tau, BATCH, torch.Generator().manual_seed(seed))


def weights_of(sample) -> torch.Tensor:
    """The per-op weights a sample applies: (E, K) for a batch-wide draw, (B, E, K) per example."""
    return sample.weights if hasattr(sample, "weights") else sample.hard


def test_the_modes() -> None:
    assert list(SAMPLING_MODES) == ["cell", "batch", "sample", "sample_cell", "darts", "gdas_all_ops"]


@pytest.mark.parametrize("mode", sorted(SAMPLING_MODES))
def test_one_sample_per_cell_with_the_mode_shape(mode: str) -> None:
    _, samples = draw_all(mode)
    assert len(samples) == len(TYPES)
    per_example = mode in ("sample", "sample_cell")
    for sample in samples:
        assert weights_of(sample).shape == ((BATCH, EDGES, K) if per_example else (EDGES, K))
        out = sample.apply(3, [CountingOp(k) for k in range(K)], torch.randn(BATCH, 5))
        assert out.shape == (BATCH, 5)


@pytest.mark.parametrize("mode", HARD)
def test_hard_modes_weight_one_op_by_exactly_one_with_the_soft_gradient(mode: str) -> None:
    a, samples = draw_all(mode)
    for sample in samples:
        w = weights_of(sample)
        assert set(w.detach().unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(w.detach().sum(-1), torch.ones(w.shape[:-1]))  # one op per edge (per example)
        assert w.requires_grad and w.grad_fn is not None  # the weight 1 carries the soft gradient
    # the gradient of a chosen weight reaches every alpha entry of its edge, through softmax
    w = weights_of(samples[0])
    chosen = w.detach()[..., 0, :].argmax(-1)
    w[..., 0, :].gather(-1, chosen.unsqueeze(-1)).sum().backward()
    assert (a["normal"].grad[0] != 0).all() and (a["normal"].grad[1:] == 0).all()


@pytest.mark.parametrize("mode", ["cell", "batch", "sample", "sample_cell"])
def test_accelerated_modes_run_only_the_chosen_op(mode: str) -> None:
    _, samples = draw_all(mode)
    x = torch.randn(BATCH, 5)
    for sample in samples:
        for edge in range(EDGES):
            ops = [CountingOp(k) for k in range(K)]
            out = sample.apply(edge, ops, x)
            assert sum(op.examples for op in ops) == BATCH  # each example through one op, once
            chosen = torch.as_tensor(sample.index)[..., edge]
            assert torch.equal(out, x * (chosen.float() + 1).view(-1, 1).expand(BATCH, 1))


def test_the_ablation_evaluates_every_op_with_the_same_forward_as_cell() -> None:
    a_all, every = draw_all("gdas_all_ops", seed=3)
    a_one, one = draw_all("cell", seed=3)  # the same draws: same generator, same call
    assert all(isinstance(s, AllOpsCellSample) for s in every) and all(isinstance(s, HardCellSample) for s in one)
    x = torch.randn(BATCH, 5)
    ops_all, ops_one = [CountingOp(k) for k in range(K)], [CountingOp(k) for k in range(K)]
    out_all = sum(s.apply(e, ops_all, x).pow(2).sum() for s in every for e in range(EDGES))
    out_one = sum(s.apply(e, ops_one, x).pow(2).sum() for s in one for e in range(EDGES))
    assert [op.calls for op in ops_all] == [len(TYPES) * EDGES] * K  # every op on every edge of every cell
    assert sum(op.calls for op in ops_one) == len(TYPES) * EDGES
    assert torch.equal(out_all, out_one)  # weights exactly 0/1: the same forward value
    out_all.backward()
    out_one.backward()
    # unchosen ops' weights get an exact-zero gradient; the alphas get gradient from every op's output
    assert all(op.scale.grad is not None for op in ops_all)
    assert torch.equal(torch.stack([op.scale.grad for op in ops_all]),
                       torch.stack([op.scale.grad if op.scale.grad is not None else torch.tensor(0.0)
                                    for op in ops_one]))
    assert not torch.allclose(a_all["normal"].grad, a_one["normal"].grad)


def test_sample_mode_gives_each_example_one_normal_and_one_reduction_cell() -> None:
    _, samples = draw_all("sample")
    normal = [s for s, t in zip(samples, TYPES) if t == "normal"]
    reduce = [s for s, t in zip(samples, TYPES) if t == "reduce"]
    assert all(isinstance(s, ExampleCellSample) for s in samples)
    assert all(s is normal[0] for s in normal) and all(s is reduce[0] for s in reduce)  # shared by every cell of a type
    assert not torch.equal(normal[0].index, reduce[0].index)
    rows = {tuple(row.tolist()) for row in normal[0].index}
    assert len(rows) > 1  # examples get different architectures


def test_sample_cell_mode_draws_every_cell_apart() -> None:
    _, samples = draw_all("sample_cell")
    normal = [s for s, t in zip(samples, TYPES) if t == "normal"]
    assert len({tuple(s.index.flatten().tolist()) for s in normal}) == len(normal)


@pytest.mark.parametrize("mode, shared", [("cell", False), ("batch", True), ("gdas_all_ops", False)])
def test_batch_wide_modes_share_a_draw_as_named(mode: str, shared: bool) -> None:
    _, samples = draw_all(mode)
    normal = [s for s, t in zip(samples, TYPES) if t == "normal"]
    same = [torch.equal(s.hard, normal[0].hard) for s in normal[1:]]
    assert all(same) if shared else not any(same)


@pytest.mark.parametrize("ops", ["paper", "xautodl"])
def test_sample_mode_supernet_equals_one_forward_per_example(ops: str) -> None:
    """Per example, the batched forward is that example's own architecture run alone (BN from running stats)."""
    torch.manual_seed(0)
    net = build_search_network(8, 2, 5, sampling="sample", layout="xautodl", ops=ops).eval()
    net.generator = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 8, 8)
    samples = net.sample(x.size(0))
    batched = net.forward_sampled(x, samples)
    looped = torch.cat([net.forward_sampled(x[i : i + 1], [s.select(slice(i, i + 1)) for s in samples])
                        for i in range(x.size(0))])
    assert torch.allclose(batched, looped, atol=1e-5)


@pytest.mark.parametrize("mode", sorted(SAMPLING_MODES))
@pytest.mark.parametrize("ops", ["paper", "xautodl"])
def test_every_mode_trains_the_supernet(mode: str, ops: str) -> None:
    torch.manual_seed(0)
    net = build_search_network(8, 1, 4, sampling=mode, ops=ops)
    net.generator = torch.Generator().manual_seed(0)
    seen = []
    for cell in net.cells:
        for edge in cell.edges:
            for op in edge:
                op.register_forward_hook(lambda m, i, o: seen.append(m))
    logits = net(torch.randn(3, 3, 8, 8))
    assert logits.shape == (3, 4)
    all_ops = mode in ("darts", "gdas_all_ops")
    if mode not in ("sample", "sample_cell"):  # per-example modes run an op once per group of examples
        assert len(seen) == EDGES * len(net.cells) * (K if all_ops else 1)
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.alphas())
