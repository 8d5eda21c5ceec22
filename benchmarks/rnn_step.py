"""Time one recurrent search step (W step + A step, exactly `gdas_cli.search.rnn_task.rnn_search_step`) in `gdas`
(hard Gumbel, one op per edge) and `darts` (softmax, every op) mode; print JSON.

Tokens/s counts the train tokens of a step (batch x bptt); each step also runs an A step on as many
valid tokens. Defaults are the paper's search (emb = hid = 300, batch 128, bptt 35, PTB's 10,000
words); on a CPU use small sizes:

    python benchmarks/rnn_step.py --threads 1 --emsize 64 --batch 16 --bptt 20 --vocab 2000 --steps 3
    python benchmarks/rnn_step.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from gdas_cli.engine import Runtime
from gdas_cli.search.rnn import RNN_SAMPLING, build_rnn_search_network
from gdas_cli.search.rnn_task import rnn_search_step


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--emsize", type=int, default=300, help="embedding = hidden size")
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--cell-steps", type=int, default=8, help="nodes in the recurrent cell")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per mode (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--modes", default=",".join(RNN_SAMPLING))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mode(mode: str, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(args.seed)
    model = build_rnn_search_network(args.vocab, ninp=args.emsize, steps=args.cell_steps, sampling=mode).to(device)
    w_opt = torch.optim.SGD(list(model.weights()), lr=20.0, weight_decay=5e-7)
    a_opt = torch.optim.Adam(model.alphas(), lr=3e-3, weight_decay=1e-3)
    rt = Runtime(device=device)
    tokens = torch.randint(0, args.vocab, (args.bptt + 1, args.batch), device=device)
    inputs, targets = tokens[:-1], tokens[1:].reshape(-1)
    hidden = model.init_hidden(args.batch)
    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        rnn_search_step(model, w_opt, a_opt, rt, (inputs, targets, hidden), (inputs, targets, hidden),
                        grad_clip=0.25, tar=1e-3)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {"step_ms": round(step_s * 1000, 2), "tokens_per_s": round(args.batch * args.bptt / step_s, 1),
            "step_ms_all": [round(t * 1000, 2) for t in times]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    modes = [m for m in args.modes.split(",") if m]
    results = {mode: time_mode(mode, args, device) for mode in modes}
    report = {
        "benchmark": "rnn_search_step",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": args.threads, "torch": torch.__version__, "python": sys.version.split()[0],
        "config": {"emsize": args.emsize, "vocab": args.vocab, "batch": args.batch, "bptt": args.bptt,
                   "cell_steps": args.cell_steps, "steps": args.steps},
        "modes": results,
    }
    if "gdas" in results and "darts" in results:
        report["speedup_gdas_vs_darts"] = round(results["darts"]["step_ms"] / results["gdas"]["step_ms"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
