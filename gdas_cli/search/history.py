"""Per-epoch search history in a run directory: `alphas.jsonl` and `genotypes.jsonl`.

One JSON object per line and per finished epoch (`epoch` counts from 1). Alphas are written as the
raw float32 values (JSON floats round-trip them exactly), so a genotype can be re-derived and its
alphas hash re-checked for any epoch. The tasks rewrite both files whole (atomically) from their
state after every epoch and on resume, so they always match the checkpoint; jsonio reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import GdasError
from ..jsonio import read_jsonl
from ..rundir import ALPHAS_FILE


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
    """The alphas of every finished epoch, oldest first; an error naming the file if there are none."""
    path = Path(run_dir) / ALPHAS_FILE
    if not path.is_file():
        raise GdasError(f"{run_dir}: not a search run directory (no {ALPHAS_FILE})")
    records = []
    for raw in read_jsonl(path, "history file"):
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
