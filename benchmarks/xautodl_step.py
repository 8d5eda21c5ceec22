"""Time the released xautodl 1.0.0 GDAS search step against the project's on the same architecture; print JSON.

xautodl side: its own network (`NASNetworkGDAS`, or `NASNetworkGDAS_FRC` with --frc, built by
`xautodl.models.get_cell_based_tiny_net` with the values of its NASNet-space GDAS scripts) stepped
the way its `exps/NAS-Bench-201-algos/GDAS.py` loop does: zero W grads, forward the train batch,
cross-entropy, backward, clip all parameters to norm 5, SGD step, read top-1/top-5 and the loss to
the host; then zero alpha grads, forward the valid batch, backward, Adam step, read the metrics.
(GDAS.py wraps the network in DataParallel on a GPU; here the network is called directly.)

Project side: `gdas_cli.search.step.search_step` on the project's supernet with the same config:
xautodl layout, `batch` sampling (one draw per cell type, as xautodl draws), the same optimizer
settings (SGD lr 0.025, momentum 0.9, wd 5e-4, nesterov; Adam 3e-4, betas (0.5, 0.999), wd 1e-3).

Each round picks a fresh random architecture (one op per edge per cell type) and sets both
networks' alphas so that their own samplers draw exactly it (the chosen op's alpha 50 above the
others: the Gumbel noise cannot flip that); both steps then run on that architecture, in
alternating order. The ratio of a round is project time / xautodl time. A check before timing
records, with forward hooks, which candidate op every edge of both networks ran.

xautodl is not installed by this script: `pip install --no-deps xautodl==1.0.0` (it needs only torch).

    python benchmarks/xautodl_step.py --threads 1 --batch 64 -C 16 --rounds 9
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import torch
from _shared import emit, step_parser  # benchmarks/, next to this script
from search_step import (  # the sibling script (benchmarks/ is on sys.path)
    loadavg,
    machine,
    paired_rounds,
)
from torch import nn

from gdas_cli.engine import Runtime
from gdas_cli.ops import PRIMITIVES
from gdas_cli.search import build_search_network
from gdas_cli.search.step import search_step

INSTALL_HINT = "xautodl is not importable; install it with: pip install --no-deps xautodl==1.0.0"
# The project's op names (the 2019 code) and xautodl's names for the same ops.
XAUTODL_NAME = {"sep_conv_3x3": "dua_sepc_3x3", "sep_conv_5x5": "dua_sepc_5x5",
                "dil_conv_3x3": "dil_sepc_3x3", "dil_conv_5x5": "dil_sepc_5x5"}
FORCE_GAP = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = step_parser(__doc__, cells_per_stage=2, rounds_help="timed rounds (a fresh architecture each)")
    parser.add_argument("--frc", action="store_true", help="fixed reduction cells (xautodl's GDAS_FRC)")
    parser.add_argument("--track-running-stats", type=int, choices=(0, 1), default=1,
                        help="xautodl's BN flag (its documented NASNet command passes 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    return args


class XautodlSide:
    """xautodl's search network, optimizers and step (the order and calls of its GDAS.py loop).

    This class builds the NASNet-space network; a subclass overrides `build` and `edge_ops` for
    another space (nb201_step.py: `TinyNetworkGDAS`). Both released GDAS.py scripts use these
    optimizer settings."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.ops: list[str] = []
        torch.manual_seed(args.seed)
        self.net = self.build(args).to(device)
        self.net.set_tau(10.0)
        self.net.train()
        self.w_opt = torch.optim.SGD(self.net.get_weights(), 0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
        self.a_opt = torch.optim.Adam(self.net.get_alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        self.criterion = nn.CrossEntropyLoss()

    def build(self, args: argparse.Namespace) -> nn.Module:
        """The network, as `get_cell_based_tiny_net` builds it from the values of the NASNet-space scripts."""
        from xautodl.models import get_cell_based_tiny_net, get_search_spaces

        self.ops = list(get_search_spaces("cell", "darts"))
        config = {"super_type": "nasnet-super", "name": "GDAS_FRC" if args.frc else "GDAS",
                  "C": args.channels, "N": args.cells_per_stage, "steps": 4, "multiplier": 4,
                  "stem_multiplier": 3, "num_classes": 10, "space": self.ops, "affine": False,
                  "track_running_stats": bool(args.track_running_stats)}
        return get_cell_based_tiny_net(config)

    def alphas(self) -> list[nn.Parameter]:
        """[normal, reduce], or [normal] for GDAS_FRC (the project's order)."""
        return list(self.net.get_alphas())

    def step(self, train: tuple[torch.Tensor, torch.Tensor], valid: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.w_opt.zero_grad()
        _, logits = self.net(train[0])
        loss = self.criterion(logits, train[1])
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), 5)
        self.w_opt.step()
        self._record(logits, train[1], loss)
        self.a_opt.zero_grad()
        _, logits = self.net(valid[0])
        loss = self.criterion(logits, valid[1])
        loss.backward()
        self.a_opt.step()
        self._record(logits, valid[1], loss)

    @staticmethod
    def _record(logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        """The meters of GDAS.py: loss, top-1 and top-5 read to the host. (xautodl's own
        `obtain_accuracy` fails on current torch: `.view` of a non-contiguous tensor.)"""
        hits = logits.detach().topk(5, dim=1).indices.eq(labels.unsqueeze(1))
        top1, top5 = hits[:, :1].any(1).float().mean() * 100, hits.any(1).float().mean() * 100
        loss.item(), top1.item(), top5.item()

    def edge_ops(self) -> dict[tuple[int, str], list[tuple[str, nn.Module]]]:
        """(cell, "node<-input") -> the candidate ops of that edge, for searched cells."""
        out = {}
        for c, cell in enumerate(self.net.cells):
            if hasattr(cell, "edge2index"):
                for key, mixed in cell.edges.items():
                    out[(c, key)] = list(zip([self._common(n) for n in self.ops], mixed._ops, strict=True))
        return out

    @staticmethod
    def _common(name: str) -> str:
        back = {v: k for k, v in XAUTODL_NAME.items()}
        return back.get(name, name)


class ProjectSide:
    def __init__(self, args: argparse.Namespace, rt: Runtime) -> None:
        torch.manual_seed(args.seed)
        self.net = build_search_network(args.channels, args.cells_per_stage, 10, frc=args.frc, sampling="batch",
                                        layout="xautodl").to(rt.device)
        self.net.set_tau(10.0)
        self.w_opt = torch.optim.SGD(self.net.weights(), lr=0.025, momentum=0.9, weight_decay=5e-4, nesterov=True)
        self.a_opt = torch.optim.Adam(self.net.alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        self.rt = rt

    def alphas(self) -> list[nn.Parameter]:
        return self.net.alphas()

    def step(self, train, valid) -> None:
        search_step(self.net, self.net, self.w_opt, self.a_opt, train, valid, self.rt, grad_clip=5.0)

    def edge_ops(self) -> dict[tuple[int, str], list[tuple[str, nn.Module]]]:
        out = {}
        for c, cell in enumerate(self.net.cells):
            if not hasattr(cell, "edges"):
                continue
            e = 0
            for node in range(cell.steps):
                for j in range(2 + node):
                    out[(c, f"{node}<-{j}")] = list(zip(PRIMITIVES, cell.edges[e], strict=True))
                    e += 1
        return out


def force(alphas: list[nn.Parameter], arch: torch.Tensor, names: list[str], space: Sequence[str] = PRIMITIVES) -> None:
    """Set alphas (columns named `names`) so the sampler draws `arch`: (cell type, edge) -> index into `space`."""
    with torch.no_grad():
        for alpha, chosen in zip(alphas, arch, strict=True):
            alpha.zero_()
            for e, k in enumerate(chosen.tolist()):
                alpha[e, names.index(space[k])] = FORCE_GAP


def ops_run(side: Any, x: torch.Tensor) -> dict[tuple[int, str], list[str]]:
    """The candidate ops each edge runs in one forward, in call order, seen by forward hooks."""
    seen: dict[tuple[int, str], list[str]] = {}

    def record(key: tuple[int, str], name: str) -> Any:
        return lambda *_: seen.setdefault(key, []).append(name)

    handles = [op.register_forward_hook(record(key, name)) for key, ops in side.edge_ops().items() for name, op in ops]
    try:
        with torch.no_grad():
            side.net(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def same_ops(ours: Any, theirs: Any, x: torch.Tensor) -> tuple[dict, dict[tuple[int, str], list[str]]]:
    """Forward hooks on both sides: the check (every edge ran exactly one op, the same on both) and our ops."""
    seen_ours, seen_theirs = ops_run(ours, x), ops_run(theirs, x)
    same = bool(seen_ours) and seen_ours == seen_theirs and all(len(names) == 1 for names in seen_ours.values())
    return {"edges_compared": len(seen_ours), "same_ops_on_every_edge": same}, seen_ours


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import xautodl
        import xautodl.models
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rt = Runtime(device=device, precision="fp32")
    load_start = loadavg()
    gen = torch.Generator().manual_seed(args.seed)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
        return images.to(device), torch.randint(0, 10, (args.batch,), generator=gen).to(device)

    train, valid = batch(), batch()
    theirs, ours = XautodlSide(args, device), ProjectSide(args, rt)
    n_types, n_edges = len(ours.alphas()), ours.alphas()[0].shape[0]

    def new_arch() -> torch.Tensor:
        arch = torch.randint(0, len(PRIMITIVES), (n_types, n_edges), generator=gen)
        force(ours.alphas(), arch, list(PRIMITIVES))
        force(theirs.alphas(), arch, [XautodlSide._common(n) for n in theirs.ops])
        return arch

    new_arch()
    check, _ = same_ops(ours, theirs, train[0])
    if not check["same_ops_on_every_edge"]:
        raise SystemExit("xautodl_step.py: the two networks did not run the same ops; the pairing would be meaningless")

    def round_steps(r: int) -> tuple:
        new_arch()
        return lambda: ours.step(train, valid), lambda: theirs.step(train, valid)

    paired = paired_rounds(args, device, "xautodl layout", ("project", "xautodl"), round_steps)
    result = paired.summary(f"xautodl {xautodl.version()} GDAS step")
    result["xautodl_median_s"] = result.pop("baseline_median_s")
    result["xautodl_s"] = result.pop("baseline_s")
    report = {
        "benchmark": "xautodl_step",
        "ratio": "median over rounds of (project step time / xautodl step time), both on the same architecture",
        "device": str(device),
        "machine": machine(device, args.threads),
        "loadavg_start": load_start,
        "config": {"layout": "xautodl", "sampling": "batch", "C": args.channels, "N": args.cells_per_stage,
                   "frc": args.frc, "batch": args.batch, "size": args.size, "rounds": args.rounds,
                   "warmup": args.warmup, "seed": args.seed, "xautodl_track_running_stats": args.track_running_stats,
                   "xautodl_network": type(theirs.net).__name__},
        "weights": {"project": sum(p.numel() for p in ours.net.weights()),
                    "xautodl": sum(p.numel() for p in theirs.net.get_weights())},
        "check": check,
        **result,
    }
    report["loadavg_end"] = loadavg()
    return emit(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
