"""Per-epoch search history in a run directory: `alphas.jsonl` and `genotypes.jsonl`.

One JSON object per line and per finished epoch (`epoch` counts from 1). Alphas are written as the
raw float32 values (JSON floats round-trip them exactly), so a genotype can be re-derived and its
alphas hash re-checked for any epoch. On resume the files are cut back to the checkpoint's epoch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import GdasError
from ..files import atomic_write_text
from ..jsonio import parse_json, read_text
from ..rundir import ALPHAS_FILE


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
    """The alphas of every finished epoch, oldest first; an error naming the file if there are none."""
    path = Path(run_dir) / ALPHAS_FILE
    if not path.is_file():
        raise GdasError(f"{run_dir}: not a search run directory (no {ALPHAS_FILE})")
    records = []
    for raw in read_jsonl(path):
        try:
            alphas = {t: torch.tensor(rows, dtype=torch.float32) for t, rows in raw["alphas"].items()}
            step = raw.get("step")
            records.append(
                AlphaRecord(int(raw["epoch"]), float(raw["tau"]), alphas, int(step) if step is not None else None)
            )
        except (KeyError, TypeError, ValueError) as err:
            raise GdasError(f"{path}: malformed record ({err})") from None
    if not records:
        raise GdasError(f"{path}: no finished epoch yet; nothing to derive or plot")
    return records


def pick_epoch(records: Iterable[AlphaRecord], epoch: int | None, source: str) -> AlphaRecord:
    """The record of `epoch`, or the last one when epoch is None."""
    records = list(records)
    if epoch is None:
        return records[-1]
    for record in records:
        if record.epoch == epoch:
            return record
    raise GdasError(f"--epoch {epoch}: {source} has epochs {records[0].epoch}..{records[-1].epoch}")
