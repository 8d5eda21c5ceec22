"""Per-epoch search history in a run directory: `alphas.jsonl` and `genotypes.jsonl`.

One JSON object per line and per finished epoch (`epoch` counts from 1). Alphas are written as the
raw float32 values (JSON floats round-trip them exactly), so a genotype can be re-derived and its
alphas hash re-checked for any epoch. The tasks rewrite both files whole (atomically) from their
state after every epoch and on resume, so they always match the checkpoint; jsonio reads them, and
every record is checked by type and shape before use (`load_alpha_history`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import GdasError
from ..jsonio import read_jsonl
from ..rundir import ALPHAS_FILE
from ..spaces import SPACES, space_of_role

# the cell types a search records alphas for: every role of every search space
ALPHA_CELLS = tuple(role for space in SPACES.values() for role in space.roles)


@dataclass(frozen=True)
class AlphaRecord:
    epoch: int
    tau: float
    alphas: dict[str, torch.Tensor]
    step: int | None = None  # the steps (one A step each) taken by the end of the epoch; older runs lack it

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {t: torch.softmax(a, dim=-1) for t, a in self.alphas.items()}


def alpha_record(epoch: int, tau: float, alphas: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {"epoch": epoch, "tau": tau, "alphas": {t: a.detach().float().cpu().tolist() for t, a in alphas.items()}}


def with_steps(records: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alpha records with the global step of their epoch from the engine's records (metrics.jsonl)."""
    steps = {r["epoch"]: r["step"] for r in history}
    return [{**r, "step": steps.get(r["epoch"])} for r in records]


def load_alpha_history(run_dir: Path) -> list[AlphaRecord]:
    """The alphas of every finished epoch, oldest first; an error naming the file if there are none.

    Each record is checked before use: an int epoch, a finite tau, and per cell type a finite
    (edges, ops) matrix of the shape a cell of that type has, the same in every record.
    """
    path = Path(run_dir) / ALPHAS_FILE
    if not path.is_file():
        raise GdasError(f"{run_dir}: not a search run directory (no {ALPHAS_FILE})")
    records = [_alpha_record(raw, f"{path}: line {number}") for number, raw in enumerate(read_jsonl(path), 1)]
    if not records:
        raise GdasError(f"{path}: no finished epoch yet; nothing to derive or plot")
    last = records[-1]
    for number, record in enumerate(records, 1):
        shapes = {t: tuple(a.shape) for t, a in record.alphas.items()}
        if shapes != {t: tuple(a.shape) for t, a in last.alphas.items()}:
            raise GdasError(f"{path}: line {number}: alphas of shapes {shapes}, unlike the last epoch's")
        if number > 1 and record.epoch <= records[number - 2].epoch:
            raise GdasError(f"{path}: line {number}: epoch {record.epoch} does not follow {records[number - 2].epoch}")
    return records


def _alpha_record(raw: dict[str, Any], where: str) -> AlphaRecord:
    epoch, tau, step, alphas = raw.get("epoch"), raw.get("tau"), raw.get("step"), raw.get("alphas")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise GdasError(f"{where}: epoch must be an integer >= 1, not {epoch!r}")
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not math.isfinite(tau) or tau <= 0:
        raise GdasError(f"{where}: tau must be a positive number, not {tau!r}")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise GdasError(f"{where}: step must be an integer >= 0, not {step!r}")
    if not isinstance(alphas, dict) or not alphas or not set(alphas) <= set(ALPHA_CELLS):
        raise GdasError(f"{where}: alphas must map cell types ({', '.join(ALPHA_CELLS)}) to matrices")
    return AlphaRecord(epoch, float(tau), {t: _alpha_matrix(rows, t, where) for t, rows in alphas.items()}, step)


def _alpha_matrix(rows: Any, cell_type: str, where: str) -> torch.Tensor:
    """A finite float32 (edges, ops) matrix whose shape a cell of `cell_type` can have."""
    space = space_of_role(cell_type)
    ops = space.ops
    try:
        matrix = torch.tensor(rows, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        matrix = None
    edges = [len(space.edges(steps)) for steps in ([space.steps] if space.steps else range(1, 65))]
    if matrix is None or matrix.dim() != 2 or matrix.shape[1] != len(ops) or matrix.shape[0] not in edges:
        shape = tuple(matrix.shape) if matrix is not None else "not a matrix of numbers"
        raise GdasError(
            f"{where}: {cell_type} alphas must be (edges, {len(ops)}) with edges one of {edges[:4]}..., got {shape}"
        )
    if not torch.isfinite(matrix).all():
        raise GdasError(f"{where}: {cell_type} alphas hold values that are not finite in float32")
    return matrix


def pick_epoch(records: Iterable[AlphaRecord], epoch: int | None, source: str) -> AlphaRecord:
    """The record of `epoch`, or the last one when epoch is None."""
    records = list(records)
    if epoch is None:
        return records[-1]
    for record in records:
        if record.epoch == epoch:
            return record
    raise GdasError(f"--epoch {epoch}: {source} has epochs {records[0].epoch}..{records[-1].epoch}")
