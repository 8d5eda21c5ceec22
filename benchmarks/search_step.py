"""Time the project's GDAS search step against its one-path limit, paired on the same draw; print JSON.

For every sampling mode in `gdas_cli.sampler.SAMPLING_MODES` and every supernet layout in
`gdas_cli.search.LAYOUTS`, each round makes one fresh draw and times, back to back (the order
alternating between rounds):

- the project step: `gdas_cli.search.step.search_step` (W step on a train batch, A step on a valid
  batch), exactly what `gdas search cnn` runs, sampler included;
- the one-path limit: the drawn architecture run as a fixed network, its chosen ops called directly
  (no sampler, no hard-weight product, no gather/scatter). W step = forward + full backward + SGD
  step; A step = forward + backward to the input only.

The round's ratio is project / limit; the report gives the median of the ratios and every round.
The draw changes every round: one cheap or costly draw alone would bias the ratio. On the CPU each
result also gives the same for the process's CPU time ("cpu", and "cpu_median_ratios"): on a shared
machine the wall clock also counts the time other jobs held the core.

Per-example sampling (`sample`): the limit runs each edge's op on the examples that chose it as if
they already sat next to each other in the batch (slices, then one concatenation), so the ratio
shows what the project's regrouping costs. The all-ops `darts` mode has no one-path limit: its
ratio is darts step / project GDAS step (sampling `--darts-against`), both project code.

`--memory` adds, per mode, the activation memory the W-step forward saves for backward (bytes of
the distinct tensors autograd saves, parameters excluded), for the project step and its baseline.

    python benchmarks/search_step.py --threads 1 --batch 64 --rounds 9
    python benchmarks/search_step.py -C 4 --batch 4 --rounds 2 --modes cell,darts --layouts paper
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from _shared import emit, step_parser  # benchmarks/, next to this script
from torch import nn
from torch.nn import functional as F

from gdas_cli.engine import Runtime
from gdas_cli.sampler import SAMPLING_MODES
from gdas_cli.search import LAYOUTS, build_search_network
from gdas_cli.search.step import frozen, search_step

ALL_OPS_MODES = ("darts", "gdas_all_ops")  # every op runs: no one-path limit, so timed against a GDAS step


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    rounds = "timed rounds (one fresh draw each) per mode and layout"
    parser = step_parser(__doc__, cells_per_stage=2, rounds_help=rounds)
    parser.add_argument("--modes", default=",".join(SAMPLING_MODES), help="comma-separated sampling modes")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated supernet layouts")
    parser.add_argument("--darts-against", default="batch", help="GDAS sampling mode the darts step is compared with")
    parser.add_argument("--frc", action="store_true", help="fixed reduction cells (GDAS-FRC)")
    parser.add_argument("--amp", action="store_true", help="run both sides under bf16 autocast")
    parser.add_argument("--memory", action="store_true", help="also report activation memory saved for backward")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the JSON report to PATH")
    args = parser.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    args.layouts = [name for name in args.layouts.split(",") if name]
    for mode in args.modes + [args.darts_against]:
        if mode not in SAMPLING_MODES:
            parser.error(f"unknown sampling mode {mode!r}; known: {', '.join(SAMPLING_MODES)}")
    if args.darts_against in ALL_OPS_MODES:
        parser.error("--darts-against must be a sampling mode that draws one path")
    for name in args.layouts:
        if name not in LAYOUTS:
            parser.error(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    return args


# ---- the drawn architecture as a plan of direct op calls


class Plan:
    """What one draw asks every cell to run. Per cell: None (a fixed cell, called as it is),
    ("edge", [op per edge]) for one op per edge, or ("example", [[examples per op] per edge])."""

    def __init__(self, cells: list[tuple[str, list] | None]) -> None:
        self.cells = cells

    @classmethod
    def of(cls, samples: Sequence[Any]) -> Plan | None:
        """The plan of a project draw (`SearchNetwork.sample`), or None if the draw is not one path
        (every op weighted, or a sample type this benchmark does not know)."""
        cells: list[tuple[str, list] | None] = []
        for sample in samples:
            if sample is None:
                cells.append(None)
                continue
            index = getattr(sample, "index", None)
            if isinstance(index, (list, tuple)):
                cells.append(("edge", [int(k) for k in index]))
            elif isinstance(index, torch.Tensor) and index.dim() == 2:
                cells.append(("example", [torch.bincount(index[:, e].cpu()).tolist() for e in range(index.shape[1])]))
            else:
                return None
        return cls(cells)


def same_draw(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Two project draws chose the same ops (per edge, or per example and edge)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return False
        if x is None:
            continue
        ix, iy = getattr(x, "index", None), getattr(y, "index", None)
        if isinstance(ix, torch.Tensor) and isinstance(iy, torch.Tensor):
            if not torch.equal(ix.cpu(), iy.cpu()):
                return False
        elif list(ix) != list(iy):
            return False
    return True


def run_edge(kind: str, choice: Any, ops: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    if kind == "edge":
        return ops[choice](x)
    groups = [(k, part) for k, part in enumerate(x.split(choice)) if choice[k]]
    if len(groups) == 1:
        return ops[groups[0][0]](x)
    return torch.cat([ops[k](part) for k, part in groups])


def run_cell(cell: nn.Module, kind: str, choices: list, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    edge = 0
    for _ in range(cell.steps):
        node = None
        for h in states:
            out = run_edge(kind, choices[edge], cell.edges[edge], h)
            node = out if node is None else node + out
            edge += 1
        states.append(node)
    return torch.cat(states[-cell.multiplier :], dim=1)


def limit_forward(net: nn.Module, plan: Plan, x: torch.Tensor) -> torch.Tensor:
    """The drawn network as a fixed one: the supernet's own modules, only the chosen ops called."""
    s0 = s1 = net.stem(x)
    for cell, spec in zip(net.cells, plan.cells, strict=True):
        s0, s1 = s1, (cell(s0, s1) if spec is None else run_cell(cell, spec[0], spec[1], s0, s1))
    return net.classifier(torch.flatten(net.global_pool(net.last_act(s1)), 1))


# ---- one side of a round


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ProjectSide:
    """A supernet in one sampling mode with the optimizers of a search, stepped by `search_step`."""

    def __init__(self, args: argparse.Namespace, layout: str, mode: str, rt: Runtime) -> None:
        torch.manual_seed(args.seed)
        self.net = build_search_network(args.channels, args.cells_per_stage, 10, frc=args.frc, sampling=mode,
                                        layout=layout).to(rt.device)
        self.net.set_tau(10.0)
        self.net.generator = torch.Generator(device=rt.device)
        self.w_opt = torch.optim.SGD(self.net.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        self.a_opt = torch.optim.Adam(self.net.alphas(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        self.rt = rt

    def reseed(self, seed: int) -> None:
        """The next draws depend on `seed` only (the search's generator and, for safety, the global one)."""
        torch.manual_seed(seed)
        self.net.generator.manual_seed(seed)

    def draws(self, seed: int, batch: int) -> tuple[list, list]:
        """The W-step and A-step draws the next step makes after `reseed(seed)`."""
        self.reseed(seed)
        with torch.no_grad():
            return self.net.sample(batch), self.net.sample(batch)

    def step(self, train, valid, seed: int | None = None) -> None:
        """One search step; with `seed`, its draws are the ones `draws(seed)` predicted."""
        if seed is not None:
            self.reseed(seed)
        search_step(self.net, self.net, self.w_opt, self.a_opt, train, valid, self.rt, grad_clip=5.0)


class LimitSide:
    """The one-path limit on a supernet's own modules (it shares their weights).

    `forward(net, plan, x)` runs the drawn network (`limit_forward` here, the NAS-Bench-201 cell's in
    nb201_step.py); `sgd` overrides the W step's SGD settings (the paper recipe's by default)."""

    def __init__(self, net: nn.Module, rt: Runtime, forward: Any = None, **sgd: Any) -> None:
        self.net, self.rt, self.forward = net, rt, forward or limit_forward
        self.weights = list(net.weights())
        self.opt = torch.optim.SGD(self.weights, **{"lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4, **sgd})

    def step(self, plan_w: Any, plan_a: Any, train, valid_leaf, valid_labels) -> None:
        self.opt.zero_grad(set_to_none=True)
        with self.rt.autocast():
            logits = self.forward(self.net, plan_w, train[0])
        F.cross_entropy(logits.float(), train[1]).backward()
        self.opt.step()
        with frozen(self.weights), self.rt.autocast():
            logits = self.forward(self.net, plan_a, valid_leaf)
        torch.autograd.grad(F.cross_entropy(logits.float(), valid_labels), valid_leaf)


def timed(device: torch.device, fn, *args: Any) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of `fn(*args)` (the device synchronised before and after)."""
    sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    fn(*args)
    sync(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


@dataclass
class Paired:
    """The seconds of the two steps of every timed round: wall clock and, on the CPU, the process's CPU
    time (the wall clock of a busy shared machine also counts the time other jobs held the core)."""

    first_s: list[float] = field(default_factory=list)
    second_s: list[float] = field(default_factory=list)
    first_cpu_s: list[float] = field(default_factory=list)
    second_cpu_s: list[float] = field(default_factory=list)

    def summary(self, baseline: str) -> dict:
        """`summarize` of the wall clock, with the same for the CPU time under "cpu" (CPU runs only)."""
        result = summarize(self.first_s, self.second_s, baseline)
        if self.first_cpu_s:
            result["cpu"] = {k: v for k, v in summarize(self.first_cpu_s, self.second_cpu_s, baseline).items()
                             if k != "baseline"}
        return result


def paired_rounds(
    args: argparse.Namespace, device: torch.device, label: str, names: tuple[str, str], round_steps
) -> Paired:
    """The seconds of two steps per round, timed back to back, the first one first in even rounds.

    `round_steps(r)` prepares round r untimed (its draw, its checks) and returns the round's two steps
    as zero-argument callables. `args.warmup` rounds run first and are dropped; `args.rounds` are kept.
    """
    paired = Paired()
    on_cpu = device.type == "cpu"  # elsewhere the process's CPU time is not the step's
    for r in range(args.warmup + args.rounds):
        steps = round_steps(r)
        seconds = [(0.0, 0.0), (0.0, 0.0)]
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            seconds[i] = timed(device, steps[i])
        (wall_a, cpu_a), (wall_b, cpu_b) = seconds
        if r >= args.warmup:
            paired.first_s.append(wall_a)
            paired.second_s.append(wall_b)
            if on_cpu:
                paired.first_cpu_s.append(cpu_a)
                paired.second_cpu_s.append(cpu_b)
        cpu = f" (CPU time {cpu_a / cpu_b:.3f})" if on_cpu else ""
        print(f"  {label} round {r - args.warmup + 1 if r >= args.warmup else 'warmup'}: {names[0]} "
              f"{wall_a:.3f}s {names[1]} {wall_b:.3f}s ratio {wall_a / wall_b:.3f}{cpu}", file=sys.stderr)
    return paired


# ---- memory


class SavedActivations:
    """Bytes of the distinct storages autograd saves for backward, parameters excluded."""

    def __init__(self, model: nn.Module) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.sizes: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.params:
            self.sizes[storage.data_ptr()] = storage.nbytes()
        return tensor

    def measure(self, forward) -> float:
        self.sizes.clear()
        with torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            out = forward()
        del out
        return round(sum(self.sizes.values()) / 2**20, 2)


def w_forward_memory(side: ProjectSide, forward) -> float:
    with frozen(side.net.alphas()), side.rt.autocast():
        return SavedActivations(side.net).measure(forward)


# ---- the runs


def make_batch(args: argparse.Namespace, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    return images.to(device), torch.randint(0, 10, (args.batch,), generator=gen).to(device)


def summarize(project_s: list[float], baseline_s: list[float], baseline: str) -> dict:
    ratios = [p / b for p, b in zip(project_s, baseline_s, strict=True)]
    return {
        "baseline": baseline,
        "median_ratio": round(statistics.median(ratios), 4),
        "ratios": [round(r, 4) for r in ratios],
        "project_median_s": round(statistics.median(project_s), 4),
        "baseline_median_s": round(statistics.median(baseline_s), 4),
        "project_s": [round(t, 4) for t in project_s],
        "baseline_s": [round(t, 4) for t in baseline_s],
    }


def check_limit(project: ProjectSide, seed: int, train, valid) -> dict:
    """Before timing: the project step makes exactly the draws `draws(seed)` predicts, and (one op
    per edge) the limit computes the same logits as the project's forward on that draw."""
    draws = project.draws(seed, train[0].size(0))
    plan = Plan.of(draws[0])
    with torch.no_grad():
        project.reseed(seed)
        reference = project.net(train[0])
        mine = limit_forward(project.net, plan, train[0])
    recorded: list = []
    original = project.net.sample

    def recording(batch_size: int):
        recorded.append(original(batch_size))
        return recorded[-1]

    project.net.sample = recording
    try:
        project.step(train, valid, seed)
    finally:
        del project.net.sample
    same = len(recorded) == 2 and all(same_draw(r, d) for r, d in zip(recorded, draws, strict=True))
    if not same:
        raise SystemExit("search_step.py: the project step did not make the predicted draws; the pairing would "
                         "be meaningless")
    one_op_per_edge = all(c[0] == "edge" for c in plan.cells if c is not None)
    # With examples regrouped the limit computes a different (equally costly) function: no logit check.
    diff = float((reference - mine).abs().max()) if one_op_per_edge else None
    return {"project_step_made_the_predicted_draws": same, "limit_max_abs_logit_diff": diff}


def run_limit(args: argparse.Namespace, layout: str, mode: str, rt: Runtime, train, valid) -> dict:
    project = ProjectSide(args, layout, mode, rt)
    if Plan.of(project.draws(args.seed, args.batch)[0]) is None:
        return {"baseline": None, "skipped": f"mode {mode!r} draws no single path, so it has no one-path limit"}
    limit = LimitSide(project.net, rt)
    valid_leaf = valid[0].clone().requires_grad_(True)
    check = check_limit(project, args.seed * 100_003 + 99_999, train, valid)
    memory: dict[str, float] = {}
    if args.memory:
        draws = project.draws(args.seed, args.batch)
        plan = Plan.of(draws[0])
        memory["baseline"] = w_forward_memory(project, lambda: limit_forward(project.net, plan, train[0]))
        project.reseed(args.seed)
        memory["project"] = w_forward_memory(project, lambda: project.net(train[0]))

    def round_steps(r: int) -> tuple:
        seed = args.seed * 100_003 + r
        draws = project.draws(seed, args.batch)
        limit_args = (Plan.of(draws[0]), Plan.of(draws[1]), train, valid_leaf, valid[1])
        return lambda: project.step(train, valid, seed), lambda: limit.step(*limit_args)

    paired = paired_rounds(args, rt.device, f"{layout}/{mode}", ("project", "limit"), round_steps)
    result = paired.summary("one-path limit")
    result["check"] = check
    if memory:
        result["saved_activation_mb"] = memory
    return result


def run_all_ops(args: argparse.Namespace, layout: str, mode: str, rt: Runtime, train, valid) -> dict:
    darts = ProjectSide(args, layout, mode, rt)
    gdas = ProjectSide(args, layout, args.darts_against, rt)

    def round_steps(r: int) -> tuple:
        seed = args.seed * 100_003 + r
        return lambda: darts.step(train, valid, seed), lambda: gdas.step(train, valid, seed)

    paired = paired_rounds(args, rt.device, f"{layout}/{mode}", (mode, f"gdas({args.darts_against})"), round_steps)
    result = paired.summary(f"project GDAS step, sampling={args.darts_against}")
    if args.memory:
        result["saved_activation_mb"] = {
            "project": w_forward_memory(darts, lambda: darts.net(train[0])),
            "baseline": w_forward_memory(gdas, lambda: gdas.net(train[0])),
        }
    return result


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device, threads: int) -> dict:
    info: dict[str, Any] = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "threads": threads,
                            "torch": torch.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rt = Runtime(device=device, precision="bf16" if args.amp else "fp32")
    train, valid = make_batch(args, device, args.seed), make_batch(args, device, args.seed + 1)
    report: dict[str, Any] = {
        "benchmark": "search_step",
        "ratio": "median over rounds of (project step time / baseline step time), both on the same draw",
        "device": str(device),
        "machine": machine(device, args.threads),
        "loadavg_start": loadavg(),
        "config": {"C": args.channels, "N": args.cells_per_stage, "frc": args.frc, "batch": args.batch,
                   "size": args.size, "rounds": args.rounds, "warmup": args.warmup, "amp": args.amp,
                   "seed": args.seed, "darts_against": args.darts_against},
        "results": {},
    }
    for layout in args.layouts:
        report["results"][layout] = {}
        for mode in args.modes:
            print(f"{layout}/{mode}", file=sys.stderr)
            if mode in ALL_OPS_MODES:
                result = run_all_ops(args, layout, mode, rt, train, valid)
            else:
                result = run_limit(args, layout, mode, rt, train, valid)
            report["results"][layout][mode] = result
    report["loadavg_end"] = loadavg()
    report["median_ratios"] = {
        f"{layout}/{mode}": r.get("median_ratio") for layout, modes in report["results"].items()
        for mode, r in modes.items()
    }
    if device.type == "cpu":
        report["cpu_median_ratios"] = {
            f"{layout}/{mode}": r["cpu"]["median_ratio"] for layout, modes in report["results"].items()
            for mode, r in modes.items() if "cpu" in r
        }
    return emit(report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
