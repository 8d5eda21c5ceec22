"""The NAS-Bench-201 building blocks against xautodl 1.0.0 itself.

- Arch strings: ours round-trip, and agree with xautodl's `Structure.str2structure` / `.tostr()`.
- `NB201Network` against `TinyNetwork`, and `NB201SearchNetwork` against `TinyNetworkGDAS`: the same
  seed builds the same tensors, xautodl's tensors copied into ours by a name mapping (below) give
  the same logits and gradients in float64 within 1e-10 (the supernets on the same Gumbel noise),
  and two search steps (our `search_step` against the loop body of xautodl's
  `exps/NAS-Bench-201-algos/GDAS.py`) end with the same weights and alphas.
- Parameter counts and mult-adds against xautodl's counters; derive against `TinyNetworkGDAS.genotype`.

The measured maximum differences are printed (`pytest -s`). Needs `pip install --no-deps
xautodl==1.0.0`; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import random
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gdas_cli.engine import Runtime
from gdas_cli.errors import GdasError
from gdas_cli.metrics import count_mult_adds, count_parameters
from gdas_cli.models.nb201 import NB201_OPS, NB201Network
from gdas_cli.nb201 import (
    EDGES,
    NODES,
    OPS,
    edge_index,
    edge_ops,
    format_arch_str,
    looks_like_arch_str,
    nodes_from_edge_ops,
    parse_arch_str,
)
from gdas_cli.sampler import SAMPLING_MODES
from gdas_cli.search import step as step_module
from gdas_cli.search.nb201_derive import derive_nb201
from gdas_cli.search.nb201_supernet import ChosenEdgeSample, NB201SearchNetwork, UnchosenWeightsSample
from gdas_cli.search.step import search_step

try:
    import xautodl.models as xautodl_models
    from xautodl.models.cell_operations import SearchSpaceNames
    from xautodl.models.cell_searchs.genotypes import Structure
    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell
    from xautodl.utils import count_parameters as xautodl_count_parameters
    from xautodl.utils import get_model_infos
except ImportError as err:
    pytest.skip(f"xautodl is not importable ({err}); pip install --no-deps xautodl==1.0.0", allow_module_level=True)

TOLERANCE = 1e-10
C, N, CLASSES, BATCH, SIZE = 4, 2, 5, 4, 8  # small: two stride-2 blocks take 8x8 to 2x2

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|none~2|",
]
ARCH_IDS = ["gdas-like", "all-none", "all-skip", "all-conv3x3", "mixed-a", "mixed-b"]


# ---------------------------------------------------------------- the space and its arch strings


def test_ops_and_edges_are_xautodl_s() -> None:
    assert OPS == tuple(SearchSpaceNames["nas-bench-201"]) and tuple(NB201_OPS) == OPS
    cell = NAS201SearchCell(1, 1, 1, NODES, list(OPS))
    assert cell.edge2index == {f"{i}<-{j}": e for e, (i, j) in enumerate(EDGES)}
    assert [edge_index(i, j) for i, j in EDGES] == list(range(len(EDGES)))


def test_the_core_module_loads_no_torch() -> None:
    code = "import sys, gdas_cli.nb201; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_arch_strings_round_trip_and_agree_with_xautodl(arch: str) -> None:
    nodes = parse_arch_str(arch)
    assert format_arch_str(nodes) == arch and parse_arch_str(format_arch_str(nodes)) == nodes
    theirs = Structure.str2structure(arch)
    assert tuple(theirs.nodes) == nodes  # xautodl parses it to the same nodes
    assert Structure(list(nodes)).tostr() == arch  # and prints ours as we do


def test_every_sampled_cell_agrees_with_xautodl_both_ways() -> None:
    rng = random.Random(0)
    for _ in range(300):
        nodes = nodes_from_edge_ops([rng.choice(OPS) for _ in EDGES])
        text = format_arch_str(nodes)
        assert tuple(Structure.str2structure(text).nodes) == nodes
        assert parse_arch_str(Structure(list(nodes)).tostr()) == nodes
        assert nodes_from_edge_ops(edge_ops(nodes)) == nodes


GOOD = ARCHS[0]
BAD_STRINGS = [
    ("", "has 1 node(s)"),
    ("|none~0|+|none~0|none~1|", "has 2 node(s)"),
    (GOOD + "+|none~0|", "has 4 node(s)"),
    (GOOD.replace("skip_connect", "sep_conv_3x3"), "unknown op 'sep_conv_3x3'"),
    (GOOD.replace("skip_connect~0", "skip_connect"), "an edge is written op~index"),
    (GOOD.replace("skip_connect~0", "skip_connect~0~1"), "an edge is written op~index"),
    (GOOD.replace("skip_connect~0", "skip_connect~x"), "input index 'x'"),
    (GOOD.replace("skip_connect~0", "skip_connect~-1"), "input index '-1'"),
    (GOOD.replace("skip_connect~0", "skip_connect~00"), "input index '00'"),
    ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 reads node 1"),
    ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "must read nodes 0..1 once each, it reads 0, 0"),
    ("|none~0|+|none~1|+|none~0|none~1|none~2|", "must read nodes 0..1 once each, it reads 1"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "in order 0..1, got [1, 0]"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|", "node 3 reads node 3"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "bars at both ends"),
    ("|none~0||+|none~0|none~1|+|none~0|none~1|none~2|", "empty edge"),
    ("|none~0|+||+|none~0|none~1|none~2|", "empty edge"),
    (GOOD + "\n", "whitespace"),
]


@pytest.mark.parametrize("text, fragment", BAD_STRINGS)
def test_bad_arch_strings_say_what_is_wrong_on_one_line(text: str, fragment: str) -> None:
    with pytest.raises(GdasError) as caught:
        parse_arch_str(text)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message


@pytest.mark.parametrize(
    "nodes, fragment",
    [
        ((), "has 3 nodes"),
        (((("none", 0),), (("none", 0), ("none", 1))), "has 3 nodes"),
        (((("conv", 0),), (("none", 0), ("none", 1)), (("none", 0), ("none", 1), ("none", 2))), "unknown op 'conv'"),
        (((("none", 0),), (("none", 0), ("none", 1)), (("none", 0), ("none", 1))), "must read nodes 0..2"),
        (((("none", "0"),), (("none", 0), ("none", 1)), (("none", 0), ("none", 1), ("none", 2))), "input '0'"),
        ((("none",), (("none", 0), ("none", 1)), (("none", 0), ("none", 1), ("none", 2))), "(op, input) pairs"),
    ],
)
def test_bad_nodes_do_not_format(nodes: tuple, fragment: str) -> None:
    with pytest.raises(GdasError, match=re.escape(fragment)):
        format_arch_str(nodes)


def test_an_arch_string_must_be_text() -> None:
    with pytest.raises(GdasError, match="must be text, got int"):
        parse_arch_str(123)  # type: ignore[arg-type]


def test_looks_like_arch_str() -> None:
    assert looks_like_arch_str(GOOD) and looks_like_arch_str("|broken")
    assert not any(looks_like_arch_str(t) for t in ("gdas_frc", "gdas_frc@1.0.0", "cell.json", "hf-hub:o/r", ""))


# ---------------------------------------------------------------- name mappings (xautodl -> ours)

# TinyNetwork: `.op` wrappers dropped, `lastact` -> `last_act`, the cell's `layers` -> `edges` (the
# same index: both list the edges node by node, inputs in order).
INFER_RENAMES: list[tuple[str, str]] = [(r"^lastact\.", "last_act."), (r"\.layers\.", ".edges."), (r"\.op\.", ".")]


def _edge_row(match: re.Match) -> str:
    return f".edges.{edge_index(int(match.group(1)), int(match.group(2)))}."


# TinyNetworkGDAS: the same, its edge keys "i<-j" -> our edge (alpha row) index, its alphas -> alphas_cell
SEARCH_RENAMES: list = [(r"^arch_parameters$", "alphas_cell"), (r"^lastact\.", "last_act."),
                        (r"\.edges\.(\d+)<-(\d+)\.", _edge_row), (r"\.op\.", ".")]


def mapped(name: str, renames: list) -> str:
    for pattern, replacement in renames:
        name = re.sub(pattern, replacement, name)
    return name


Pair = tuple[str, torch.Tensor, torch.Tensor]  # our name, our tensor, xautodl's


def tensor_pairs(ours: nn.Module, theirs: nn.Module | dict[str, torch.Tensor], renames: list) -> list[Pair]:
    """Every parameter and buffer of ours with xautodl's under the mapped name (shapes checked, all covered)."""
    mine = ours.state_dict(keep_vars=True)
    state = theirs if isinstance(theirs, dict) else theirs.state_dict(keep_vars=True)
    pairs = []
    for name, tensor in state.items():
        our_name = mapped(name, renames)
        assert our_name in mine and mine[our_name].shape == tensor.shape, (name, our_name)
        pairs.append((our_name, mine[our_name], tensor))
    assert sorted(p[0] for p in pairs) == sorted(mine), "every tensor of ours has one of xautodl's"
    return pairs


def copy_tensors(ours: nn.Module, theirs: nn.Module, renames: list) -> None:
    with torch.no_grad():
        for _, mine, other in tensor_pairs(ours, theirs, renames):
            mine.copy_(other)


def perturb(module: nn.Module, seed: int) -> None:
    """Move every parameter and running statistic off its initial value (BN's ones and zeros included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if tensor.is_floating_point():
                noise = 0.05 * torch.randn(tensor.shape, generator=gen, dtype=torch.float64).to(tensor.dtype)
                tensor.add_(noise.abs() if name.endswith("running_var") else noise)


def max_difference(pairs: list[Pair], grad: bool = False) -> float:
    worst = 0.0
    for name, mine, other in pairs:
        a, b = (mine.grad, other.grad) if grad else (mine, other)
        assert (a is None) == (b is None), f"{name}: a gradient on one side only"
        if a is not None and a.numel():
            worst = max(worst, (a.double() - b.double()).abs().max().item())
    return worst


def images(seed: int, size: int = SIZE, batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float64),
            torch.randint(0, CLASSES, (batch,), generator=gen))


# ---------------------------------------------------------------- the final network vs TinyNetwork


def tiny_network(arch: str, C: int, N: int, num_classes: int) -> nn.Module:
    return xautodl_models.get_cell_based_tiny_net({"name": "infer.tiny", "C": C, "N": N,
                                                   "genotype": Structure.str2structure(arch),
                                                   "num_classes": num_classes})


def infer_pair(arch: str, seed: int, C: int = C, N: int = N, classes: int = CLASSES) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    ours = NB201Network(parse_arch_str(arch), C=C, N=N, num_classes=classes)
    torch.manual_seed(seed)
    theirs = tiny_network(arch, C, N, classes)
    return ours, theirs


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_same_seed_builds_tiny_network_s_weights(arch: str) -> None:
    ours, theirs = infer_pair(arch, seed=3)
    assert max_difference(tensor_pairs(ours, theirs, INFER_RENAMES)) == 0.0


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_network_matches_tiny_network(arch: str) -> None:
    """Train mode (batch statistics), then eval mode with the running statistics both updated."""
    ours, theirs = infer_pair(arch, seed=1)
    ours, theirs = ours.double(), theirs.double()
    perturb(theirs, seed=2)
    copy_tensors(ours, theirs, INFER_RENAMES)
    x, labels = images(4)
    x_ours, x_theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    their_features, their_logits = theirs(x_theirs)
    feature_map = ours.forward_features(x_ours)  # one pass: each forward updates the running statistics
    our_features, our_logits = ours.forward_head(feature_map, pre_logits=True), ours.forward_head(feature_map)
    F.cross_entropy(their_logits, labels).backward()
    F.cross_entropy(our_logits, labels).backward()
    pairs = tensor_pairs(ours, theirs, INFER_RENAMES)
    ours.eval(), theirs.eval()
    diffs = {
        "logits": (our_logits - their_logits).abs().max().item(),
        "features": (our_features - their_features).abs().max().item(),
        "grads": max_difference([p for p in pairs if p[1].requires_grad], grad=True),
        "input grad": (x_ours.grad - x_theirs.grad).abs().max().item(),
        "buffers": max_difference([p for p in pairs if not p[1].requires_grad]),
        "eval logits": (ours(x) - theirs(x)[1]).abs().max().item(),
    }
    print(f"\n[TinyNetwork {arch}] max |ours - xautodl|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    assert all(v <= TOLERANCE for v in diffs.values()), diffs
    assert ours.classifier.weight.grad.abs().sum() > 0
    # the all-none cell outputs zeros: nothing reaches the input, on both sides
    assert (x_ours.grad.abs().sum() > 0) == (arch != ARCHS[1])


PARAM_ARCHS = ARCHS[:4]  # with the all-none (fewest) and all-conv3x3 (most) cells


@pytest.mark.parametrize("num_classes", [10, 100, 120])
@pytest.mark.parametrize("arch", PARAM_ARCHS, ids=ARCH_IDS[:4])
def test_parameter_counts_equal_tiny_network_s(arch: str, num_classes: int) -> None:
    ours = NB201Network(parse_arch_str(arch), C=16, N=5, num_classes=num_classes)
    theirs = tiny_network(arch, 16, 5, num_classes)
    assert count_parameters(ours) == xautodl_count_parameters(theirs, None) == sum(
        p.numel() for p in theirs.parameters()
    )


@pytest.mark.parametrize("C_, N_, num_classes", [(1, 1, 1), (3, 1, 2), (8, 3, 7)])
def test_parameter_counts_equal_at_corner_widths(C_: int, N_: int, num_classes: int) -> None:
    for arch in PARAM_ARCHS:
        ours = NB201Network(parse_arch_str(arch), C=C_, N=N_, num_classes=num_classes)
        assert count_parameters(ours) == xautodl_count_parameters(tiny_network(arch, C_, N_, num_classes), None)


# xautodl's get_model_infos (the counter behind the benchmark's FLOPs) adds up forward hooks on Conv2d
# and Linear: multiply-adds plus one per output for a bias. Its pool hooks run but are left out of the
# total; BN, ReLU and the additions are not counted. Ours (torch's flop counter, halved) counts the
# conv and linear multiply-adds without biases. TinyNetwork's convs have no bias, so the two differ
# by the classifier's bias alone: num_classes per image.
@pytest.mark.parametrize("size, num_classes", [(32, 10), (32, 100), (16, 120)], ids=["cifar10", "cifar100", "in16"])
@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_mult_adds_equal_xautodl_s_count_less_the_classifier_bias(arch: str, size: int, num_classes: int) -> None:
    ours = NB201Network(parse_arch_str(arch), C=16, N=5, num_classes=num_classes)
    their_mflops, _ = get_model_infos(tiny_network(arch, 16, 5, num_classes), (1, 3, size, size))
    assert round(their_mflops * 1e6) == count_mult_adds(ours, (1, 3, size, size)) + num_classes


def test_all_none_mult_adds_by_hand() -> None:
    """An all-none cell leaves the stem, the two ResNet blocks and the classifier: counted by hand."""
    ours = NB201Network(parse_arch_str(ARCHS[1]), C=16, N=5, num_classes=10)
    stem = 32 * 32 * 16 * 3 * 9
    block = sum(hw * hw * (c * 2 * c * 9 + 2 * c * 2 * c * 9 + c * 2 * c) for hw, c in [(16, 16), (8, 32)])
    assert count_mult_adds(ours, (1, 3, 32, 32)) == stem + block + 64 * 10


def test_timm_interface() -> None:
    net = NB201Network(parse_arch_str(ARCHS[0]), C=C, N=1, num_classes=CLASSES).double()
    x, _ = images(0)
    assert net.num_classes == CLASSES and net.num_features == 4 * C
    assert net(x).shape == (BATCH, CLASSES) and net.get_classifier() is net.classifier
    assert net.forward_features(x).shape == (BATCH, 4 * C, SIZE // 4, SIZE // 4)
    net.reset_classifier(0)
    assert net.num_classes == 0 and net(x).shape == (BATCH, 4 * C)
    net.reset_classifier(7)
    assert net(x).shape == (BATCH, 7) and net.classifier.weight.dtype == torch.float64
    with pytest.raises(GdasError):
        net.reset_classifier(-1)
    with pytest.raises(GdasError):
        net.reset_classifier(3, global_pool="max")
    for bad in [{"C": 0}, {"N": 0}, {"num_classes": -1}]:
        with pytest.raises(GdasError):
            NB201Network(parse_arch_str(ARCHS[0]), **bad)


# ---------------------------------------------------------------- the supernet vs TinyNetworkGDAS


def search_pair(track: bool, seed: int, tau: float = 10.0, **ours_kwargs) -> tuple[nn.Module, nn.Module]:
    """Ours and xautodl's (as GDAS.py builds it), each from the same global seed, in float64."""
    torch.manual_seed(seed)
    ours = NB201SearchNetwork(C, N, CLASSES, track_running_stats=track, **ours_kwargs)
    torch.manual_seed(seed)
    theirs = xautodl_models.get_cell_based_tiny_net({
        "name": "GDAS", "C": C, "N": N, "max_nodes": NODES, "num_classes": CLASSES,
        "space": xautodl_models.get_search_spaces("cell", "nas-bench-201"), "affine": False,
        "track_running_stats": track,
    })
    assert type(theirs).__name__ == "TinyNetworkGDAS" and list(theirs.op_names) == list(OPS)
    ours.set_tau(tau)
    theirs.set_tau(tau)
    return ours.double(), theirs.double()


@contextlib.contextmanager
def served_noise(samples: list[torch.Tensor]) -> Iterator[None]:
    """Serve `samples`, in order, to every `Tensor.exponential_` call (shapes checked).

    Both draw Gumbel noise as -log(Exponential(1)), xautodl from the global RNG in its alphas' shape
    (6, 5), ours from the run's generator stacked per cell type (1, 6, 5): no seed gives both the
    same noise, so it is injected and the comparison is one of the computation."""
    queue = list(samples)

    def fill(self: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        sample = queue.pop(0)
        assert self.shape == sample.shape, (self.shape, sample.shape)
        with torch.no_grad():
            return self.copy_(sample)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "exponential_", fill)
        yield
    assert not queue, f"{len(queue)} noise samples left: a forward drew less than expected"


def noise_for(forwards: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Exponential(1) samples for `forwards` forwards: xautodl's (6, 5) each, ours the same as (1, 6, 5)."""
    gen = torch.Generator().manual_seed(seed)
    theirs = [torch.empty(len(EDGES), len(OPS), dtype=torch.float64).exponential_(generator=gen)
              for _ in range(forwards)]
    return theirs, [e.unsqueeze(0) for e in theirs]


TRACK = [pytest.param(False, id="no-running-stats"), pytest.param(True, id="running-stats")]


@pytest.mark.parametrize("track", TRACK)
def test_same_seed_builds_tiny_network_gdas_s_supernet(track: bool) -> None:
    ours, theirs = search_pair(track, seed=3)
    assert max_difference(tensor_pairs(ours, theirs, SEARCH_RENAMES)) == 0.0
    assert count_parameters(ours) == xautodl_count_parameters(theirs, None)


def forward_backward(ours: nn.Module, theirs: nn.Module, seed: int) -> dict[str, float]:
    """One forward and backward of each on the same batch and noise; the max differences."""
    x, labels = images(seed)
    their_noise, our_noise = noise_for(1, seed)
    with served_noise(their_noise):
        _, their_logits = theirs(x)
    with served_noise(our_noise):
        our_logits = ours(x)
    F.cross_entropy(their_logits, labels).backward()
    F.cross_entropy(our_logits, labels).backward()
    pairs = [p for p in tensor_pairs(ours, theirs, SEARCH_RENAMES) if p[1].requires_grad]
    return {
        "logits": (our_logits - their_logits).abs().max().item(),
        "alpha grads": max_difference([p for p in pairs if p[0] == "alphas_cell"], grad=True),
        "weight grads": max_difference([p for p in pairs if p[0] != "alphas_cell"], grad=True),
    }


@pytest.mark.parametrize("track", TRACK)
@pytest.mark.parametrize("tau", [10.0, 0.1])
def test_supernet_logits_and_gradients_match(track: bool, tau: float) -> None:
    ours, theirs = search_pair(track, seed=1, tau=tau)
    perturb(theirs, seed=2)
    copy_tensors(ours, theirs, SEARCH_RENAMES)
    diffs = forward_backward(ours, theirs, seed=5)
    print(f"\n[TinyNetworkGDAS track={track} tau={tau}] max |ours - xautodl|: "
          + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    assert all(v <= TOLERANCE for v in diffs.values()), diffs
    assert (ours.alphas_cell.grad != 0).all(), "xautodl's edge sum sends a gradient to every alpha"


def test_without_the_unchosen_weights_only_the_alpha_gradients_differ() -> None:
    """The check of xautodl's edge sum has teeth: multiplying the chosen op only (the DARTS-space
    supernet) keeps logits and weight gradients but changes the alphas' gradients."""
    ours, theirs = search_pair(False, seed=1, unchosen_weights=False)
    perturb(theirs, seed=2)
    copy_tensors(ours, theirs, SEARCH_RENAMES)
    diffs = forward_backward(ours, theirs, seed=5)
    print(f"\n[chosen op only vs xautodl] {diffs}")
    assert diffs["logits"] <= TOLERANCE and diffs["weight grads"] <= TOLERANCE
    assert diffs["alpha grads"] > 1e-6


SGD = {"lr": 0.025, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}  # configs/.../algos/GDAS.config
ADAM = {"lr": 3e-4, "betas": (0.5, 0.999), "weight_decay": 1e-3}  # GDAS.sh's arch lr and weight decay


def xautodl_search_step(network: nn.Module, w_optimizer, a_optimizer, base, arch, clip: float) -> float:
    """The loop body of xautodl's GDAS.py `search_func`; returns the W step's gradient norm."""
    w_optimizer.zero_grad()
    _, logits = network(base[0])
    F.cross_entropy(logits, base[1]).backward()
    norm = torch.nn.utils.clip_grad_norm_(network.parameters(), clip)  # every parameter, alphas included
    w_optimizer.step()
    a_optimizer.zero_grad()
    _, logits = network(arch[0])
    F.cross_entropy(logits, arch[1]).backward()
    a_optimizer.step()
    return norm.item()


def run_steps(track: bool, clip: float, tau: float, with_alphas: bool = True) -> list[dict[str, float]]:
    """Two search steps on both sides; the max weight/buffer and alpha differences after each."""
    ours, theirs = search_pair(track, seed=7, tau=tau)
    copy_tensors(ours, theirs, SEARCH_RENAMES)
    their_w, their_a = torch.optim.SGD(theirs.get_weights(), **SGD), torch.optim.Adam(theirs.get_alphas(), **ADAM)
    our_w, our_a = torch.optim.SGD(ours.weights(), **SGD), torch.optim.Adam(ours.alphas(), **ADAM)
    rt = Runtime(device=torch.device("cpu"))
    their_noise, our_noise = noise_for(4, seed=11)
    batches = [(images(20 + 2 * s), images(21 + 2 * s)) for s in range(2)]
    norms, their_after = [], []
    with served_noise(their_noise):
        for train, valid in batches:
            norms.append(xautodl_search_step(theirs, their_w, their_a, train, valid, clip))
            their_after.append({k: v.detach().clone() for k, v in theirs.state_dict().items()})
    diffs = []
    with served_noise(our_noise):
        for (train, valid), after, norm in zip(batches, their_after, norms, strict=True):
            search_step(ours, ours, our_w, our_a, train, valid, rt, clip, grad_clip_with_alphas=with_alphas)
            pairs = tensor_pairs(ours, after, SEARCH_RENAMES)
            diffs.append({"alphas": max_difference([p for p in pairs if p[0] == "alphas_cell"]),
                          "weights": max_difference([p for p in pairs if p[0] != "alphas_cell"]),
                          "their grad norm": norm})
    return diffs


# GDAS.py's clip 5 at the first and the last epoch's tau (it acts: these tiny float64 nets' gradient
# norm is about 10-20), and a clip that never acts.
STEP_SETTINGS = [pytest.param(5.0, 10.0, True, id="clip5-tau10"), pytest.param(5.0, 0.1, True, id="clip5-tau0.1"),
                 pytest.param(1e3, 10.0, False, id="no-clip")]


@pytest.mark.parametrize("track", TRACK)
@pytest.mark.parametrize("clip, tau, clips", STEP_SETTINGS)
def test_search_steps_match_gdas_py(track: bool, clip: float, tau: float, clips: bool) -> None:
    diffs = run_steps(track, clip, tau)
    for step, d in enumerate(diffs, 1):
        print(f"\n[TinyNetworkGDAS track={track} clip {clip} tau {tau}] after step {step}: max |ours - xautodl| "
              f"alphas {d['alphas']:.3g}, weights and BN buffers {d['weights']:.3g} "
              f"(xautodl's grad norm {d['their grad norm']:.3g})")
    assert all(d[k] <= TOLERANCE for d in diffs for k in ("alphas", "weights")), diffs
    assert all((d["their grad norm"] > clip) == clips for d in diffs)


@pytest.mark.parametrize("variant", ["weights-only clip", "no A-step carry"])
def test_the_step_check_has_teeth(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Either half of xautodl's clip left out ends elsewhere: clipping the weights alone (search_step's
    default), or counting only the W step's own alpha gradients, not those the last A step left."""
    if variant == "no A-step carry":
        monkeypatch.setattr(step_module, "_keep_arch_grads", lambda *args: None)
    diffs = run_steps(False, 5.0, 0.1, with_alphas=variant == "no A-step carry")
    print(f"\n[{variant} vs xautodl] max weight difference after step 1 {diffs[0]['weights']:.3g}, "
          f"after step 2 {diffs[1]['weights']:.3g}")
    assert diffs[-1]["weights"] > 100 * TOLERANCE


def test_supernet_interface() -> None:
    net = NB201SearchNetwork(C, 1, CLASSES)
    assert list(net.arch_parameters()) == ["cell"] and net.alphas() == [net.alphas_cell]
    assert net.alphas_cell.shape == (len(EDGES), len(OPS))
    weights = list(net.weights())
    assert len(weights) + 1 == len(list(net.parameters())) and all(w is not net.alphas_cell for w in weights)
    net.set_tau(2)
    assert net.tau == 2.0 and isinstance(net.tau, float)
    probs = net.probabilities()["cell"]
    assert probs.shape == (6, 5) and torch.allclose(probs.sum(-1), torch.ones(6))
    samples = net.sample(BATCH)
    assert [s is None for s in samples] == [False, True, False, True, False]
    assert samples[0] is not samples[2] and samples[0].inner is samples[2].inner  # one draw shared by all cells
    assert net.derive() == derive_nb201(net.alphas_cell.detach())
    for bad in [{"sampling": "nope"}, {"num_classes": 0}, {"C": 0}, {"N": 0}]:
        with pytest.raises(GdasError):
            NB201SearchNetwork(**{"C": C, "N": 1, **bad})


@pytest.mark.parametrize("mode", list(SAMPLING_MODES))
def test_every_sampling_mode_trains_the_alphas(mode: str) -> None:
    net = NB201SearchNetwork(C, 1, CLASSES, sampling=mode).double()
    net.generator = torch.Generator().manual_seed(0)
    x, labels = images(1)
    F.cross_entropy(net(x), labels).backward()
    assert torch.isfinite(net.alphas_cell.grad).all() and net.alphas_cell.grad.abs().sum() > 0


@pytest.mark.parametrize("step", ["W", "A"])
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("unchosen", [True, False], ids=["unchosen-weights", "chosen-only"])
def test_batch_draws_skip_the_product_bit_for_bit(unchosen: bool, amp: bool, step: str) -> None:
    """The edges of a batch-wide draw return the op's output itself (`_ChosenEdge`): the logits and
    every gradient equal, bit for bit, those of the product-and-sum form on the same draw (in the A
    step, weights frozen, the first cell's edges see inputs without a gradient)."""
    torch.manual_seed(0)
    net = NB201SearchNetwork(C, N, CLASSES, unchosen_weights=unchosen)
    net.generator = torch.Generator()
    x, labels = images(3)
    outcomes = []
    for form in ("fused", "product"):
        net.generator.manual_seed(6)  # the same draw for both: every op but none (a zero cell leaves no gradient)
        samples = net.sample(BATCH)
        assert all(isinstance(s, ChosenEdgeSample) for s in samples if s is not None)
        assert samples[0].inner.index == [3, 1, 1, 4, 3, 2]
        if form == "product":
            samples = [None if s is None else UnchosenWeightsSample(s.inner) if unchosen else s.inner for s in samples]
        net.zero_grad(set_to_none=True)
        with step_module.frozen(net.weights(), step == "A"), torch.autocast("cpu", torch.bfloat16, enabled=amp):
            logits = net.forward_sampled(x.float(), samples)
        F.cross_entropy(logits.float(), labels).backward()
        outcomes.append([logits.detach()] + [p.grad for p in net.parameters() if p.grad is not None])
    weight_grads = len(outcomes[0]) - 2  # after the logits and the alphas' gradient
    assert len(outcomes[1]) == len(outcomes[0]) and (weight_grads == 0 if step == "A" else weight_grads > 0)
    assert (net.alphas_cell.grad != 0).sum() >= (len(EDGES) * len(OPS) if unchosen else len(EDGES))
    assert all(torch.equal(a, b) for a, b in zip(*outcomes, strict=True))


# ---------------------------------------------------------------- derive


def test_derive_takes_the_argmax_over_all_five_ops() -> None:
    probs = [
        [0.40, 0.15, 0.15, 0.15, 0.15],  # none wins: the edge is dropped, as the released rule does
        [0.10, 0.30, 0.30, 0.20, 0.10],  # skip_connect and nor_conv_1x1 tie: the lower index
        [0.20, 0.20, 0.20, 0.20, 0.20],  # all tie: none
        [0.10, 0.10, 0.10, 0.60, 0.10],
        [0.05, 0.05, 0.05, 0.05, 0.80],
        [0.10, 0.10, 0.30, 0.25, 0.25],
    ]
    expected = "|none~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_1x1~2|"
    assert format_arch_str(derive_nb201(probs)) == expected
    assert derive_nb201(torch.tensor(probs)) == parse_arch_str(expected)


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-9])
def test_derive_agrees_with_tiny_network_gdas_genotype(scale: float) -> None:
    """Also on alphas closer than a float32 softmax resolves (scale 1e-9): derive reads the alphas."""
    for seed in range(3):
        ours, theirs = search_pair(False, seed=seed)
        with torch.no_grad():
            theirs.arch_parameters.normal_(generator=torch.Generator().manual_seed(seed)).mul_(scale)
        copy_tensors(ours, theirs, SEARCH_RENAMES)
        assert format_arch_str(ours.derive()) == theirs.genotype().tostr()


@pytest.mark.parametrize(
    "probs, fragment",
    [([[0.2] * 5] * 5, "must be (6, 5)"), ([[0.25] * 4] * 6, "must be (6, 5)"), ([], "got (0, 0)"),
     ([[float("nan")] * 5] * 6, "not finite")],
)
def test_derive_rejects_bad_alphas(probs: list, fragment: str) -> None:
    with pytest.raises(GdasError, match=re.escape(fragment)):
        derive_nb201(probs)
