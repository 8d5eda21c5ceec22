"""Shared by the search tests: a tiny real search on the built-in digits set, through the real CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from gdas_cli.cli import app
from cli_helpers import assert_one_line_error  # noqa: F401  (re-exported to the search tests)

runner = CliRunner()

# 5 cells (N=1), C=8 (the FRC needs C % 8 == 0), 8x8 inputs, 3 steps per epoch: about a second per epoch.
TINY = ["--dataset", "digits", "-C", "8", "-N", "1", "--image-size", "8", "--batch-size", "32",
        "--limit-train-batches", "3", "--epochs", "2"]


# the provenance keys every searched genotype has, CNN or RNN, any space
PROVENANCE_KEYS = {"source", "run", "space", "dataset", "sampling", "seed", "epoch", "epochs", "tau", "alphas_sha256",
                   "gdas_version", "movement"}


def gdas(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def search(run_dir: Path, *extra: str):
    return gdas("search", "cnn", *TINY, "--quiet", "--run-dir", run_dir, *extra)




def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, to show a failed command changed nothing."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
