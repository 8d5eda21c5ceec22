"""Time the project's NAS-Bench-201 search step against xautodl 1.0.0's and its one-path limit; print JSON.

Project side: what `gdas search cnn --space nas-bench-201` builds from its recipe
(`search.config.RECIPES["nas-bench-201"]`): `NB201SearchNetwork` (C=16, N=5, `batch` sampling, xautodl's
gradient to the unchosen ops' weights unless --no-unchosen-grads), stepped by `search.step.search_step`
with the recipe's optimizers (SGD lr 0.025, momentum 0.9, nesterov, wd 5e-4, the clip at 5 over weights
and alphas; Adam 3e-4, betas (0.5, 0.999), wd 1e-3), sampler included.

Two baselines (`--against`, default both), each timed in its own paired rounds:

- `xautodl`: xautodl 1.0.0's `TinyNetworkGDAS`, built as its `exps/NAS-Bench-201-algos/GDAS.py` builds
  it (same C, N, `track_running_stats`) and stepped as that loop does (xautodl_step.py's `XautodlSide`:
  the same optimizer settings). Needs `pip install --no-deps xautodl==1.0.0`; exit code 2 without it.
- `limit`: the one-path limit, the drawn cell run as a fixed network on the supernet's own modules (in
  every searched cell only the drawn op of each edge, summed into nodes; no sampler, no hard-weight
  product). W step = forward, full backward, SGD step with the recipe's settings; A step = forward and
  backward to the input only (search_step.py's `LimitSide`).

Every round draws a fresh random cell (one op per edge: the space shares one cell in all its searched
cells) and sets the alphas so each network's own sampler draws it (the chosen op's alpha 50 above the
others; xautodl_step.py's `force`). Before the round is timed, forward hooks on a few examples check
that the project ran exactly the drawn op on every edge of every searched cell and, against xautodl,
that xautodl ran the same ops; against the limit, that the limit's logits equal the project forward's.
The two steps then run back to back, the first alternating between rounds (search_step.py's
`paired_rounds`); a round's ratio is project time / baseline time, wall clock and, on the CPU, process
CPU time ("cpu", "cpu_median_ratios").

    OMP_NUM_THREADS=1 python benchmarks/nb201_step.py --threads 1 --rounds 9
    python benchmarks/nb201_step.py -C 4 -N 1 --batch 4 --size 8 --rounds 2 --against limit
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from _shared import emit, step_parser  # benchmarks/, next to this script
from search_step import (  # sibling scripts (benchmarks/ is on sys.path)
    LimitSide,
    loadavg,
    machine,
    make_batch,
    paired_rounds,
)
from torch import nn
from xautodl_step import INSTALL_HINT, XautodlSide, force, ops_run, same_ops

from gdas_cli.engine import Runtime
from gdas_cli.models.nb201 import node_inputs
from gdas_cli.nb201 import EDGES, OPS
from gdas_cli.search.config import resolve_config
from gdas_cli.search.nb201_supernet import NB201SearchCell
from gdas_cli.search.spaces import build_supernet
from gdas_cli.search.step import search_step

BASELINES = ("xautodl", "limit")
Arch = list[int]  # the drawn cell: an index into OPS per edge (EDGES order)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = step_parser(__doc__, cells_per_stage=5, rounds_help="timed rounds (a fresh cell each) per baseline")
    parser.add_argument("--against", default=",".join(BASELINES), help="comma-separated baselines")
    parser.add_argument("--track-running-stats", type=int, choices=(0, 1), default=0,
                        help="BN running statistics in the search cells, both sides (GDAS.sh's usage line: 0)")
    parser.add_argument("--unchosen-grads", action=argparse.BooleanOptionalAction, default=True,
                        help="the project's --unchosen-grads (xautodl's edge sum; the recipe's default)")
    parser.add_argument("--check-examples", type=int, default=8, help="examples of the per-round checks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH")
    args = parser.parse_args(argv)
    args.against = [b for b in args.against.split(",") if b]
    for baseline in args.against:
        if baseline not in BASELINES:
            parser.error(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
    if args.rounds < 1 or args.warmup < 0 or args.check_examples < 2:
        parser.error("--rounds must be >= 1, --warmup >= 0 and --check-examples >= 2")
    return args


class ProjectSide:
    """The supernet, optimizers and step of a nas-bench-201 search (the recipe, as `CnnSearchTask` builds them)."""

    def __init__(self, args: argparse.Namespace, rt: Runtime) -> None:
        self.config = cfg = resolve_config(None, "cifar10", {
            "space": "nas-bench-201", "channels": args.channels, "cells_per_stage": args.cells_per_stage,
            "batch_size": args.batch, "track_stats": bool(args.track_running_stats),
            "unchosen_grads": args.unchosen_grads, "seed": args.seed})
        torch.manual_seed(args.seed)
        self.net = build_supernet(cfg, 10)
        self.model = rt.prepare_model(self.net, find_unused_parameters=True, compile=False)
        self.net.generator = torch.Generator(device=rt.device).manual_seed(cfg.seed)
        self.net.set_tau(cfg.tau_max)
        self.w_opt = torch.optim.SGD(self.net.weights(), lr=cfg.lr, momentum=cfg.momentum,
                                     weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
        self.a_opt = torch.optim.Adam(self.net.alphas(), lr=cfg.arch_lr, betas=cfg.arch_betas,
                                      weight_decay=cfg.arch_weight_decay)
        self.rt = rt

    def alphas(self) -> list[nn.Parameter]:
        return self.net.alphas()

    def step(self, train, valid) -> None:
        search_step(self.model, self.net, self.w_opt, self.a_opt, train, valid, self.rt, self.config.grad_clip,
                    grad_clip_with_alphas=self.config.grad_clip_with_alphas)

    def edge_ops(self) -> dict[tuple[int, str], list[tuple[str, nn.Module]]]:
        """(cell, "i<-j") -> the candidate ops of that edge, for the searched cells (xautodl's edge keys)."""
        return {(c, f"{i}<-{j}"): list(zip(OPS, cell.edges[e], strict=True))
                for c, cell in self._searched() for e, (i, j) in enumerate(EDGES)}

    def expected_ops(self, arch: Arch) -> dict[tuple[int, str], list[str]]:
        """What `ops_run` sees when every searched cell runs `arch`."""
        return {(c, f"{i}<-{j}"): [OPS[arch[e]]] for c, _ in self._searched() for e, (i, j) in enumerate(EDGES)}

    def _searched(self) -> list[tuple[int, NB201SearchCell]]:
        return [(c, cell) for c, cell in enumerate(self.net.cells) if isinstance(cell, NB201SearchCell)]


class XautodlNB201Side(XautodlSide):
    """xautodl's `TinyNetworkGDAS`, stepped as XautodlSide steps (the NAS-Bench-201 GDAS.py loop is the same)."""

    def build(self, args: argparse.Namespace) -> nn.Module:
        from xautodl.models import get_cell_based_tiny_net, get_search_spaces

        self.ops = list(get_search_spaces("cell", "nas-bench-201"))
        return get_cell_based_tiny_net({"name": "GDAS", "C": args.channels, "N": args.cells_per_stage,
                                        "max_nodes": 4, "num_classes": 10, "space": self.ops, "affine": False,
                                        "track_running_stats": bool(args.track_running_stats)})

    def edge_ops(self) -> dict[tuple[int, str], list[tuple[str, nn.Module]]]:
        return {(c, key): list(zip(self.ops, ops, strict=True))
                for c, cell in enumerate(self.net.cells) if hasattr(cell, "edge2index")
                for key, ops in cell.edges.items()}


def fixed_cell(cell: NB201SearchCell, arch: Arch, x: torch.Tensor) -> torch.Tensor:
    """A searched cell run as the fixed cell `arch`: each edge's drawn op only, node i the sum of its edges."""
    states = [x]
    for reads in node_inputs():
        node = None
        for e, j in reads:
            out = cell.edges[e][arch[e]](states[j])
            node = out if node is None else node + out
        states.append(node)
    return states[-1]


def limit_forward(net: nn.Module, arch: Arch, x: torch.Tensor) -> torch.Tensor:
    """The supernet as the fixed network of `arch`: its stem, ResNet blocks and head, the drawn ops in every cell."""
    feature = net.stem(x)
    for cell, kind in zip(net.cells, net.cell_types, strict=True):
        feature = cell(feature) if kind is None else fixed_cell(cell, arch, feature)
    return net.classifier(torch.flatten(net.global_pool(net.last_act(feature)), 1))


class Rounds:
    """The fresh cell of each round, forced into the networks' alphas, and the untimed checks on it."""

    def __init__(self, args: argparse.Namespace, project: ProjectSide) -> None:
        self.project, self.n = project, args.check_examples
        self.gen = torch.Generator().manual_seed(args.seed)

    def new(self, theirs: XautodlNB201Side | None = None) -> Arch:
        arch = torch.randint(0, len(OPS), (1, len(EDGES)), generator=self.gen)
        force(self.project.alphas(), arch, list(OPS), space=OPS)
        if theirs is not None:
            force(theirs.alphas(), arch, theirs.ops, space=OPS)
        return arch[0].tolist()

    def check_xautodl(self, theirs: XautodlNB201Side, arch: Arch, x: torch.Tensor) -> dict:
        check, seen = same_ops(self.project, theirs, x[: self.n])
        check["project_ran_the_drawn_ops"] = seen == self.project.expected_ops(arch)
        if not all(check.values()):
            raise SystemExit(f"nb201_step.py: the two networks did not run the drawn cell {arch}: {check}; the "
                             "pairing would be meaningless")
        return check

    def check_limit(self, arch: Arch, x: torch.Tensor) -> dict:
        net = self.project.net
        drawn = ops_run(self.project, x[: self.n]) == self.project.expected_ops(arch)
        with torch.no_grad():
            diff = float((net(x[: self.n]) - limit_forward(net, arch, x[: self.n])).abs().max())
        if not drawn or diff > 1e-5:
            raise SystemExit(f"nb201_step.py: on the drawn cell {arch} the project ran the drawn ops: {drawn}, "
                             f"the limit's logits differ by {diff:.3g}; the pairing would be meaningless")
        return {"project_ran_the_drawn_ops": drawn, "limit_max_abs_logit_diff": diff}


def against_xautodl(args, project: ProjectSide, train, valid, rt: Runtime) -> dict:
    import xautodl

    theirs = XautodlNB201Side(args, rt.device)
    rounds = Rounds(args, project)
    checks: list[dict] = []

    def round_steps(r: int) -> tuple:
        arch = rounds.new(theirs)
        checks.append(rounds.check_xautodl(theirs, arch, train[0]))
        return lambda: project.step(train, valid), lambda: theirs.step(train, valid)

    paired = paired_rounds(args, rt.device, "nas-bench-201", ("project", "xautodl"), round_steps)
    result = paired.summary(f"xautodl {xautodl.version()} TinyNetworkGDAS step (GDAS.py's loop)")
    result["check"] = {"rounds_checked": len(checks), "edges_compared_per_round": checks[0]["edges_compared"],
                       "same_ops_on_every_edge": all(c["same_ops_on_every_edge"] for c in checks),
                       "project_ran_the_drawn_ops": all(c["project_ran_the_drawn_ops"] for c in checks)}
    result["weights"] = {"project": sum(p.numel() for p in project.net.weights()),
                         "xautodl": sum(p.numel() for p in theirs.net.get_weights())}
    result["xautodl_network"] = type(theirs.net).__name__
    return result


def against_limit(args, project: ProjectSide, train, valid, rt: Runtime) -> dict:
    cfg = project.config
    limit = LimitSide(project.net, rt, limit_forward, lr=cfg.lr, momentum=cfg.momentum,
                      weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    valid_leaf = valid[0].clone().requires_grad_(True)
    rounds = Rounds(args, project)
    checks: list[dict] = []

    def round_steps(r: int) -> tuple:
        arch = rounds.new()
        checks.append(rounds.check_limit(arch, train[0]))
        return lambda: project.step(train, valid), lambda: limit.step(arch, arch, train, valid_leaf, valid[1])

    paired = paired_rounds(args, rt.device, "nas-bench-201", ("project", "limit"), round_steps)
    result = paired.summary("one-path limit")
    result["check"] = {"rounds_checked": len(checks),
                       "project_ran_the_drawn_ops": all(c["project_ran_the_drawn_ops"] for c in checks),
                       "limit_max_abs_logit_diff": max(c["limit_max_abs_logit_diff"] for c in checks)}
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "xautodl" in args.against:
        try:
            import xautodl.models  # noqa: F401
        except ImportError:
            print(INSTALL_HINT, file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rt = Runtime(device=device, precision="fp32")
    load_start = loadavg()
    train, valid = make_batch(args, device, args.seed), make_batch(args, device, args.seed + 1)
    project = ProjectSide(args, rt)
    cfg = project.config
    report: dict[str, Any] = {
        "benchmark": "nb201_step",
        "ratio": "median over rounds of (project step time / baseline step time), both on the same drawn cell",
        "device": str(device),
        "machine": machine(device, args.threads),
        "loadavg_start": load_start,
        "config": {"space": "nas-bench-201", "recipe": cfg.recipe, "sampling": cfg.sampling, "C": cfg.channels,
                   "N": cfg.cells_per_stage, "batch": args.batch, "size": args.size, "rounds": args.rounds,
                   "warmup": args.warmup, "seed": args.seed, "track_running_stats": cfg.track_stats,
                   "unchosen_grads": cfg.unchosen_grads, "check_examples": args.check_examples,
                   "sgd": {"lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay,
                           "nesterov": cfg.nesterov},
                   "adam": {"lr": cfg.arch_lr, "betas": list(cfg.arch_betas), "weight_decay": cfg.arch_weight_decay},
                   "grad_clip": cfg.grad_clip, "grad_clip_with_alphas": cfg.grad_clip_with_alphas,
                   "tau": cfg.tau_max},
        "results": {},
    }
    runs = {"xautodl": against_xautodl, "limit": against_limit}
    for baseline in args.against:
        print(f"nas-bench-201 against {baseline}", file=sys.stderr)
        report["results"][baseline] = runs[baseline](args, project, train, valid, rt)
    report["loadavg_end"] = loadavg()
    report["median_ratios"] = {b: r["median_ratio"] for b, r in report["results"].items()}
    if device.type == "cpu":
        report["cpu_median_ratios"] = {b: r["cpu"]["median_ratio"] for b, r in report["results"].items()}
    return emit(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
