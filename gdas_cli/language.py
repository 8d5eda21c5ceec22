"""What recurrent-cell search and language-model training share, as engine tasks.

The corpus and its BPTT segments (a function of (seed, epoch) only, so resuming at any index is
exact), the carried hidden state (reset at each epoch start and saved with the optimizer state),
the streamed validation loss and perplexity, and the config fields both use (the paper's PTB
values; see docs/sources.md).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.nn import functional as F

from .corpus import CORPORA, DEMO, Corpus, batchify, get_batch, load_corpus
from .engine import Runtime, Task, check_finite
from .errors import GdasError
from .limits import MAX_EMSIZE
from .models.rnn import LanguageModelBase
from .progress import track

MAX_SEQ_LEN_DELTA = 20


@dataclass
class LMConfig:
    """What recurrent-cell search and language-model training share (the paper's PTB values)."""

    dataset: str = "ptb"
    data_dir: str | None = None
    eval_batch_size: int = 10
    bptt: int = 35
    lr: float = 20.0
    grad_clip: float = 0.25
    tar: float = 1e-3
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    seed: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # each setting's source, for the plan


# Where the shared defaults come from (docs/sources.md "RNN"); search and training add their own.
LM_SOURCES: dict[str, str] = {
    "eval_batch_size": "2019 code",
    "bptt": "paper",
    "lr": "2019 code",
    "grad_clip": "2019 code",
    "tar": "2019 code",
    "dropout": "2019 code",
    "dropouth": "2019 code",
    "dropoutx": "2019 code",
    "dropouti": "2019 code",
    "seed": "ours",
}


class LMRunConfig(Protocol):
    """What the shared code reads of a config: LMConfig's fields and the sizes each subclass sets with its own
    defaults (search and training differ there)."""

    dataset: str
    data_dir: str | None
    eval_batch_size: int
    bptt: int
    lr: float
    seed: int
    epochs: int
    batch_size: int
    emsize: int


def resolve_lm_config(
    cls: type,
    dataset: str,
    defaults: dict[str, dict[str, Any]],
    overrides: dict[str, Any],
    sources: dict[str, str],
) -> Any:
    """Defaults < the corpus's own defaults (`ours` for the demo corpus) < the options given; `sources` names
    the origin of each default."""
    if dataset not in CORPORA:
        raise GdasError(f"--dataset: {dataset!r}: unknown corpus; known: {', '.join(CORPORA)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    config = cls(dataset=dataset, **{**defaults[dataset], **given})
    own = "ours" if dataset == DEMO else None
    config.sources = {
        key: "you" if key in given else (own if own and key in defaults[dataset] else origin)
        for key, origin in {**LM_SOURCES, **sources}.items()
    }
    return config


def check_lm_config(config: LMRunConfig) -> None:
    check_finite(config)
    rules = [
        (config.epochs >= 1, f"--epochs: {config.epochs} must be >= 1"),
        (config.batch_size >= 1, f"--batch-size: {config.batch_size} must be >= 1"),
        (config.eval_batch_size >= 1, f"--eval-batch-size: {config.eval_batch_size} must be >= 1"),
        (config.bptt >= 2, f"--bptt: {config.bptt} must be >= 2"),
        (config.emsize >= 1, f"--emsize: {config.emsize} must be >= 1"),
        (config.emsize <= MAX_EMSIZE, f"--emsize: {config.emsize} must be at most {MAX_EMSIZE}"),
        (config.lr > 0, f"--lr: {config.lr} must be positive"),
        (getattr(config, "weight_decay", 0) >= 0, f"--weight-decay: {getattr(config, 'weight_decay', 0)} must be >= 0"),
        (
            all(0 <= getattr(config, d) < 1 for d in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")),
            "dropout probabilities must be in [0, 1)",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise GdasError(message)


# ----------------------------------------------------------------------------------------- batches


def segment_schedule(rows: int, bptt: int, generator: torch.Generator, jitter: bool) -> list[tuple[int, int]]:
    """(start row, length) of every BPTT segment of an epoch over `rows` rows.

    The length is bptt with probability 0.95, else bptt / 2; with `jitter` (final training) it is
    then drawn from N(that, 5), at least 5 and at most bptt + 20; without (search) it is truncated.
    """
    segments, start = [], 0
    while start < rows - 2:
        base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
        if jitter:
            drawn = int(base + 5.0 * torch.randn((), generator=generator).item())
            length = min(max(5, drawn), bptt + MAX_SEQ_LEN_DELTA)
        else:
            length = max(1, int(base))
        length = min(length, rows - 1 - start)
        segments.append((start, length))
        start += length
    return segments


@dataclass
class Segment:
    """One BPTT segment: `index` in the epoch (0 resets the hidden state), inputs (L, B), targets (L*B,)."""

    index: int
    start: int
    data: torch.Tensor
    targets: torch.Tensor


class SegmentBatches:
    """The segments of one epoch; a function of (seed, epoch) only, so resuming at any index is exact."""

    def __init__(self, data: torch.Tensor, bptt: int, seed: int, epoch: int, jitter: bool) -> None:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        self.data, self.epoch = data, epoch
        self.schedule = segment_schedule(data.size(0), bptt, generator, jitter)

    def __len__(self) -> int:
        return len(self.schedule)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Segment]:
        if epoch != self.epoch:
            raise RuntimeError(f"segments of epoch {self.epoch} asked for epoch {epoch}")
        for index in range(start, len(self.schedule)):
            row, length = self.schedule[index]
            data, targets = get_batch(self.data, row, length)
            yield Segment(index, row, data, targets)


# -------------------------------------------------------------------------------------- evaluation


def stream_loss(
    model: LanguageModelBase,
    data: torch.Tensor,
    bptt: int,
    *extra: Any,
    autocast: Any = contextlib.nullcontext,
    description: str = "evaluate",
) -> float:
    """Mean NLL per token over a batchified split, hidden state carried across segments (eval mode).

    `description` names the progress bar (progress.track) shown on a terminal.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    count = 0
    hidden = model.init_hidden(data.size(1))
    try:
        with torch.no_grad():
            starts = range(0, data.size(0) - 1, bptt)
            for start in track(starts, description, total=len(starts)):
                inputs, targets = get_batch(data, start, bptt)
                with autocast():
                    out = model(inputs, hidden, *extra)
                total += F.cross_entropy(out.logits.float(), targets, reduction="sum").double()
                count += targets.numel()
                hidden = out.hidden
    finally:
        model.train(was_training)
    return total.item() / max(count, 1)


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


# ------------------------------------------------------------------------------------------- tasks


class LanguageTask(Task):
    """What search and training share: corpus, segments, the carried hidden state, evaluation."""

    config: LMRunConfig
    model: LanguageModelBase
    jitter = False
    refuses = {
        "compile": "recurrent cells run eager here (their sampled paths and variable BPTT lengths would recompile)",
        "channels_last": "a recurrent cell has no image tensors to lay out",
        "sync_bn": "a recurrent cell has no BatchNorm",
    }

    def __init__(self) -> None:
        self.corpus: Corpus | None = None
        self.epoch = 0
        self.hidden: torch.Tensor | None = None
        self.rt: Runtime | None = None

    def _setup_data(self, rt: Runtime) -> Corpus:
        if rt.distributed:
            raise GdasError("recurrent search and language-model training run in one process; start without torchrun")
        self.rt = rt
        cfg = self.config
        self.corpus = corpus = load_corpus(cfg.dataset, cfg.data_dir)
        self.train_data = batchify(corpus.train, cfg.batch_size).to(rt.device)
        self.valid_eval = batchify(corpus.valid, cfg.eval_batch_size, "--eval-batch-size").to(rt.device)
        return corpus

    def corpus_summary(self) -> dict[str, Any]:
        return self.corpus.summary() if self.corpus is not None else {}

    def start_epoch(self, epoch: int) -> dict[str, float]:
        self.epoch = epoch
        return {}

    def train_batches(self) -> SegmentBatches:
        return SegmentBatches(self.train_data, self.config.bptt, self.config.seed, self.epoch, self.jitter)

    def carried(self, segment: Segment, current: torch.Tensor | None) -> torch.Tensor:
        """The hidden state to start `segment` from: zeros at the epoch's first segment, else detached."""
        if segment.index == 0 or current is None or current.size(0) != segment.data.size(1):
            return self.model.init_hidden(segment.data.size(1))
        return current.detach()

    def scaled_lr(self, optimizer: torch.optim.Optimizer, length: int) -> float:
        """Set lr = base * length / bptt for this step (shorter segments take smaller steps)."""
        lr = self.config.lr * length / self.config.bptt
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _hidden_state(self) -> dict[str, Any]:
        return {"hidden": self.hidden.detach().cpu() if self.hidden is not None else None}

    def _load_hidden(self, state: dict[str, Any]) -> None:
        self.hidden = self._to_device(state.get("hidden"))

    def _to_device(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """A saved tensor on the run's device (as saved, before setup)."""
        return tensor.to(self.rt.device) if tensor is not None and self.rt is not None else tensor
