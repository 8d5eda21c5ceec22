"""How far a search's alphas moved from uniform, how decisive the derived choices are, and whether that is noise.

Per edge, over P = softmax(alpha) of its K ops:

- `moved`: the total variation distance from uniform, 1/2 sum_k |P_k - 1/K|: the share of probability
  that moved from one op to another (0: untouched; 1 - 1/K: one op has it all);
- `margin`: P of the chosen op minus P of the runner-up among the ops the derive rule could choose.

Per cell type: the mean `moved` over its edges, the mean `margin` over the kept edges, and `spread`,
the root mean square over edges of the standard deviation of the edge's alphas (logits).

Noise. Adam moves each alpha by about `arch_lr` per step whatever its gradient's scale, so S steps of
gradients with no consistent sign move it about arch_lr * sqrt(S) (`noise_scale`); gradients that
agree from step to step move it up to arch_lr * S. A derived cell is called indistinguishable from
noise when its alphas moved less than NOISE_MOVED on average, or their spread is less than
NOISE_RATIO times the noise scale (averaged over the searched cell types). Measured on 4 classes of
real digits (README, "Your own data"): a search on randomly shuffled labels ends at 0.4-1.6 times the
noise scale, searches that agree across seeds at 2.6-4.2. It is a check, not a proof: `--seeds K`
trains the cells and compares them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .genotype import Cell

NOISE_MOVED = 0.01
NOISE_RATIO = 2.0
REMEDIES = "search longer (--epochs), raise --arch-lr, or compare cells with --seeds K"


def edge_row(node: int, source: int, n_inputs: int) -> int:
    """The alpha row of the edge into intermediate node `node` (0-based) from state `source`."""
    return sum(n_inputs + k for k in range(node)) + source


def _edge_moved(row: torch.Tensor) -> float:
    return 0.5 * float((row - 1.0 / row.numel()).abs().sum())


def _margin(row: torch.Tensor, chosen: int, choices: Sequence[int]) -> float:
    others = [float(row[k]) for k in choices if k != chosen]
    return float(row[chosen]) - (max(others) if others else 0.0)


def cell_movement(
    alphas: torch.Tensor, cell: Cell, ops: Sequence[str], n_inputs: int, choices: Sequence[int]
) -> dict[str, Any]:
    """The statistics of one cell type (module docstring), and each kept edge's probability and margin."""
    alphas = alphas.detach().double().cpu()
    probs = torch.softmax(alphas, dim=-1)
    moved = [_edge_moved(row) for row in probs]
    chosen = []
    for node, edges in enumerate(cell.nodes):
        kept = []
        for edge in edges:
            row, k = probs[edge_row(node, edge.input, n_inputs)], ops.index(edge.op)
            kept.append([round(float(row[k]), 4), round(_margin(row, k, choices), 4)])
        chosen.append(kept)
    margins = [margin for node in chosen for _, margin in node]
    spread = math.sqrt(float(alphas.std(dim=-1, unbiased=False).square().mean()))
    return {
        "moved": round(sum(moved) / len(moved), 4),
        "moved_max": round(max(moved), 4),
        "margin": round(sum(margins) / len(margins), 4) if margins else 0.0,
        "spread": round(spread, 4),
        "chosen": chosen,
    }


def measure(
    alphas: Mapping[str, torch.Tensor],
    cells: Mapping[str, Cell],
    *,
    ops: Sequence[str],
    n_inputs: int,
    choices: Sequence[int],
    arch_lr: float,
    steps: int | None,
) -> dict[str, Any]:
    """The movement record a searched genotype's provenance keeps (`movement`), with the noise verdict.

    `alphas` and `cells` by cell type (only the searched ones); `choices`: the op indices the derive rule
    picks from (all but `none` for the DARTS spaces); `steps`: the A steps the search took (None when
    unknown: then only `moved` decides).
    """
    per_cell = {t: cell_movement(alphas[t], cells[t], ops, n_inputs, choices) for t in cells}
    noise_scale = arch_lr * math.sqrt(steps) if steps else 0.0
    for stats in per_cell.values():
        stats["signal_to_noise"] = round(stats["spread"] / noise_scale, 2) if noise_scale > 0 else None
    moved = sum(s["moved"] for s in per_cell.values()) / len(per_cell)
    ratios = [s["signal_to_noise"] for s in per_cell.values() if s["signal_to_noise"] is not None]
    ratio = sum(ratios) / len(ratios) if ratios else math.inf
    verdict = "noise" if moved < NOISE_MOVED or ratio < NOISE_RATIO else "learned"
    return {
        "verdict": verdict,
        "uniform": round(1.0 / len(ops), 4),
        "moved": round(moved, 4),
        "signal_to_noise": round(ratio, 2) if math.isfinite(ratio) else None,
        "noise_scale": round(noise_scale, 4) if noise_scale > 0 else None,
        "arch_lr": arch_lr,
        "steps": steps,
        "cells": per_cell,
    }


def summary_line(movement: Mapping[str, Any]) -> str:
    """One line on how far the alphas moved; the verdict's warning when they are indistinguishable from noise."""
    ratio = movement.get("signal_to_noise")
    against = f", {ratio}x the random walk of {movement['steps']} Adam steps" if ratio is not None else ""
    cells = "; ".join(f"{t}: moved {c['moved']:.3f}, margin {c['margin']:.3f}" for t, c in movement["cells"].items())
    uniform = f" ({movement['uniform']:.3f})" if isinstance(movement.get("uniform"), float) else ""
    facts = f"op probabilities moved {movement['moved']:.3f} from uniform{uniform} on average{against} ({cells})"
    if movement["verdict"] == "noise":
        need = f"needs >= {NOISE_MOVED}" + (f" and >= {NOISE_RATIO}x" if ratio is not None else "")
        return f"warning: the derived cell is indistinguishable from noise: {facts}; {need}; {REMEDIES}"
    return f"the alphas learned: {facts}"
