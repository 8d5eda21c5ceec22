"""Time how long `gdas` takes to answer the commands that should feel instant; print JSON.

Each command runs in a fresh interpreter (as a person typing it would) `--repeat` times; the
median wall time is reported, with whether that process imported torch. The targets of issue 13:
every `--help` under 1 s and `gdas genotypes info` on a zoo genotype under 2 s, on two CPU cores.

    python benchmarks/startup.py
    python benchmarks/startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# what a person types after `gdas`
COMMANDS = {
    "help": ["--help"],
    "search_help": ["search", "cnn", "--help"],
    "train_help": ["train", "cifar10", "--help"],
    "eval_help": ["eval", "--help"],
    "runs_help": ["runs", "list", "--help"],
    "curves_help": ["plot", "curves", "--help"],
    "genotypes_info": ["genotypes", "info", "gdas_frc"],
    "genotypes_info_imagenet": ["genotypes", "info", "gdas", "--net", "imagenet"],
}

# runs the CLI as the `gdas` script does, then says whether torch got imported
RUNNER = (
    "import sys\n"
    "from gdas_cli.cli import main\n"
    "sys.argv[0] = 'gdas'\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('TORCH_IMPORTED=' + str('torch' in sys.modules), file=sys.stderr)\n"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per command (median reported)")
    parser.add_argument("--only", default="", help="comma-separated names of COMMANDS to time (default: all)")
    return parser.parse_args(argv)


def time_command(args: list[str]) -> tuple[float, float, bool]:
    """Wall and CPU seconds of one fresh `gdas ARGS`, and whether it imported torch.

    CPU time (user + system) does not grow when other processes share the cores; wall time does.
    """
    paths = [p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "100"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"gdas {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, cpu, "TORCH_IMPORTED=True" in done.stderr


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    names = [n for n in opts.only.split(",") if n] or list(COMMANDS)
    results = {}
    for name in names:
        runs = [time_command(COMMANDS[name]) for _ in range(opts.repeat)]
        results[name] = {
            "command": "gdas " + " ".join(COMMANDS[name]),
            "median_s": round(statistics.median(s for s, _, _ in runs), 3),
            "median_cpu_s": round(statistics.median(c for _, c, _ in runs), 3),
            "runs_s": [round(s, 3) for s, _, _ in runs],
            "imports_torch": any(t for _, _, t in runs),
        }
    info = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "repeat": opts.repeat,
    }
    print(json.dumps({"machine": info, "commands": results}, indent=2))


if __name__ == "__main__":
    main()
