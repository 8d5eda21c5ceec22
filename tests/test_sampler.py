"""The GDAS sampler: hard one-hot forward, straight-through gradient, granularities, seeding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gdas_cli import GdasError, sampler
from gdas_cli.sampler import SAMPLING_MODES, draw, linear_tau, sample_cells
from gdas_cli.search import build_search_network

K = 8
EDGES = 14


class CountingOp(nn.Module):
    """Scales its input by a learnable factor and counts the examples it sees."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(k + 1)))
        self.calls = 0
        self.examples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.examples += x.size(0)
        return x * self.scale


def _alphas(n_types: int = 2, seed: int = 0) -> dict[str, nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    names = ["normal", "reduce"][:n_types]
    return {t: nn.Parameter(torch.randn(EDGES, K, generator=gen)) for t in names}


def test_draw_forward_is_exactly_one_hot() -> None:
    alphas = torch.randn(50, EDGES, K)
    for tau in (10.0, 1.0, 0.1):
        result = draw(alphas, tau)
        assert set(result.hard.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(result.hard.sum(-1), torch.ones(50, EDGES))
        assert torch.equal(result.hard.argmax(-1), result.index)


def test_draw_gradient_is_the_soft_gradient() -> None:
    alphas = nn.Parameter(torch.randn(EDGES, K))
    gen = torch.Generator().manual_seed(3)
    result = draw(alphas, 2.0, generator=gen)
    (result.hard * torch.arange(K, dtype=torch.float32)).sum().backward()
    soft_alphas = alphas.detach().clone().requires_grad_(True)
    noise = sampler.gumbel_noise(alphas.shape, alphas, torch.Generator().manual_seed(3))
    probs = torch.softmax((torch.log_softmax(soft_alphas, -1) + noise) / 2.0, -1)
    (probs * torch.arange(K, dtype=torch.float32)).sum().backward()
    assert torch.allclose(alphas.grad, soft_alphas.grad, atol=1e-6)


def test_draw_resamples_non_finite_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sampler.gumbel_noise
    calls = {"n": 0}

    def flaky(shape, like, generator):
        calls["n"] += 1
        noise = real(shape, like, generator)
        return noise.fill_(float("inf")) if calls["n"] == 1 else noise

    monkeypatch.setattr(sampler, "gumbel_noise", flaky)
    result = draw(torch.zeros(EDGES, K), 1.0)
    assert calls["n"] == 2 and torch.isfinite(result.hard).all()


def test_draw_gives_up_on_nan_alphas() -> None:
    with pytest.raises(GdasError, match="non-finite"):
        draw(torch.full((2, K), float("nan")), 1.0)


@pytest.mark.parametrize("mode", ["cell", "batch", "sample"])
def test_only_the_chosen_op_runs_and_weight_is_one_hot(mode: str) -> None:
    alphas = _alphas()
    cell_types = ["normal", "normal", "reduce"]
    samples = sample_cells(alphas, cell_types, mode, tau=1.0, batch_size=6, generator=torch.Generator().manual_seed(1))
    x = torch.randn(6, 3)
    for sample in samples:
        for edge in range(EDGES):
            ops = [CountingOp(k) for k in range(K)]
            out = sample.apply(edge, ops, x)
            # every example went through exactly one op, and the output is that op's output (weight 1)
            assert sum(op.examples for op in ops) == 6
            if mode != "sample":
                assert sum(op.calls for op in ops) == 1
            chosen = torch.as_tensor(sample.index)[..., edge] if mode == "sample" else sample.index[edge]
            expected = x * (torch.as_tensor(chosen, dtype=torch.float32) + 1).view(-1, 1)
            assert torch.equal(out, expected)


@pytest.mark.parametrize("mode", ["cell", "batch", "sample"])
def test_gradient_reaches_every_alpha_of_a_sampled_edge(mode: str) -> None:
    alphas = _alphas()
    samples = sample_cells(alphas, ["normal", "reduce"], mode, tau=1.0, batch_size=4,
                           generator=torch.Generator().manual_seed(2))
    x = torch.randn(4, 3)
    ops = [CountingOp(k) for k in range(K)]
    loss = sum(samples[i].apply(0, ops, x).pow(2).sum() for i in range(2))
    loss.backward()
    for alpha in alphas.values():
        assert (alpha.grad[0] != 0).all()  # edge 0 was sampled: all 8 entries get gradient
        assert (alpha.grad[1:] == 0).all()  # edges not run get none


def test_darts_mode_runs_every_op_with_softmax_weights() -> None:
    alphas = _alphas(1)
    (sample,) = sample_cells(alphas, ["normal"], "darts", tau=1.0)
    ops = [CountingOp(k) for k in range(K)]
    x = torch.randn(2, 3)
    out = sample.apply(5, ops, x)
    weights = torch.softmax(alphas["normal"][5], -1)
    assert all(op.calls == 1 for op in ops)
    assert torch.allclose(out, x * (weights * torch.arange(1, K + 1)).sum())


def test_granularities_share_draws_as_documented() -> None:
    alphas = _alphas()
    types = ["normal"] * 6 + ["reduce"] * 2
    batch = sample_cells(alphas, types, "batch", 1.0, generator=torch.Generator().manual_seed(0))
    assert all(s is batch[0] for s in batch[:6]) and batch[6] is batch[7]
    cell = sample_cells(alphas, types, "cell", 1.0, generator=torch.Generator().manual_seed(0))
    assert len({tuple(s.index) for s in cell}) > 1  # 6 independent draws of 14 edges: distinct
    per_example = sample_cells(alphas, types, "sample", 1.0, batch_size=16, generator=torch.Generator().manual_seed(0))
    assert per_example[0].index.shape == (16, EDGES)
    assert len({tuple(row.tolist()) for row in per_example[0].index}) > 1


@pytest.mark.parametrize("mode", sorted(SAMPLING_MODES))
def test_one_draw_call_per_forward(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = sampler.draw

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(sampler, "draw", counting)
    net = build_search_network(C=4, N=1, num_classes=3, sampling=mode)
    net(torch.randn(2, 3, 8, 8))
    assert calls["n"] == (0 if mode == "darts" else 1)


def test_seeded_generator_reproduces_draws() -> None:
    alphas = _alphas()
    first = sample_cells(alphas, ["normal", "reduce"], "sample", 1.0, 8, torch.Generator().manual_seed(7))
    again = sample_cells(alphas, ["normal", "reduce"], "sample", 1.0, 8, torch.Generator().manual_seed(7))
    other = sample_cells(alphas, ["normal", "reduce"], "sample", 1.0, 8, torch.Generator().manual_seed(8))
    assert all(torch.equal(a.index, b.index) for a, b in zip(first, again))
    assert not all(torch.equal(a.index, b.index) for a, b in zip(first, other))
    torch.manual_seed(5)
    global_first = draw(alphas["normal"], 1.0).index
    torch.manual_seed(5)
    assert torch.equal(global_first, draw(alphas["normal"], 1.0).index)


def test_sample_mode_equals_a_per_example_loop() -> None:
    torch.manual_seed(0)
    net = build_search_network(C=4, N=1, num_classes=5, sampling="sample").eval()  # eval: BN uses running stats
    net.generator = torch.Generator().manual_seed(11)
    x = torch.randn(6, 3, 8, 8)
    samples = net.sample(x.size(0))
    assert len({tuple(samples[0].index[:, e].tolist()) for e in range(EDGES)}) > 1
    batched = net.forward_sampled(x, samples)
    looped = torch.cat([
        net.forward_sampled(x[i : i + 1], [None if s is None else s.select(slice(i, i + 1)) for s in samples])
        for i in range(x.size(0))
    ])
    assert torch.allclose(batched, looped, atol=1e-5)


def test_linear_tau_endpoints() -> None:
    assert linear_tau(0, 240, 10.0, 1.0) == 10.0
    assert linear_tau(239, 240, 10.0, 1.0) == pytest.approx(1.0)
    assert linear_tau(1, 3, 10.0, 0.1) == pytest.approx(5.05)
    assert linear_tau(0, 1, 10.0, 1.0) == 10.0
