"""Per-epoch search history in a run directory: `alphas.jsonl` and `genotypes.jsonl`.

One JSON object per line and per finished epoch (`epoch` counts from 1). Alphas are written as the
raw float32 values (JSON floats round-trip them exactly), so a genotype can be re-derived and its
alphas hash re-checked for any epoch. On resume the files are cut back to the checkpoint's epoch.
Read back, every record is checked by type and shape before use (`load_alpha_history`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import GdasError
from ..files import atomic_write_text
from ..jsonio import parse_json, read_text
from ..ops import PRIMITIVES, RNN_PRIMITIVES
from ..rundir import ALPHAS_FILE

# the cell types a search records alphas for: their op columns and the inputs of their cells
ALPHA_CELLS = {"normal": (PRIMITIVES, 2), "reduce": (PRIMITIVES, 2), "recurrent": (RNN_PRIMITIVES, 1)}


@dataclass(frozen=True)
class AlphaRecord:
    epoch: int
    tau: float
    alphas: dict[str, torch.Tensor]
    step: int | None = None  # the steps (one A step each) taken by the end of the epoch; older runs lack it

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {t: torch.softmax(a, dim=-1) for t, a in self.alphas.items()}


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one line and flush it to disk, so a kill leaves at most a torn last line."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (from a kill mid-write) is skipped."""
    if not path.is_file():
        return []
    records = []
    lines = read_text(path, "history file").splitlines(keepends=True)
    for number, line in enumerate(lines, 1):
        try:
            record = parse_json(line, f"{path}: line {number}")
        except GdasError:
            if number == len(lines) and not line.endswith("\n"):
                break
            raise
        if not isinstance(record, dict):
            raise GdasError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def truncate_jsonl(path: Path, last_epoch: int) -> None:
    """Keep only the records of epochs <= last_epoch (atomic rewrite)."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl(path) if int(r.get("epoch", 0)) <= last_epoch]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


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
    ops, inputs = ALPHA_CELLS[cell_type]
    try:
        matrix = torch.tensor(rows, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        matrix = None
    edges = [sum(inputs + i for i in range(steps)) for steps in range(1, 65)]
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
