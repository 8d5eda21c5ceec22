"""What the search-step benchmarks share: their command line's common options."""

from __future__ import annotations

import argparse
import json

import torch


def step_parser(doc: str, cells_per_stage: int, rounds_help: str) -> argparse.ArgumentParser:
    """A parser with the options every search-step benchmark takes; each script adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--channels", "-C", type=int, default=16)
    parser.add_argument("--cells-per-stage", "-N", type=int, default=cells_per_stage)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--rounds", type=int, default=9, help=rounds_help)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    return parser


def emit(report: dict, json_path: str | None) -> int:
    """Print the report as JSON (and write it to `json_path` when given); the script's exit code."""
    text = json.dumps(report, indent=2)
    if json_path:
        with open(json_path, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0
