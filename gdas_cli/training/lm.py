"""Final language-model training (`gdas train ptb|wt2|demo-text`) as an engine task.

The final model of an rnn genotype, variable BPTT, SGD lr 20 switched to ASGD by the non-monotone
rule; while on ASGD the validation loss (and `checkpoint/*/averaged.safetensors`) is that of the
averaged weights (the 2019 code's PTB/WT2 training; see docs/sources.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import WEIGHTS_FILE
from ..corpus import DEMO
from ..engine import EngineConfig, Runtime, run_task
from ..errors import GdasError
from ..genotype import Genotype
from ..language import LanguageTask, LMConfig, Segment, check_lm_config, perplexity, resolve_lm_config, stream_loss
from ..models.rnn import DATASET_ARGS, RNNArgs, RNNLanguageModel, lm_loss
from ..rundir import AVERAGED_FILE, run_record
from ..weights import load_tensors_into, read_model_header, save_tensors

LM_FORMAT = "gdas-lm-weights-v1"


@dataclass
class LMTrainConfig(LMConfig):
    """Final language-model training (defaults: the paper's PTB setting, docs/sources.md)."""

    genotype: dict[str, Any] = field(default_factory=dict)
    epochs: int = 2000
    batch_size: int = 64
    test_batch_size: int = 10  # the 2019 code's 1 gives the paper-exact perplexity, ~10x slower on a CPU
    emsize: int = 850
    weight_decay: float = 8e-7
    nonmono: int = 5
    dropoute: float = 0.1


TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "ptb": {"epochs": 2000, "emsize": DATASET_ARGS["ptb"]["ninp"], "weight_decay": 8e-7, "dropouth": 0.25},
    "wt2": {"epochs": 3000, "emsize": DATASET_ARGS["wt2"]["ninp"], "weight_decay": 5e-7, "dropouth": 0.15},
    DEMO: {
        "epochs": 6,
        "batch_size": 32,
        "emsize": 128,
        "bptt": 20,
        "dropout": 0.3,
        "dropouth": 0.1,
        "dropoutx": 0.3,
        "dropouti": 0.1,
        "dropoute": 0.0,
    },
}


# Where the training's own defaults come from (docs/sources.md "RNN").
TRAIN_SOURCES: dict[str, str] = {
    "epochs": "2019 code",
    "batch_size": "2019 code",
    "test_batch_size": "ours",
    "emsize": "paper",
    "weight_decay": "2019 code",
    "nonmono": "2019 code",
    "dropoute": "2019 code",
}


def resolve_train_config(dataset: str, genotype: Genotype, overrides: dict[str, Any]) -> LMTrainConfig:
    if genotype.recurrent is None:
        raise GdasError(
            f"{genotype.ref}: a {genotype.kind} genotype cannot train a language model on {dataset}; "
            "use an rnn genotype (e.g. gdas_rnn)"
        )
    config = resolve_lm_config(
        LMTrainConfig, dataset, TRAIN_DEFAULTS, {**overrides, "genotype": genotype.to_dict()}, TRAIN_SOURCES
    )
    check_train_config(config)
    return config


def check_train_config(config: LMTrainConfig) -> None:
    """Every setting in range, each error naming its option (new runs and resumed ones)."""
    check_lm_config(config)
    if config.nonmono < 0:
        raise GdasError(f"--nonmono: {config.nonmono} must be >= 0")
    if config.test_batch_size < 1:
        raise GdasError(f"--test-batch-size: {config.test_batch_size} must be >= 1")


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


# -------------------------------------------------------------------------------------------- task


class LMTrainTask(LanguageTask):
    """The final language model of an rnn genotype, with the SGD -> ASGD switch."""

    config: LMTrainConfig
    model: RNNLanguageModel
    kind = "lm"
    resume_may_change = frozenset({"data_dir"})  # where the corpus is
    best_metric = ("valid_loss", "min")
    examples = "tokens"
    jitter = True

    def __init__(self, config: LMTrainConfig) -> None:
        super().__init__()
        self.config = config
        self.genotype = Genotype.from_dict(config.genotype, "training config genotype")
        self.sgd_history: list[float] = []
        self.switched_at: int | None = None

    def config_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.config), "corpus": self.corpus_summary()}

    def run_record(self) -> dict[str, Any]:
        return run_record(
            "gdas train",
            dataset=self.config.dataset,
            space=self.genotype.space,
            genotype=self.genotype.ref,
            figures={"train": {"loss": "train_loss"}, "valid": {"loss": "valid_loss", "ppl": "valid_ppl"}},
        )

    def setup(self, rt: Runtime) -> None:
        corpus = self._setup_data(rt)
        cfg = self.config
        args = RNNArgs(
            ntoken=len(corpus.vocab),
            ninp=cfg.emsize,
            dropout=cfg.dropout,
            dropouth=cfg.dropouth,
            dropoutx=cfg.dropoutx,
            dropouti=cfg.dropouti,
            dropoute=cfg.dropoute,
        )
        self.model = RNNLanguageModel(self.genotype, args).to(rt.device)
        self.optimizer = self._sgd()

    def _sgd(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def _asgd(self) -> torch.optim.Optimizer:
        return torch.optim.ASGD(
            self.model.parameters(), lr=self.config.lr, t0=0, lambd=0.0, weight_decay=self.config.weight_decay
        )

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
        return {
            "optimizer_kind": "asgd" if self.on_asgd else "sgd",
            "optimizer": self.optimizer.state_dict(),
            "sgd_history": list(self.sgd_history),
            "switched_at": self.switched_at,
            **self._hidden_state(),
        }

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


def run_lm_training(
    config: LMTrainConfig,
    engine: EngineConfig,
    *,
    resume: bool | str = False,
    on_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) language-model training; the engine's epochs are the config's."""
    engine = dataclasses.replace(engine, epochs=config.epochs, seed=config.seed)
    return run_task(LMTrainTask(config), engine, resume=resume, on_start=on_start)
