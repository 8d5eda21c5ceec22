"""Recurrent-cell search and language-model training as tasks on the one engine, and LM evaluation.

- `RNNSearchTask` (`gdas search rnn`, reference 8.3): per BPTT segment a W step (SGD lr 20 scaled
  by seq_len/bptt, wd 5e-7, clip 0.25, NLL + TAR) on train, then an A step (Adam 3e-3, wd 1e-3,
  NLL) on valid, each with a fresh hard Gumbel draw of the cell; alpha gradients are zeroed before
  every A step. Writes alphas.jsonl, genotypes.jsonl and, when done, genotype.json (the epoch with
  the lowest validation loss).
- `LMTrainTask` (`gdas train ptb|wt2|demo-text`, reference 8.4): the final model of a genotype,
  variable BPTT, SGD lr 20 switched to ASGD by the non-monotone rule; while on ASGD the
  validation loss (and `checkpoint/*/averaged.safetensors`) is that of the averaged weights.
- `evaluate_lm_run`: validation and test perplexity of a training run's best checkpoint.

Both tasks carry the hidden state from one segment to the next (reset at each epoch start) and
save it with the optimizer state, so a run killed mid-epoch resumes exactly. Segment lengths are
drawn from a generator seeded by (seed, epoch), so an epoch's batches never depend on the run's
history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.nn import functional as F

from . import __version__
from .checkpoint import find_checkpoint, write_jsonl
from .corpus import CORPORA, DEMO, Corpus, batchify, get_batch, load_corpus
from .engine import EngineConfig, Runtime, Task, check_run_dir, config_from_dict, read_run_config, run_task
from .errors import GdasError
from .genotype import Genotype
from .metrics import count_parameters
from .models.rnn import DATASET_ARGS, LanguageModelBase, RNNArgs, RNNLanguageModel, lm_loss
from .sampler import linear_tau
from .search.history import ALPHAS_FILE, GENOTYPES_FILE, alpha_record
from .search.rnn import RNN_SAMPLING, RNNSearchNetwork, build_rnn_search_network
from .search.step import frozen
from .files import atomic_write_text
from .weights import load_tensors_into, read_model_header, save_tensors

LM_FORMAT = "gdas-lm-weights-v1"
SEARCH_FORMAT = "gdas-rnn-search-weights-v1"
WEIGHTS_FILE = "model.safetensors"
AVERAGED_FILE = "averaged.safetensors"
MAX_SEQ_LEN_DELTA = 20


# ----------------------------------------------------------------------------------------- configs


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


@dataclass
class LMSearchConfig(LMConfig):
    """A recurrent-cell search (defaults: the paper's PTB search, reference 8.3)."""

    epochs: int = 200
    batch_size: int = 128
    emsize: int = 300
    steps: int = 8
    sampling: str = "gdas"
    weight_decay: float = 5e-7
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    tau_max: float = 10.0
    tau_min: float = 1.0
    dropoute: float = 0.0


@dataclass
class LMTrainConfig(LMConfig):
    """Final language-model training (defaults: the paper's PTB setting, reference 8.4)."""

    genotype: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2000
    batch_size: int = 64
    test_batch_size: int = 1
    emsize: int = 850
    weight_decay: float = 8e-7
    nonmono: int = 5
    dropoute: float = 0.1


# Per dataset: what differs from the dataclass defaults. `demo-text` is sized for a CPU minute.
SEARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "ptb": {}, "wt2": {},
    DEMO: {"epochs": 3, "batch_size": 32, "emsize": 64, "bptt": 20, "dropout": 0.3, "dropouth": 0.1,
           "dropoutx": 0.3, "dropouti": 0.1},
}
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "ptb": {"epochs": 2000, "emsize": DATASET_ARGS["ptb"]["ninp"], "weight_decay": 8e-7, "dropouth": 0.25},
    "wt2": {"epochs": 3000, "emsize": DATASET_ARGS["wt2"]["ninp"], "weight_decay": 5e-7, "dropouth": 0.15},
    DEMO: {"epochs": 6, "batch_size": 32, "emsize": 128, "bptt": 20, "dropout": 0.3, "dropouth": 0.1,
           "dropoutx": 0.3, "dropouti": 0.1, "dropoute": 0.0},
}


def _resolve(cls: type, dataset: str, defaults: dict[str, dict[str, Any]], overrides: dict[str, Any]) -> Any:
    if dataset not in CORPORA:
        raise GdasError(f"{dataset!r}: unknown corpus; known: {', '.join(CORPORA)}")
    values = {**defaults[dataset], **{k: v for k, v in overrides.items() if v is not None}}
    return cls(dataset=dataset, **values)


def resolve_search_config(dataset: str, overrides: dict[str, Any]) -> LMSearchConfig:
    """Defaults < the dataset's defaults < the options given (None = not given)."""
    config = _resolve(LMSearchConfig, dataset, SEARCH_DEFAULTS, overrides)
    _check_common(config)
    if config.sampling not in RNN_SAMPLING:
        raise GdasError(f"--sampling: {config.sampling!r} must be one of {', '.join(RNN_SAMPLING)}")
    if config.steps < 1:
        raise GdasError(f"--steps: {config.steps} must be >= 1")
    if config.tau_max <= 0 or config.tau_min <= 0:
        raise GdasError("--tau-max/--tau-min must be positive")
    if config.batch_size < 2:
        raise GdasError(f"--batch-size: {config.batch_size} must be >= 2 (the search cell's batch norm needs 2)")
    return config


def resolve_train_config(dataset: str, genotype: Genotype, overrides: dict[str, Any]) -> LMTrainConfig:
    if genotype.kind != "rnn":
        raise GdasError(f"{genotype.ref}: a {genotype.kind} genotype cannot train a language model on {dataset}; "
                        "use an rnn genotype (e.g. gdas_rnn)")
    config = _resolve(LMTrainConfig, dataset, TRAIN_DEFAULTS, {**overrides, "genotype": genotype.to_dict()})
    _check_common(config)
    if config.nonmono < 0:
        raise GdasError(f"--nonmono: {config.nonmono} must be >= 0")
    if config.test_batch_size < 1:
        raise GdasError(f"--test-batch-size: {config.test_batch_size} must be >= 1")
    return config


def _check_common(config: LMConfig) -> None:
    rules = [
        (config.epochs >= 1, f"--epochs: {config.epochs} must be >= 1"),
        (config.batch_size >= 1, f"--batch-size: {config.batch_size} must be >= 1"),
        (config.eval_batch_size >= 1, f"--eval-batch-size: {config.eval_batch_size} must be >= 1"),
        (config.bptt >= 2, f"--bptt: {config.bptt} must be >= 2"),
        (config.emsize >= 1, f"--emsize: {config.emsize} must be >= 1"),
        (config.lr > 0, f"--lr: {config.lr} must be positive"),
        (all(0 <= getattr(config, d) < 1 for d in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")),
         "dropout probabilities must be in [0, 1)"),
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


def stream_loss(model: LanguageModelBase, data: torch.Tensor, bptt: int, *extra: Any,
                autocast: Any = contextlib.nullcontext) -> float:
    """Mean NLL per token over a batchified split, hidden state carried across segments (eval mode)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    count = 0
    hidden = model.init_hidden(data.size(1))
    try:
        with torch.no_grad():
            for start in range(0, data.size(0) - 1, bptt):
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


def should_switch_to_asgd(history: list[float], val_loss: float, nonmono: int) -> bool:
    """The non-monotone trigger (NT-ASGD, as the AWD-LSTM/DARTS code runs it).

    Switch when more than `nonmono` SGD validation losses are logged and `val_loss` is worse than
    the best of them excluding the last `nonmono`: no improvement over a window of `nonmono` epochs.
    """
    if len(history) <= nonmono:
        return False
    earlier = history[: len(history) - nonmono] if nonmono > 0 else history
    return val_loss > min(earlier)


@contextlib.contextmanager
def averaged_weights(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[bool]:
    """Inside: the model holds ASGD's averaged weights (if averaging has started); restored after."""
    if not isinstance(optimizer, torch.optim.ASGD):
        yield False
        return
    saved = []
    for param in model.parameters():
        average = optimizer.state.get(param, {}).get("ax")
        if average is not None:
            saved.append((param, param.detach().clone()))
            param.data.copy_(average)
    try:
        yield bool(saved)
    finally:
        for param, value in saved:
            param.data.copy_(value)


# ---------------------------------------------------------------------------------------- weights


def lm_metadata(model: RNNLanguageModel) -> dict[str, str]:
    return {"format": LM_FORMAT, "gdas_genotype": model.genotype.to_json(), "gdas_lm": json.dumps(model.args.to_dict())}


def read_lm_metadata(path: Path) -> tuple[Genotype, RNNArgs]:
    """The genotype and model arguments in the header of a language-model weights file."""
    return read_model_header(Path(path), LM_FORMAT, "gdas_lm", RNNArgs, "language-model weights")


def load_language_model(path: Path, device: str | torch.device = "cpu") -> RNNLanguageModel:
    """Build the model a weights file's header describes and load its weights strictly."""
    genotype, args = read_lm_metadata(Path(path))
    model = RNNLanguageModel(genotype, args)
    load_tensors_into(model, Path(path), f"genotype {genotype.ref}")
    return model.to(device)


# -------------------------------------------------------------------------------------- search step


@dataclass
class SearchStepResult:
    """Mean train NLL and valid (arch) NLL as device tensors; the hidden states to carry on."""

    loss: torch.Tensor
    arch_loss: torch.Tensor
    hidden: torch.Tensor
    hidden_valid: torch.Tensor


Stream = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs (L, B), targets (L*B,), hidden (B, H)


def rnn_search_step(model: RNNSearchNetwork, w_optimizer: torch.optim.Optimizer, a_optimizer: torch.optim.Optimizer,
                    rt: Runtime, train: Stream, valid: Stream, *, grad_clip: float, tar: float) -> SearchStepResult:
    """One GDAS iteration (paper Alg. 1): W step on a train segment, then A step on a valid segment.

    Each forward draws its own architecture. The W step minimises NLL + TAR with the weights'
    gradient norm clipped; the A step minimises the valid NLL with the alphas' gradients zeroed
    first (the 2019 code let them accumulate) and no weight gradients computed.
    """
    model.train()
    inputs, targets, hidden = train
    w_optimizer.zero_grad(set_to_none=True)
    with rt.autocast():
        out = model(inputs, hidden)
        loss, nll = lm_loss(out, targets, tar)
    rt.backward_step(loss, w_optimizer, list(model.weights()), grad_clip)
    inputs, targets, hidden_valid = valid
    a_optimizer.zero_grad(set_to_none=True)
    with frozen(model.weights()), rt.autocast():
        out_valid = model(inputs, hidden_valid)
        arch_loss = F.cross_entropy(out_valid.logits.float(), targets)
    rt.backward_step(arch_loss, a_optimizer)
    return SearchStepResult(nll.detach(), arch_loss.detach(), out.hidden.detach(), out_valid.hidden.detach())


# ------------------------------------------------------------------------------------------ tasks


class _LanguageTask(Task):
    """What search and training share: corpus, segments, the carried hidden state, evaluation."""

    config: LMConfig
    model: LanguageModelBase
    jitter = False

    def __init__(self) -> None:
        self.corpus: Corpus | None = None
        self.epoch = 0
        self.hidden: torch.Tensor | None = None
        self.rt: Runtime | None = None

    def _setup_data(self, rt: Runtime) -> None:
        if rt.distributed:
            raise GdasError("recurrent search and language-model training run in one process; start without torchrun")
        self.rt = rt
        cfg = self.config
        self.corpus = load_corpus(cfg.dataset, cfg.data_dir)
        self.train_data = batchify(self.corpus.train, cfg.batch_size).to(rt.device)
        self.valid_eval = batchify(self.corpus.valid, cfg.eval_batch_size).to(rt.device)

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
        hidden = state.get("hidden")
        self.hidden = hidden.to(self.rt.device) if hidden is not None and self.rt is not None else hidden


class RNNSearchTask(_LanguageTask):
    """GDAS search of a recurrent cell (one W step and one A step per segment)."""

    kind = "search"
    best_metric = ("valid_loss", "min")

    def __init__(self, config: LMSearchConfig) -> None:
        super().__init__()
        self.config = config
        self.hidden_valid: torch.Tensor | None = None
        self.alpha_history: list[dict[str, Any]] = []
        self.genotype_history: list[dict[str, Any]] = []
        self.tau = config.tau_max
        self._pending: dict[str, Any] | None = None  # this epoch's genotype, completed by evaluate()

    def config_dict(self) -> dict[str, Any]:
        return {"network": "rnn", **dataclasses.asdict(self.config), "corpus": self.corpus_summary()}

    def setup(self, rt: Runtime) -> None:
        self._setup_data(rt)
        cfg = self.config
        self.valid_arch = batchify(self.corpus.valid, cfg.batch_size).to(rt.device)
        self.model = build_rnn_search_network(
            len(self.corpus.vocab), ninp=cfg.emsize, steps=cfg.steps, sampling=cfg.sampling, dropout=cfg.dropout,
            dropouth=cfg.dropouth, dropoutx=cfg.dropoutx, dropouti=cfg.dropouti, dropoute=cfg.dropoute,
        ).to(rt.device)
        self.w_optimizer = torch.optim.SGD(list(self.model.weights()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.a_optimizer = torch.optim.Adam(self.model.alphas(), lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay)

    def start_epoch(self, epoch: int) -> dict[str, float]:
        self.epoch = epoch
        self.tau = linear_tau(epoch, self.config.epochs, self.config.tau_max, self.config.tau_min)
        self.model.set_tau(self.tau)
        return {"tau": self.tau}

    def train_step(self, segment: Segment, rt: Runtime) -> dict[str, torch.Tensor]:
        cfg = self.config
        self.scaled_lr(self.w_optimizer, segment.data.size(0))
        start = segment.start % (self.valid_arch.size(0) - 1)  # the valid segment at the same position
        valid_inputs, valid_targets = get_batch(self.valid_arch, start, cfg.bptt)
        result = rnn_search_step(
            self.model, self.w_optimizer, self.a_optimizer, rt,
            (segment.data, segment.targets, self.carried(segment, self.hidden)),
            (valid_inputs, valid_targets, self.carried(dataclasses.replace(segment, data=valid_inputs),
                                                       self.hidden_valid)),
            grad_clip=cfg.grad_clip, tar=cfg.tar,
        )
        self.hidden, self.hidden_valid = result.hidden, result.hidden_valid
        n = segment.targets.numel()
        return {"loss": result.loss * n, "arch_loss": result.arch_loss * n,
                "n": torch.tensor(float(n), device=rt.device)}

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        alphas = {t: a.detach().float().cpu() for t, a in self.model.arch_parameters().items()}
        record = alpha_record(epoch + 1, self.tau, alphas)
        self.alpha_history = [r for r in self.alpha_history if r["epoch"] <= epoch] + [record]
        genotype = self.model.genotype(name="searched_rnn")
        self._pending = {"epoch": epoch + 1, "tau": self.tau, "genotype": genotype.to_dict()}
        return {"genotype": _compact(genotype)}

    def evaluate(self, epoch: int, rt: Runtime) -> dict[str, float]:
        loss = stream_loss(self.model, self.valid_eval, self.config.bptt, self.model.eval_plan(),
                           autocast=rt.autocast)
        if self._pending is not None and self._pending["epoch"] == epoch + 1:
            entry = {**self._pending, "valid_loss": loss, "valid_ppl": perplexity(loss)}
            self.genotype_history = [g for g in self.genotype_history if g["epoch"] <= epoch] + [entry]
        return {"valid_loss": loss, "valid_ppl": perplexity(loss)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "w_optimizer": self.w_optimizer.state_dict(), "a_optimizer": self.a_optimizer.state_dict(),
            **self._hidden_state(),
            "hidden_valid": self.hidden_valid.detach().cpu() if self.hidden_valid is not None else None,
            "alpha_history": self.alpha_history, "genotype_history": self.genotype_history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self._load_hidden(state)
        hidden_valid = state.get("hidden_valid")
        self.hidden_valid = hidden_valid.to(self.rt.device) if hidden_valid is not None else None
        self.alpha_history = list(state["alpha_history"])
        self.genotype_history = list(state["genotype_history"])

    def save_weights(self, directory: Path) -> None:
        metadata = {"format": SEARCH_FORMAT, "gdas_lm": json.dumps(self.model.args.to_dict()),
                    "steps": str(self.model.steps), "sampling": self.model.sampling}
        save_tensors(self.model, Path(directory) / WEIGHTS_FILE, metadata)

    def load_weights(self, directory: Path) -> None:
        load_tensors_into(self.model, Path(directory) / WEIGHTS_FILE, "the recurrent search network")

    def after_epoch(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        """alphas.jsonl and genotypes.jsonl as of the checkpoint; genotype.json once the last epoch is done."""
        write_jsonl(run_dir / ALPHAS_FILE, self.alpha_history)
        write_jsonl(run_dir / GENOTYPES_FILE, self.genotype_history)
        if history and history[-1]["epoch"] >= self.config.epochs and self.genotype_history:
            best = min(self.genotype_history, key=lambda g: (g["valid_loss"], g["epoch"]))
            genotype = self._final_genotype(best, run_dir)
            atomic_write_text(run_dir / "genotype.json", genotype.to_json())

    def _final_genotype(self, best: dict[str, Any], run_dir: Path) -> Genotype:
        from .search.derive import alphas_sha256

        alphas = next(r for r in self.alpha_history if r["epoch"] == best["epoch"])["alphas"]
        cfg = self.config
        provenance = {
            "source": "search", "method": "gdas" if cfg.sampling == "gdas" else "darts", "dataset": cfg.dataset,
            "corpus_sha256": self.corpus_summary().get("sha256"), "seed": cfg.seed, "epoch": best["epoch"],
            "epochs": cfg.epochs, "selected_by": "lowest valid_loss", "valid_loss": best["valid_loss"],
            "valid_ppl": best["valid_ppl"], "tau": best["tau"], "emsize": cfg.emsize, "batch_size": cfg.batch_size,
            "alphas_sha256": alphas_sha256({t: torch.tensor(a) for t, a in alphas.items()}),
            "run_dir": str(run_dir), "gdas_version": __version__,
        }
        data = {**best["genotype"], "provenance": provenance}
        return Genotype.from_dict(data, f"{run_dir}/genotype.json")


class LMTrainTask(_LanguageTask):
    """The final language model of an rnn genotype, with the SGD -> ASGD switch."""

    kind = "lm"
    best_metric = ("valid_loss", "min")
    jitter = True

    def __init__(self, config: LMTrainConfig) -> None:
        super().__init__()
        self.config = config
        self.genotype = Genotype.from_dict(config.genotype, "training config genotype")
        self.sgd_history: list[float] = []
        self.switched_at: int | None = None

    def config_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.config), "corpus": self.corpus_summary()}

    def setup(self, rt: Runtime) -> None:
        self._setup_data(rt)
        cfg = self.config
        args = RNNArgs(ntoken=len(self.corpus.vocab), ninp=cfg.emsize, dropout=cfg.dropout, dropouth=cfg.dropouth,
                       dropoutx=cfg.dropoutx, dropouti=cfg.dropouti, dropoute=cfg.dropoute)
        self.model = RNNLanguageModel(self.genotype, args).to(rt.device)
        self.optimizer = self._sgd()

    def _sgd(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def _asgd(self) -> torch.optim.Optimizer:
        return torch.optim.ASGD(self.model.parameters(), lr=self.config.lr, t0=0, lambd=0.0,
                                weight_decay=self.config.weight_decay)

    @property
    def on_asgd(self) -> bool:
        return isinstance(self.optimizer, torch.optim.ASGD)

    def train_step(self, segment: Segment, rt: Runtime) -> dict[str, torch.Tensor]:
        cfg, model = self.config, self.model
        model.train()
        self.hidden = self.carried(segment, self.hidden)
        self.scaled_lr(self.optimizer, segment.data.size(0))
        self.optimizer.zero_grad(set_to_none=True)
        with rt.autocast():
            out = model(segment.data, self.hidden)
            loss, nll = lm_loss(out, segment.targets, cfg.tar)
        rt.backward_step(loss, self.optimizer, None, cfg.grad_clip)
        self.hidden = out.hidden.detach()
        n = segment.targets.numel()
        return {"loss": nll.detach() * n, "n": torch.tensor(float(n), device=rt.device)}

    def evaluate(self, epoch: int, rt: Runtime) -> dict[str, Any]:
        cfg = self.config
        with averaged_weights(self.model, self.optimizer):
            loss = stream_loss(self.model, self.valid_eval, cfg.bptt, autocast=rt.autocast)
        record: dict[str, Any] = {"valid_loss": loss, "valid_ppl": perplexity(loss)}
        if not self.on_asgd:
            if should_switch_to_asgd(self.sgd_history, loss, cfg.nonmono):
                self.optimizer = self._asgd()
                self.switched_at = epoch + 1
            self.sgd_history.append(loss)
        record["optimizer"] = "asgd" if self.on_asgd else "sgd"
        return record

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer_kind": "asgd" if self.on_asgd else "sgd", "optimizer": self.optimizer.state_dict(),
                "sgd_history": list(self.sgd_history), "switched_at": self.switched_at, **self._hidden_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer = self._asgd() if state["optimizer_kind"] == "asgd" else self._sgd()
        self.optimizer.load_state_dict(state["optimizer"])
        self.sgd_history = [float(v) for v in state["sgd_history"]]
        self.switched_at = state["switched_at"]
        self._load_hidden(state)

    def save_weights(self, directory: Path) -> None:
        metadata = lm_metadata(self.model)
        save_tensors(self.model, Path(directory) / WEIGHTS_FILE, metadata)
        with averaged_weights(self.model, self.optimizer) as averaged:
            if averaged:
                save_tensors(self.model, Path(directory) / AVERAGED_FILE, {**metadata, "averaged": "asgd"})

    def load_weights(self, directory: Path) -> None:
        load_tensors_into(self.model, Path(directory) / WEIGHTS_FILE, f"genotype {self.genotype.ref}")


def _compact(genotype: Genotype) -> str:
    """`relu(0) relu(1) ...`: the node edges of a recurrent genotype on one line (for metrics)."""
    return " ".join(f"{node[0].op}({node[0].input})" for node in genotype.recurrent.nodes)


# ------------------------------------------------------------------------------------ entry points


def _engine_config(run_name: str, engine: dict[str, Any], seed: int) -> EngineConfig:
    return EngineConfig(run_name=run_name, seed=seed, **engine)


def run_rnn_search(config: LMSearchConfig, engine: dict[str, Any]) -> dict[str, Any]:
    """Run a new search; `engine` holds EngineConfig fields (epochs is taken from the config)."""
    cfg = _engine_config(f"search-rnn-{config.dataset}", {**engine, "epochs": config.epochs}, config.seed)
    return run_task(RNNSearchTask(config), cfg)


def run_lm_training(config: LMTrainConfig, engine: dict[str, Any]) -> dict[str, Any]:
    cfg = _engine_config(f"lm-{config.dataset}", {**engine, "epochs": config.epochs}, config.seed)
    return run_task(LMTrainTask(config), cfg)


def resume_run(run_dir: Path, quiet: bool | None = None) -> tuple[str, dict[str, Any]]:
    """Continue a killed RNN search or LM training run from checkpoint/last, with its saved config."""
    check_run_dir(Path(run_dir), resume=True)
    saved = read_run_config(run_dir)
    kind, task_data = saved.get("kind"), saved["task"]
    engine_data = {**saved["engine"], "run_dir": str(run_dir), **({"quiet": quiet} if quiet is not None else {})}
    engine = EngineConfig.from_dict(engine_data)
    source = f"{run_dir}/config.json"
    if kind == "search" and task_data.get("network") == "rnn":
        task: Task = RNNSearchTask(config_from_dict(LMSearchConfig, task_data, source))
    elif kind == "lm":
        task = LMTrainTask(config_from_dict(LMTrainConfig, task_data, source))
    else:
        raise GdasError(f"{run_dir}: not a recurrent search or language-model run (kind {kind!r})")
    return kind, run_task(task, engine, resume=True)


def is_rnn_search_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a recurrent-cell search (for `gdas derive` / `gdas plot` to dispatch on)."""
    config_path = Path(run_dir) / "config.json"
    if not config_path.is_file():
        return False
    saved = read_run_config(Path(run_dir))
    return saved.get("kind") == "search" and saved["task"].get("network") == "rnn"


def derive_rnn_run(run_dir: Path, *, epoch: int | None = None, name: str = "searched_rnn",
                   version: str = "1.0.0") -> Genotype:
    """The T=1 genotype of an RNN search run's epoch (default: the last finished), with provenance."""
    from .search.derive import alphas_sha256
    from .search.history import load_alpha_history, pick_epoch
    from .search.rnn_derive import derive_rnn_genotype

    run_dir = Path(run_dir)
    if not is_rnn_search_run(run_dir):
        raise GdasError(f"{run_dir}: not a recurrent-cell search run")
    cfg = config_from_dict(LMSearchConfig, read_run_config(run_dir)["task"], f"{run_dir}/config.json")
    record = pick_epoch(load_alpha_history(run_dir), epoch, str(run_dir))
    if "recurrent" not in record.alphas:
        raise GdasError(f"{run_dir}/{ALPHAS_FILE}: epoch {record.epoch} has no recurrent alphas")
    provenance = {"source": "search", "method": cfg.sampling, "dataset": cfg.dataset, "seed": cfg.seed,
                  "epoch": record.epoch, "epochs": cfg.epochs, "tau": record.tau,
                  "alphas_sha256": alphas_sha256(record.alphas), "run_dir": str(run_dir), "gdas_version": __version__}
    return derive_rnn_genotype(record.probabilities()["recurrent"], steps=cfg.steps, name=name, version=version,
                               provenance=provenance)


def lm_checkpoint_weights(path: Path) -> tuple[Path, Path]:
    """(run dir, weights file) of a training run, a checkpoint folder or a weights file.

    A run dir uses checkpoint/best (else last); a folder prefers its ASGD-averaged weights.
    """
    path = Path(path)
    if path.is_file():
        return path.parent.parent.parent if path.parent.parent.name == "checkpoint" else path.parent, path
    if (path / "config.json").is_file():
        run_dir = path
        folder = find_checkpoint(path / "checkpoint" / "best") or find_checkpoint(path / "checkpoint" / "last")
        if folder is None:
            raise GdasError(f"{path}: no checkpoint yet (checkpoint/best and checkpoint/last are missing)")
    elif (path / WEIGHTS_FILE).is_file():
        run_dir, folder = path.parent.parent, path
    else:
        raise GdasError(f"{path}: not a language-model run directory, checkpoint folder or weights file")
    averaged = folder / AVERAGED_FILE
    return run_dir, averaged if averaged.is_file() else folder / WEIGHTS_FILE


def evaluate_lm_run(path: str | Path, dataset: str | None = None, split: str = "test",
                    data_dir: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Validation and `split` perplexity of a language-model run's best weights (ASGD-averaged if any).

    `dataset`/`data_dir` default to the run's own; the corpus vocabulary must match the model's.
    Returns valid_loss, valid_ppl, <split>_loss, <split>_ppl, params and where the weights came from.
    """
    run_dir, weights = lm_checkpoint_weights(Path(path))
    config_path = run_dir / "config.json"
    task_data = read_run_config(run_dir)["task"] if config_path.is_file() else {}
    cfg = config_from_dict(LMTrainConfig, task_data, str(config_path)) if task_data else LMTrainConfig()
    dataset = dataset or (cfg.dataset if task_data else None)
    if dataset is None:
        raise GdasError(f"{path}: no run config next to the weights; pass the dataset")
    if split not in ("valid", "test"):
        raise GdasError(f"--split: {split!r} must be valid or test")
    model = load_language_model(weights, device)
    corpus = load_corpus(dataset, data_dir or (cfg.data_dir if dataset == cfg.dataset else None))
    if len(corpus.vocab) != model.args.ntoken:
        raise GdasError(f"{dataset}: vocabulary of {len(corpus.vocab)} words, but {weights} was trained on "
                        f"{model.args.ntoken}; evaluate on the corpus it was trained on")
    recorded = task_data.get("corpus", {}).get("sha256")
    if recorded and dataset == cfg.dataset and recorded != corpus.fingerprint():
        raise GdasError(f"{dataset}: the corpus differs from the one the run trained on (sha256 mismatch)")
    valid = stream_loss(model, batchify(corpus.valid, cfg.eval_batch_size).to(device), cfg.bptt)
    result: dict[str, Any] = {
        "dataset": dataset, "genotype": model.genotype.ref, "weights": str(weights),
        "averaged": weights.name == AVERAGED_FILE, "params": count_parameters(model),
        "valid_loss": valid, "valid_ppl": perplexity(valid),
    }
    if split == "test":
        test = stream_loss(model, batchify(corpus.test, cfg.test_batch_size).to(device), cfg.bptt)
        result.update({"test_loss": test, "test_ppl": perplexity(test)})
    return result
