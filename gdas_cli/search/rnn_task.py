"""Recurrent-cell search (`gdas search rnn`) as an engine task, and deriving its genotype.

Per BPTT segment a W step (SGD lr 20 scaled by seq_len/bptt, wd 5e-7, clip 0.25, NLL + TAR) on
train, then an A step (Adam 3e-3, wd 1e-3, NLL) on valid, each with a fresh hard Gumbel draw of
the cell; alpha gradients are zeroed before every A step (the 2019 code's PTB search; see
docs/sources.md). Writes alphas.jsonl, genotypes.jsonl and, when done, genotype.json: the epoch with the lowest
validation loss, the one the run chooses (checkpoint/best) and `gdas derive` takes by default.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from .. import __version__
from ..checkpoint import WEIGHTS_FILE, write_jsonl
from ..corpus import DEMO, batchify, get_batch
from ..engine import EngineConfig, Runtime, config_from_dict, run_task
from ..errors import GdasError
from ..files import atomic_write_text
from ..genotype import MAX_NODES, Genotype
from ..jsonio import read_jsonl
from ..language import LanguageTask, LMConfig, Segment, check_lm_config, perplexity, resolve_lm_config, stream_loss
from ..models.rnn import lm_loss
from ..rundir import ALPHAS_FILE, GENOTYPE_FILE, GENOTYPES_FILE, RunDir, run_record
from ..sampler import linear_tau
from ..weights import load_tensors_into, save_tensors
from .derive import alphas_sha256
from .history import alpha_record, load_alpha_history, pick_epoch, with_steps
from .rnn import RNN_SAMPLING, RNNSearchNetwork, build_rnn_search_network
from .spaces import searched_genotype
from .step import frozen

SEARCH_FORMAT = "gdas-rnn-search-weights-v1"


@dataclass
class LMSearchConfig(LMConfig):
    """A recurrent-cell search (defaults: the paper's PTB search, docs/sources.md)."""

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


# Per dataset: what differs from the dataclass defaults. `demo-text` is sized for a CPU minute.
SEARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "ptb": {},
    "wt2": {},
    DEMO: {
        "epochs": 3,
        "batch_size": 32,
        "emsize": 64,
        "bptt": 20,
        "dropout": 0.3,
        "dropouth": 0.1,
        "dropoutx": 0.3,
        "dropouti": 0.1,
    },
}


# Where the search's own defaults come from (docs/sources.md "RNN").
SEARCH_SOURCES: dict[str, str] = {
    "epochs": "paper",
    "batch_size": "paper",
    "emsize": "paper",
    "steps": "2019 code",
    "sampling": "paper",
    "weight_decay": "2019 code",
    "arch_lr": "paper",
    "arch_weight_decay": "paper",
    "tau_max": "2019 code",
    "tau_min": "2019 code",
    "dropoute": "2019 code",
}


def resolve_search_config(dataset: str, overrides: dict[str, Any]) -> LMSearchConfig:
    """Defaults < the dataset's defaults < the options given (None = not given)."""
    config = resolve_lm_config(LMSearchConfig, dataset, SEARCH_DEFAULTS, overrides, SEARCH_SOURCES)
    check_search_config(config)
    return config


def check_search_config(config: LMSearchConfig) -> None:
    """Every setting in range, each error naming its option (new runs and resumed ones)."""
    check_lm_config(config)
    if config.sampling not in RNN_SAMPLING:
        raise GdasError(f"--sampling: {config.sampling!r} must be one of {', '.join(RNN_SAMPLING)}")
    if not 1 <= config.steps <= MAX_NODES:
        raise GdasError(f"--steps: {config.steps} must be in 1..{MAX_NODES}")
    if config.tau_max <= 0 or config.tau_min <= 0:
        raise GdasError("--tau-max/--tau-min must be positive")
    if config.tau_min > config.tau_max:
        raise GdasError(f"--tau-min: {config.tau_min} must not exceed --tau-max {config.tau_max}")
    if config.arch_lr <= 0:
        raise GdasError(f"--arch-lr: {config.arch_lr} must be positive")
    if config.arch_weight_decay < 0:
        raise GdasError(f"--arch-weight-decay: {config.arch_weight_decay} must be >= 0")
    if config.batch_size < 2:
        raise GdasError(f"--batch-size: {config.batch_size} must be >= 2 (the search cell's batch norm needs 2)")


@dataclass
class SearchStepResult:
    """Mean train NLL and valid (arch) NLL as device tensors; the hidden states to carry on."""

    loss: torch.Tensor
    arch_loss: torch.Tensor
    hidden: torch.Tensor
    hidden_valid: torch.Tensor


Stream = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # inputs (L, B), targets (L*B,), hidden (B, H)


def rnn_search_step(
    model: RNNSearchNetwork,
    w_optimizer: torch.optim.Optimizer,
    a_optimizer: torch.optim.Optimizer,
    rt: Runtime,
    train: Stream,
    valid: Stream,
    *,
    grad_clip: float,
    tar: float,
) -> SearchStepResult:
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


class RNNSearchTask(LanguageTask):
    """GDAS search of a recurrent cell (one W step and one A step per segment)."""

    config: LMSearchConfig
    model: RNNSearchNetwork
    kind = "search"
    network = "rnn"
    resume_may_change = frozenset({"data_dir"})  # where the corpus is
    best_metric = ("valid_loss", "min")
    examples = "tokens"

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

    def run_record(self) -> dict[str, Any]:
        return run_record(
            "gdas search rnn",
            dataset=self.config.dataset,
            space="darts_rnn",
            figures={"train": {"loss": "train_loss"}, "valid": {"loss": "valid_loss", "ppl": "valid_ppl"}},
            records={"alphas": ALPHAS_FILE, "genotypes": GENOTYPES_FILE},
            result=GENOTYPE_FILE,
        )

    def setup(self, rt: Runtime) -> None:
        corpus = self._setup_data(rt)
        cfg = self.config
        self.valid_arch = batchify(corpus.valid, cfg.batch_size).to(rt.device)
        self.model = build_rnn_search_network(
            len(corpus.vocab),
            ninp=cfg.emsize,
            steps=cfg.steps,
            sampling=cfg.sampling,
            dropout=cfg.dropout,
            dropouth=cfg.dropouth,
            dropoutx=cfg.dropoutx,
            dropouti=cfg.dropouti,
            dropoute=cfg.dropoute,
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
            self.model,
            self.w_optimizer,
            self.a_optimizer,
            rt,
            (segment.data, segment.targets, self.carried(segment, self.hidden)),
            (
                valid_inputs,
                valid_targets,
                self.carried(dataclasses.replace(segment, data=valid_inputs), self.hidden_valid),
            ),
            grad_clip=cfg.grad_clip,
            tar=cfg.tar,
        )
        self.hidden, self.hidden_valid = result.hidden, result.hidden_valid
        n = segment.targets.numel()
        return {
            "loss": result.loss * n,
            "arch_loss": result.arch_loss * n,
            "n": torch.tensor(float(n), device=rt.device),
        }

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        alphas = {t: a.detach().float().cpu() for t, a in self.model.arch_parameters().items()}
        record = alpha_record(epoch + 1, self.tau, alphas)
        self.alpha_history = [r for r in self.alpha_history if r["epoch"] <= epoch] + [record]
        genotype = self.model.genotype(name="searched_rnn")
        self._pending = {"epoch": epoch + 1, "tau": self.tau, "genotype": genotype.to_dict()}
        return {"genotype": _compact(genotype)}

    def evaluate(self, epoch: int, rt: Runtime) -> dict[str, float]:
        loss = stream_loss(self.model, self.valid_eval, self.config.bptt, self.model.eval_plan(), autocast=rt.autocast)
        if self._pending is not None and self._pending["epoch"] == epoch + 1:
            entry = {**self._pending, "valid_loss": loss, "valid_ppl": perplexity(loss)}
            self.genotype_history = [g for g in self.genotype_history if g["epoch"] <= epoch] + [entry]
        return {"valid_loss": loss, "valid_ppl": perplexity(loss)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.a_optimizer.state_dict(),
            **self._hidden_state(),
            "hidden_valid": self.hidden_valid.detach().cpu() if self.hidden_valid is not None else None,
            "alpha_history": self.alpha_history,
            "genotype_history": self.genotype_history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self._load_hidden(state)
        self.hidden_valid = self._to_device(state.get("hidden_valid"))
        self.alpha_history = list(state["alpha_history"])
        self.genotype_history = list(state["genotype_history"])

    def save_weights(self, directory: Path) -> None:
        metadata = {
            "format": SEARCH_FORMAT,
            "gdas_lm": json.dumps(self.model.args.to_dict()),
            "steps": str(self.model.steps),
            "sampling": self.model.sampling,
        }
        save_tensors(self.model, Path(directory) / WEIGHTS_FILE, metadata)

    def load_weights(self, directory: Path) -> None:
        load_tensors_into(self.model, Path(directory) / WEIGHTS_FILE, "the recurrent search network")

    def epoch_views(self, run_dir: Path, history: list[dict[str, Any]]) -> dict[str, Any]:
        """The alphas of the epoch of history[-1] and the cell derived from them (as genotypes.jsonl has it)."""
        epoch = history[-1]["epoch"]
        alphas = next(r["alphas"] for r in self.alpha_history if r["epoch"] == epoch)
        entry = next((g for g in self.genotype_history if g["epoch"] == epoch), None)
        genotype = Genotype.from_dict(entry["genotype"]) if entry is not None else None
        return {"alphas": {role: torch.tensor(rows) for role, rows in alphas.items()}, "genotype": genotype}

    def after_epoch(self, run_dir: Path, history: list[dict[str, Any]]) -> None:
        """alphas.jsonl and genotypes.jsonl as of the checkpoint; genotype.json once the last epoch is done."""
        run = RunDir(run_dir)
        write_jsonl(run.alphas_file, with_steps(self.alpha_history, history))
        write_jsonl(run.genotypes_file, self.genotype_history)
        if history and history[-1]["epoch"] >= self.config.epochs and self.genotype_history:
            best = chosen_epoch(self.genotype_history)
            genotype = derive_rnn_run(run.path, epoch=best["epoch"])
            atomic_write_text(run.genotype_file, genotype.to_json())


def _compact(genotype: Genotype) -> str:
    """`relu(0) relu(1) ...`: the node edges of a recurrent genotype on one line (for metrics)."""
    cell = genotype.recurrent
    assert cell is not None, "a recurrent genotype has a recurrent cell"
    return " ".join(f"{node[0].op}({node[0].input})" for node in cell.nodes)


# ------------------------------------------------------------------------------------ entry points


def run_rnn_search(
    config: LMSearchConfig,
    engine: EngineConfig,
    *,
    resume: bool | str = False,
    on_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a recurrent-cell search; the engine's epochs are the config's."""
    engine = dataclasses.replace(engine, epochs=config.epochs, seed=config.seed)
    return run_task(RNNSearchTask(config), engine, resume=resume, on_start=on_start)


def is_rnn_search_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a recurrent-cell search (for `gdas derive` / `gdas plot` to dispatch on)."""
    run = RunDir(Path(run_dir))
    if not run.exists():
        return False
    saved = run.read_config()
    return saved.get("kind") == "search" and saved["task"].get("network") == "rnn"


def chosen_epoch(genotype_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch an RNN search chooses: the lowest validation loss (the 2019 code's rule), ties to the earlier."""
    return min(genotype_history, key=lambda g: (g["valid_loss"], g["epoch"]))


def derive_rnn_run(
    run_dir: Path,
    *,
    epoch: int | None = None,
    name: str = "searched_rnn",
    version: str = "1.0.0",
    max_skip: int | None = None,
) -> Genotype:
    """The T=1 genotype of an RNN search run's epoch (default: the one the run chose, the lowest validation
    loss among the finished epochs), with provenance: how it was chosen and how far the alphas moved."""
    run = RunDir(Path(run_dir))
    if not is_rnn_search_run(run.path):
        raise GdasError(f"{run_dir}: not a recurrent-cell search run")
    cfg = config_from_dict(LMSearchConfig, run.read_config()["task"], str(run.config_file))
    evaluated = [g for g in read_jsonl(run.genotypes_file, missing_ok=True) if "valid_loss" in g]
    chosen = chosen_epoch(evaluated) if epoch is None and evaluated else None
    record = pick_epoch(load_alpha_history(run.path), chosen["epoch"] if chosen else epoch, str(run_dir))
    if "recurrent" not in record.alphas:
        raise GdasError(f"{run.alphas_file}: epoch {record.epoch} has no recurrent alphas")
    provenance = {
        "source": "gdas search rnn",
        "run": run.path.name,
        "space": "darts_rnn",
        "dataset": cfg.dataset,
        "sampling": cfg.sampling,  # the keys a CNN search's provenance has too (search/cnn_task.provenance)
        "seed": cfg.seed,
        "epoch": record.epoch,
        "epochs": cfg.epochs,
        "tau": record.tau,
        "alphas_sha256": alphas_sha256(record.alphas),
        "gdas_version": __version__,
    }
    if chosen is not None:
        provenance.update(
            selected_by="lowest valid_loss", valid_loss=chosen["valid_loss"], valid_ppl=chosen["valid_ppl"]
        )
    return searched_genotype(
        "darts_rnn",
        {"recurrent": record.alphas["recurrent"]},
        arch_lr=cfg.arch_lr,
        steps=record.step,
        name=name,
        version=version,
        provenance=provenance,
        max_skip=max_skip,
    )
