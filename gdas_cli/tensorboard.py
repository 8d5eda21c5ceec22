"""TensorBoard event files of a run (`--tensorboard`): an observer of the engine's records.

Under `<run_dir>/tensorboard/`, at each record's global step: `epoch/<key>` for every number of the
epoch's record (metrics.jsonl: losses, top-1, lr, tau, images/s, `epoch/epoch` itself); for searches
`alphas/<role>/edge<i>/<op>` (softmax of that edge's alphas) and `genotype`, the drawing of the cell
derived at that epoch (`gdas genotypes plot`'s); and every 10th step of an epoch `step/<key>`, the running
train loss and top-1. A resumed run opens its writer with `purge_step` at the step it continues after:
TensorBoard's reader drops what the killed session wrote from there on, and this writes again what the
checkpoint holds at that step, so the curves read back equal metrics.jsonl with no step twice.

The engine imports this module only for runs with `--tensorboard` (it needs the `tensorboard` package:
the `tensorboard` extra); the engine's Observer protocol is met by shape, so nothing here imports it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .engine.observers import Observer, RunStart
from .errors import GdasError
from .rundir import TENSORBOARD_DIR

INSTALL_HINT = "pip install 'gdas-cli[tensorboard]' (or pip install tensorboard)"


def check_tensorboard() -> None:
    """A one-line GdasError unless the `tensorboard` package (which torch.utils.tensorboard needs) is installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise GdasError(
            f"--tensorboard: the tensorboard package is not installed; {INSTALL_HINT}, or pass --no-tensorboard"
        )


def _numbers(record: dict[str, Any]) -> dict[str, float]:
    """The record's numeric fields (bools, strings, None and the step left out), `epoch` included."""
    return {
        key: float(value)
        for key, value in record.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def cell_image(genotype: Any) -> Any:
    """The drawing of `genotype`'s cells as an RGB uint8 array (height, width, 3), rendered to PNG in memory."""
    import io

    import numpy as np
    from matplotlib.image import imread

    from .plot import draw_genotype

    buffer = io.BytesIO()
    draw_genotype(genotype).savefig(buffer, format="png", dpi=100)
    buffer.seek(0)
    rgba = imread(buffer, format="png")  # floats in [0, 1]
    return (np.asarray(rgba)[..., :3] * 255).round().astype(np.uint8)


class TensorBoardObserver(Observer):
    """Writes a run's records, alphas and cells as TensorBoard events (rank 0 only: the engine calls it there)."""

    steps = True

    def __init__(self) -> None:
        self.writer: Any = None

    def on_start(self, start: RunStart) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.task, self.run_dir = start.task, Path(start.run_dir)
        folder = self.run_dir / TENSORBOARD_DIR
        had_events = folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
        # a resumed run: the reader drops every event at or after this step (the killed session's extra steps)
        purge = start.global_step if start.resumed else None
        try:
            self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge)
        except OSError as err:
            raise GdasError(f"--tensorboard: cannot write {folder} ({err.strerror})") from None
        if start.resumed:
            # write again what the purge dropped and the checkpoint holds: records at that step (all of them
            # when the run had no events yet: resumed with --tensorboard for the first time)
            for index, record in enumerate(start.history):
                if record["step"] >= start.global_step or not had_events:
                    self.on_epoch(record, start.history[: index + 1])
            if start.step_scalars:
                self.on_step(start.global_step, start.step_scalars)
        self.writer.flush()

    def on_step(self, global_step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(f"step/{key}", value, global_step)
        self.writer.flush()  # a killed run keeps every step before its checkpoint

    def on_epoch(self, record: dict[str, Any], history: list[dict[str, Any]]) -> None:
        step = record["step"]
        for key, value in _numbers(record).items():
            self.writer.add_scalar(f"epoch/{key}", value, step)
        views = self.task.epoch_views(self.run_dir, history)
        self._alphas(views.get("alphas") or {}, step)
        if views.get("genotype") is not None:
            self.writer.add_image("genotype", cell_image(views["genotype"]), step, dataformats="HWC")
        self.writer.flush()

    def _alphas(self, alphas: dict[str, Any], step: int) -> None:
        import torch

        from .spaces import space_of_role

        for role, values in alphas.items():
            ops = space_of_role(role).ops
            probabilities = torch.as_tensor(values, dtype=torch.float64).softmax(dim=-1).tolist()
            for edge, row in enumerate(probabilities):
                for op, p in zip(ops, row, strict=True):
                    self.writer.add_scalar(f"alphas/{role}/edge{edge}/{op}", p, step)

    def on_finish(self, summary: dict[str, Any] | None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
