"""What a task is to the engine: the `Task` base class and the `BatchSource` its batches come from.

Task protocol (subclass `Task`; the methods marked optional have defaults)::

    kind: str                        names the run ("train", "search", "lm"): runs/<kind>-<dataset>-<time>
    best_metric: (key, "max"|"min")  optional; the record key that picks checkpoint/best (None: no best)
    refuses: {option: why}           optional; shared run options (EngineConfig fields) this task refuses
    resume_may_change: frozenset     optional; task-config keys `--resume` may change (data paths, workers)
    config_dict() -> dict            the resolved task config (JSON), saved under "task" in config.json
    setup(rt)                        load data, build models and optimizers on rt.device, wrap the trained
                                     module with rt.prepare_model. Raise GdasError for bad input: nothing
                                     has been written yet. Seeded identically on every rank.
    train_batches() -> BatchSource   the training batches (data.TensorBatches, data.LoaderBatches, ...)
    start_epoch(epoch) -> dict       optional; set lr / drop-path / tau for `epoch` (0-based). Must be
                                     idempotent: a run resumed mid-epoch calls it again. Returns scalars
                                     for the epoch's record (e.g. {"lr": ..., "drop_path": ...}).
    train_step(batch, rt) -> dict    forward, rt.backward_step(loss, optimizer, ...); returns per-batch
                                     SUMS as tensors (no .item(), so no host sync), with "n" = examples.
                                     The record gets train_<key> = sum(key) / sum(n) over all ranks.
    end_epoch(epoch) -> dict         optional; step schedulers; extra record fields (tau, genotype, ...)
    evaluate(epoch, rt) -> dict      metrics of the epoch's model, already reduced over ranks
                                     (rt.all_reduce_sum); keys go into the record as given (test_top1)
    state_dict() / load_state_dict() optimizers, schedulers and anything else not in the weights; must
                                     load with torch.load(weights_only=True): tensors, numbers, str, lists,
                                     tuples, dicts
    save_weights(dir) / load_weights(dir)  the model weights as safetensors in a checkpoint folder
    after_epoch(run_dir, history)    optional; rank 0 writes files derived from the records (e.g.
                                     genotypes.jsonl). Also called on resume, so they match the checkpoint.
    run_record() -> dict             optional; what the run is (rundir.run_record: command, dataset, space or genotype,
                                     the record keys of each split, its own record files), config.json's
                                     `run`; the engine adds metrics.jsonl to its records
    epoch_views(run_dir, history) -> dict  optional; what observers may show of the epoch of history[-1]
                                     beyond its record: {"alphas": {role: tensor}, "genotype": Genotype}
                                     (searches); {} by default

Batches come from a `BatchSource`: `len(source)` batches per epoch on this rank and
`source.batches(epoch, start)`, which must give the same batches for the same epoch every time
(order and augmentation are functions of the seed, epoch and index), so a resumed run skips the
`start` batches already done and sees exactly what the uninterrupted run saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from ..rundir import run_record
from .runtime import Runtime


class BatchSource(Protocol):
    """The batches of an epoch: deterministic in (seed, epoch), resumable from any batch index."""

    def __len__(self) -> int: ...

    def batches(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


class Task:
    """Base class of engine tasks: override the required methods (see the module docstring)."""

    kind: str = "run"
    best_metric: tuple[str, str] | None = None
    examples: str = "images"  # what train_step's "n" counts; names the record's throughput (images_per_s)
    # the shared run options (EngineConfig fields) this task cannot honour, each with why: refused when set
    refuses: Mapping[str, str] = {}
    # the task-config keys a resumed run may change (where its data is, how it is read), besides the engine's
    # own (resume.RESUME_SAFE); any other typed option that differs from the saved run is refused
    resume_may_change: frozenset[str] = frozenset()
    network: str | None = None  # tells runs of one kind apart in config.json's task (search: "cnn" or "rnn")

    def config_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def setup(self, rt: Runtime) -> None:
        raise NotImplementedError

    def train_batches(self) -> BatchSource:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    def train_step(self, batch: Any, rt: Runtime) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {}

    def evaluate(self, epoch: int, rt: Runtime) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def save_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def load_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def after_epoch(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        pass

    def run_record(self) -> dict[str, Any]:
        """What the run is (rundir.run_record), saved as config.json's `run`; the engine adds metrics.jsonl."""
        return run_record(self.kind, dataset=None, figures={})

    def epoch_views(self, run_dir: Path, history: list[dict[str, Any]]) -> dict[str, Any]:
        """What observers may show of the epoch of `history[-1]` beyond its record (rank 0, after after_epoch):
        a search's {"alphas": {role: tensor (edges, ops)}, "genotype": the cell derived from them}."""
        return {}
