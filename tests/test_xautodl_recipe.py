"""The xautodl recipe's pieces that need no xautodl install: the op set, the recipe, the clip.

The comparison against xautodl 1.0.0 itself is tests/test_xautodl_equivalence.py.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gdas_cli.engine import Runtime
from gdas_cli.ops import PRIMITIVES, SEARCH_OPS, XAUTODL_OPS, Identity, Zero
from gdas_cli.search import build_search_network
from gdas_cli.search.config import SearchConfig, resolve_config
from gdas_cli.search.step import LAST_ARCH_GRAD, search_step
from gdas_cli.search.supernet import FixedReductionSearchCell, SearchCell


def test_recipes_pick_op_set_sampling_and_clip() -> None:
    paper, xautodl = resolve_config("paper", "cifar10", {}), resolve_config("xautodl", "cifar10", {})
    assert (paper.ops, paper.sampling, paper.layout, paper.grad_clip_with_alphas) == ("paper", "cell", "paper", False)
    assert (xautodl.ops, xautodl.sampling, xautodl.layout, xautodl.grad_clip_with_alphas) == (
        "xautodl", "batch", "xautodl", True)
    assert resolve_config("xautodl", "cifar10", {"sampling": "cell"}).sampling == "cell"


def test_a_config_saved_before_op_sets_reads_as_the_2019_code() -> None:
    new_keys = ("ops", "grad_clip_with_alphas")
    old = {k: v for k, v in SearchConfig(recipe="xautodl").to_dict().items() if k not in new_keys}
    config = SearchConfig.from_dict(old, "old config.json")
    assert (config.ops, config.grad_clip_with_alphas) == ("paper", False)


def test_xautodl_op_order_and_names() -> None:
    assert tuple(XAUTODL_OPS) == ("none", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
                                  "dil_conv_5x5", "avg_pool_3x3", "max_pool_3x3")
    assert SEARCH_OPS["paper"].order == PRIMITIVES and SEARCH_OPS["xautodl"].columns == (0, 7, 6, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("stride", [1, 2])
def test_xautodl_ops_have_bare_pools_and_biases_on_affine_free_convs(stride: int) -> None:
    ops = SEARCH_OPS["xautodl"]
    for name in ops.order:
        op = ops.build(name, 8, stride)
        assert op(torch.randn(2, 8, 8, 8)).shape == (2, 8, 8 // stride, 8 // stride)
        convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
        # every conv has a bias except the separable blocks' depthwise ones
        assert all((c.bias is not None) == (c.groups == 1) for c in convs), name
        assert not any(bn.affine for bn in op.modules() if isinstance(bn, nn.BatchNorm2d))
        if "pool" in name:
            assert isinstance(op, (nn.AvgPool2d, nn.MaxPool2d)), "xautodl's pools have no BN"
    assert isinstance(ops.build("skip_connect", 8, 1), Identity) and isinstance(ops.build("none", 8, 2), Zero)


def test_supernet_cells_by_op_set() -> None:
    for ops in SEARCH_OPS:
        net = build_search_network(8, 2, 4, frc=True, layout="xautodl", ops=ops)
        convs = [m for m in net.cells.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
        assert all((c.bias is not None) == (ops == "xautodl") for c in convs)
        frc = [c for c in net.cells if isinstance(c, FixedReductionSearchCell)]
        bns = [m for c in frc for m in c.modules() if isinstance(m, nn.BatchNorm2d)]
        # the 2019 code hard-codes an affine FRC (pool BNs included); xautodl's is affine-free
        assert all(bn.affine == (ops == "paper") for bn in bns)


def test_edges_are_built_in_xautodl_order_and_indexed_by_alpha_column() -> None:
    net = build_search_network(8, 1, 4, ops="xautodl")
    cell = next(c for c in net.cells if isinstance(c, SearchCell))
    assert isinstance(cell.edges[0][7], nn.MaxPool2d) and isinstance(cell.edges[0][1], Identity)
    by_column = cell.edge_ops(0)
    assert isinstance(by_column[PRIMITIVES.index("max_pool_3x3")], nn.MaxPool2d)
    assert isinstance(by_column[PRIMITIVES.index("skip_connect")], Identity)
    assert all(isinstance(by_column[k], type(cell.edges[0][p])) for k, p in enumerate(SEARCH_OPS["xautodl"].columns))


def _step_pair(scaler: bool, steps: int = 2) -> tuple[nn.Module, list[dict]]:
    torch.manual_seed(0)
    net = build_search_network(8, 1, 4, sampling="batch", layout="xautodl", ops="xautodl")
    net.set_tau(0.1)
    net.generator = torch.Generator().manual_seed(1)
    w = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a = torch.optim.Adam(net.alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    rt = Runtime(device=torch.device("cpu"), scaler=torch.amp.GradScaler("cpu") if scaler else None)
    gen = torch.Generator().manual_seed(2)
    for _ in range(steps):
        train = (torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 4, (4,), generator=gen))
        valid = (torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 4, (4,), generator=gen))
        search_step(net, net, w, a, train, valid, rt, 0.5, grad_clip_with_alphas=True)
    return net, [w.state_dict(), a.state_dict()]


def test_clip_with_alphas_under_a_loss_scaler_matches_the_plain_step() -> None:
    """Loss scaling by a power of two is exact, so fp16's scaler path must give the plain step's result:
    both optimizers' gradients are unscaled before the clip, the kept A-step gradients too."""
    plain, _ = _step_pair(scaler=False)
    scaled, _ = _step_pair(scaler=True)
    for (name, p), q in zip(plain.state_dict().items(), scaled.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), rtol=0, atol=1e-7), name


def test_the_kept_alpha_gradients_live_in_the_checkpointed_optimizer_state() -> None:
    """What xautodl leaves in .grad for the next clip is in the A optimizer's state, so a resumed
    run (which reloads that state) clips exactly as an uninterrupted one."""
    net, (_, a_state) = _step_pair(scaler=False, steps=1)
    kept = [s[LAST_ARCH_GRAD] for s in a_state["state"].values()]
    assert len(kept) == 2 and all(g.abs().sum() > 0 for g in kept)
    assert all(a.grad is None for a in net.alphas())
    buffer = io.BytesIO()
    torch.save(a_state, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=True)
    assert all(torch.equal(s[LAST_ARCH_GRAD], k) for s, k in zip(reloaded["state"].values(), kept))


def test_resumed_steps_equal_uninterrupted_steps() -> None:
    straight, _ = _step_pair(scaler=False, steps=2)
    first, (w_state, a_state) = _step_pair(scaler=False, steps=1)
    resumed = build_search_network(8, 1, 4, sampling="batch", layout="xautodl", ops="xautodl")
    resumed.load_state_dict(first.state_dict())
    resumed.set_tau(0.1)
    resumed.generator = torch.Generator().manual_seed(1)
    resumed.generator.set_state(first.generator.get_state())
    w = torch.optim.SGD(resumed.weights(), lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
    a = torch.optim.Adam(resumed.alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    w.load_state_dict(w_state)
    a.load_state_dict(a_state)
    gen = torch.Generator().manual_seed(2)
    batches = [(torch.randn(4, 3, 8, 8, generator=gen), torch.randint(0, 4, (4,), generator=gen)) for _ in range(4)]
    search_step(resumed, resumed, w, a, batches[2], batches[3], Runtime(device=torch.device("cpu")), 0.5,
                grad_clip_with_alphas=True)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_without_a_clip_nothing_is_kept() -> None:
    torch.manual_seed(0)
    net = build_search_network(8, 1, 4, sampling="batch", layout="xautodl", ops="xautodl")
    w = torch.optim.SGD(net.weights(), lr=0.1)
    a = torch.optim.Adam(net.alphas(), lr=1e-3)
    batch = (torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    search_step(net, net, w, a, batch, batch, Runtime(device=torch.device("cpu")), 0.0, grad_clip_with_alphas=True)
    assert all(LAST_ARCH_GRAD not in s for s in a.state_dict()["state"].values())
    assert F.cross_entropy(net(batch[0]), batch[1]).isfinite()
