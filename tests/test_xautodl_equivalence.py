"""`--recipe xautodl` against xautodl 1.0.0 itself: the same supernet, the same numbers.

Our supernet with the xautodl op set, layout, `batch` sampling and clip is built next to xautodl's
`NASNetworkGDAS` / `NASNetworkGDAS_FRC` (through `get_cell_based_tiny_net`, as its GDAS.py does),
xautodl's tensors are copied into ours by a name mapping (shapes checked), both run in float64 on
the same Gumbel noise, and logits, gradients and one and two search steps (our `search_step`
against the loop body of xautodl's `exps/NAS-Bench-201-algos/GDAS.py`) must agree within 1e-10.
The measured maximum differences are printed (`pytest -s`).

Needs `pip install --no-deps xautodl==1.0.0` (its models import only torch); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gdas_cli.engine import Runtime
from gdas_cli.ops import PRIMITIVES, SEARCH_OPS
from gdas_cli.search import build_search_network
from gdas_cli.search import step as step_module
from gdas_cli.search.step import search_step

try:
    import xautodl.models as xautodl_models
except ImportError as err:
    pytest.skip(f"xautodl is not importable ({err}); pip install --no-deps xautodl==1.0.0", allow_module_level=True)

TOLERANCE = 1e-10
C, CLASSES, BATCH, SIZE = 8, 5, 4, 16
# xautodl's op names, in its order, and ours for the same op
XAUTODL_SPACE = {"none": "none", "skip_connect": "skip_connect", "dua_sepc_3x3": "sep_conv_3x3",
                 "dua_sepc_5x5": "sep_conv_5x5", "dil_sepc_3x3": "dil_conv_3x3", "dil_sepc_5x5": "dil_conv_5x5",
                 "avg_pool_3x3": "avg_pool_3x3", "max_pool_3x3": "max_pool_3x3"}
# for each of our alpha columns (PRIMITIVES order), the matching column of xautodl's alphas
COLUMNS = [list(XAUTODL_SPACE.values()).index(name) for name in PRIMITIVES]
# GDAS.py's optimizers with the NASNet search config (GDAS-NASNet-CIFAR.config)
SGD = {"lr": 0.025, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
ADAM = {"lr": 3e-4, "betas": (0.5, 0.999), "weight_decay": 1e-3}
CASES = [pytest.param(False, 1, id="gdas-N1"), pytest.param(False, 2, id="gdas-N2"), pytest.param(True, 2, id="frc-N2")]


def build_pair(frc: bool, N: int, seed: int = 0, tau: float = 10.0) -> tuple[nn.Module, nn.Module]:
    """Ours and xautodl's, each from the same global seed, in float64."""
    torch.manual_seed(seed)
    ours = build_search_network(C, N, CLASSES, frc=frc, sampling="batch", layout="xautodl", ops="xautodl")
    torch.manual_seed(seed)
    theirs = xautodl_models.get_cell_based_tiny_net({
        "super_type": "nasnet-super", "name": "GDAS_FRC" if frc else "GDAS", "C": C, "N": N, "steps": 4,
        "multiplier": 4, "stem_multiplier": 3, "num_classes": CLASSES,
        "space": xautodl_models.get_search_spaces("cell", "darts"), "affine": False, "track_running_stats": True,
    })
    assert list(theirs.op_names) == list(XAUTODL_SPACE)
    ours.set_tau(tau)
    theirs.set_tau(tau)
    return ours.double(), theirs.double()


def _edge(match: re.Match) -> str:
    node, j = int(match.group(1)), int(match.group(2))
    return f".edges.{sum(2 + i for i in range(node)) + j}."  # our flat edge order: node by node


# xautodl name -> our name, applied in order
RENAMES = [
    (r"^lastact\.", "last_act."),
    (r"\.edges\.(\d+)<-(\d+)\._ops\.", _edge),
    (r"\.op_a\.op\.", ".0."), (r"\.op_b\.op\.", ".1."),  # DualSepConv -> SepConv(DilConv, DilConv)
    (r"\.op\.", "."),  # ReLUConvBN / SepConv wrap a Sequential in `.op`
    (r"\.convs\.0\.", ".conv_1."), (r"\.convs\.1\.", ".conv_2."),  # FactorizedReduce
    (r"\.ops1\.", ".body.conv_branches."), (r"\.ops2\.", ".body.pool_branches."),  # GDAS_Reduction_Cell
]
ALPHAS = {"arch_normal_parameters": "alphas_normal", "arch_reduce_parameters": "alphas_reduce",
          "arch_parameters": "alphas_normal"}


def our_name(name: str) -> str:
    if name in ALPHAS:
        return ALPHAS[name]
    for pattern, replacement in RENAMES:
        name = re.sub(pattern, replacement, name)
    return name


Pair = tuple[str, torch.Tensor, torch.Tensor]  # our name, our tensor, xautodl's (alphas: its columns)


def tensor_pairs(ours: nn.Module, theirs: nn.Module | dict[str, torch.Tensor]) -> list[Pair]:
    """Every parameter and buffer of ours with xautodl's under the mapped name (shapes checked)."""
    mine = ours.state_dict(keep_vars=True)
    pairs = []
    for name, tensor in (theirs if isinstance(theirs, dict) else theirs.state_dict(keep_vars=True)).items():
        mapped = our_name(name)
        assert mapped in mine, f"xautodl's {name} -> {mapped}: no such tensor here"
        assert mine[mapped].shape == in_our_layout(mapped, tensor).shape, (name, mapped)
        pairs.append((mapped, mine[mapped], tensor))
    assert sorted(p[0] for p in pairs) == sorted(mine), "every tensor of ours has one of xautodl's"
    return pairs


def in_our_layout(name: str, tensor: torch.Tensor | None) -> torch.Tensor | None:
    """xautodl's alphas (or their gradients) with the columns in our order; anything else as it is."""
    return tensor[:, COLUMNS] if tensor is not None and name.startswith("alphas_") else tensor


def copy_weights(ours: nn.Module, theirs: nn.Module) -> None:
    with torch.no_grad():
        for name, mine, other in tensor_pairs(ours, theirs):
            mine.copy_(in_our_layout(name, other))


@contextlib.contextmanager
def prepared_noise(samples: list[torch.Tensor]) -> Iterator[None]:
    """Serve `samples`, in order, to every `Tensor.exponential_` call.

    Both codes draw Gumbel noise as -log(Exponential(1)), but in different shapes and from different
    sources (xautodl: the global RNG, one call per cell type; ours: the run's generator, one stacked
    call per forward), so no seed gives both the same noise. Injecting it makes the comparison one
    of the computation, not of the random streams."""
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


def noise_for(forwards: int, frc: bool, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Exponential(1) samples for `forwards` forwards: xautodl's one per cell type (its columns), ours stacked."""
    gen = torch.Generator().manual_seed(seed)
    types = 1 if frc else 2
    theirs, ours = [], []
    for _ in range(forwards):
        per_type = [torch.empty(14, 8, dtype=torch.float64).exponential_(generator=gen) for _ in range(types)]
        theirs += per_type
        ours.append(torch.stack([e[:, COLUMNS] for e in per_type]))
    return theirs, ours


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(BATCH, 3, SIZE, SIZE, generator=gen, dtype=torch.float64),
            torch.randint(0, CLASSES, (BATCH,), generator=gen))


def max_difference(pairs: list[Pair], grad: bool = False) -> float:
    """The largest |ours - xautodl| over the tensors (or their gradients) of `pairs`."""
    worst = 0.0
    for name, mine, other in pairs:
        a, b = (mine.grad, other.grad) if grad else (mine, other)
        assert (a is None) == (b is None), f"{name}: a gradient on one side only"
        if a is not None:
            worst = max(worst, (a.double() - in_our_layout(name, b).double()).abs().max().item())
    return worst


def test_names_map_and_the_same_seed_builds_the_same_supernet() -> None:
    """Built in xautodl's op order, our supernet draws its initial weights and alphas exactly as xautodl does."""
    for frc, N in [(False, 2), (True, 2)]:
        ours, theirs = build_pair(frc, N, seed=3)
        assert max_difference(tensor_pairs(ours, theirs)) == 0.0
    assert SEARCH_OPS["xautodl"].order == tuple(XAUTODL_SPACE.values())


@pytest.mark.parametrize("frc, N", CASES)
def test_logits_and_gradients_match(frc: bool, N: int) -> None:
    ours, theirs = build_pair(frc, N, seed=1)
    with torch.no_grad():  # different weights than the seed gives, so the copy does the work
        for p in theirs.parameters():
            p.add_(0.01 * torch.randn_like(p))
    copy_weights(ours, theirs)
    images, labels = batch(2)
    their_noise, our_noise = noise_for(1, frc, seed=5)
    with prepared_noise(their_noise):
        _, their_logits = theirs(images)
    with prepared_noise(our_noise):
        our_logits = ours(images)
    F.cross_entropy(their_logits, labels).backward()
    F.cross_entropy(our_logits, labels).backward()
    pairs = [p for p in tensor_pairs(ours, theirs) if p[1].requires_grad]  # parameters, not BN buffers
    alphas = [p for p in pairs if p[0].startswith("alphas_")]
    weights = [p for p in pairs if not p[0].startswith("alphas_")]
    diffs = {"logits": (our_logits - their_logits).abs().max().item(),
             "alpha grads": max_difference(alphas, grad=True), "weight grads": max_difference(weights, grad=True)}
    print(f"\n[xautodl {'FRC' if frc else 'GDAS'} N={N}] max |ours - xautodl|: "
          + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    assert all(alpha.grad.abs().sum() > 0 for _, alpha, _ in alphas)
    assert all(v <= TOLERANCE for v in diffs.values()), diffs


def xautodl_search_step(network: nn.Module, w_optimizer, a_optimizer, base, arch, clip: float) -> None:
    """The loop body of xautodl's GDAS.py `search_func` (W step, then A step)."""
    w_optimizer.zero_grad()
    _, logits = network(base[0])
    F.cross_entropy(logits, base[1]).backward()
    torch.nn.utils.clip_grad_norm_(network.parameters(), clip)  # every parameter, alphas included
    w_optimizer.step()
    a_optimizer.zero_grad()
    _, logits = network(arch[0])
    F.cross_entropy(logits, arch[1]).backward()
    a_optimizer.step()


def run_steps(
    frc: bool, N: int, clip: float, tau: float, steps: int, with_alphas: bool = True,
) -> list[dict[str, float]]:
    """`steps` search steps on both sides; the max parameter/buffer differences after each."""
    ours, theirs = build_pair(frc, N, seed=7, tau=tau)
    copy_weights(ours, theirs)
    their_w = torch.optim.SGD(theirs.get_weights(), **SGD)
    their_a = torch.optim.Adam(theirs.get_alphas(), **ADAM)
    our_w = torch.optim.SGD(ours.weights(), **SGD)
    our_a = torch.optim.Adam(ours.alphas(), **ADAM)
    rt = Runtime(device=torch.device("cpu"))
    their_noise, our_noise = noise_for(2 * steps, frc, seed=11)
    batches = [(batch(20 + 2 * s), batch(21 + 2 * s)) for s in range(steps)]
    with prepared_noise(their_noise):
        their_after = []
        for train, valid in batches:
            xautodl_search_step(theirs, their_w, their_a, train, valid, clip)
            their_after.append({k: v.detach().clone() for k, v in theirs.state_dict().items()})
    with prepared_noise(our_noise):
        diffs = []
        for (train, valid), after in zip(batches, their_after):
            search_step(ours, ours, our_w, our_a, train, valid, rt, clip, grad_clip_with_alphas=with_alphas)
            pairs = tensor_pairs(ours, after)
            diffs.append({
                "alphas": max_difference([p for p in pairs if p[0].startswith("alphas_")]),
                "weights": max_difference([p for p in pairs if not p[0].startswith("alphas_")]),
            })
    return diffs


# GDAS.py's clip 5 at the first epoch's tau (these small nets' gradient norm, about 2.4, stays under
# it), and a clip that acts, at the last epoch's tau, where the alphas' gradients weigh most in the norm.
STEP_SETTINGS = [pytest.param(5.0, 10.0, id="clip5-tau10"), pytest.param(0.5, 0.1, id="clip0.5-tau0.1")]


@pytest.mark.parametrize("frc, N", CASES)
@pytest.mark.parametrize("clip, tau", STEP_SETTINGS)
def test_search_steps_match_gdas_py(frc: bool, N: int, clip: float, tau: float) -> None:
    diffs = run_steps(frc, N, clip, tau, steps=2)  # the second step clips with the first A step's alpha grads
    for step, d in enumerate(diffs, 1):
        print(f"\n[xautodl {'FRC' if frc else 'GDAS'} N={N} clip {clip} tau {tau}] after step {step}: "
              f"max |ours - xautodl| alphas {d['alphas']:.3g}, weights and BN buffers {d['weights']:.3g}")
    assert all(v <= TOLERANCE for d in diffs for v in d.values()), diffs


@pytest.mark.parametrize("variant", ["weights-only clip", "no A-step carry"])
def test_the_step_check_has_teeth(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Either half of xautodl's clip left out ends elsewhere: clipping the weights alone (the 2019
    code), or counting only the W step's own alpha gradients, not those the last A step left."""
    if variant == "no A-step carry":
        monkeypatch.setattr(step_module, "_keep_arch_grads", lambda *args: None)
    diffs = run_steps(False, 1, 0.5, 0.1, steps=2, with_alphas=variant != "weights-only clip")
    print(f"\n[{variant} vs xautodl, clip 0.5 tau 0.1] max weight difference after step 1 "
          f"{diffs[0]['weights']:.3g}, after step 2 {diffs[1]['weights']:.3g}")
    assert diffs[-1]["weights"] > 100 * TOLERANCE
