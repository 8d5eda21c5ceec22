"""What `gdas derive` reads: a search run directory (any finished epoch) or a search checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import PROGRESS_FILE, read_json
from ..errors import GdasError
from ..genotype import Genotype
from ..files import atomic_write_text
from ..sampler import linear_tau
from .derive import derive_genotype
from .history import load_alpha_history, pick_epoch
from .task import WEIGHTS_FILE, provenance, read_search_weights, saved_search_config


def _from_run_dir(run_dir: Path, epoch: int | None) -> tuple[Any, dict[str, Any], Path]:
    config, _ = saved_search_config(run_dir)
    record = pick_epoch(load_alpha_history(run_dir), epoch, str(run_dir))
    return config, {"epoch": record.epoch, "tau": record.tau, "alphas": record.alphas}, run_dir


def _from_checkpoint(path: Path, epoch: int | None) -> tuple[Any, dict[str, Any], Path]:
    if epoch is not None:
        raise GdasError(f"--epoch: {path} is a checkpoint and holds one epoch; pass the run directory instead")
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    state, config = read_search_weights(weights)
    alphas = {t: state[f"alphas_{t}"].float() for t in ("normal", "reduce") if f"alphas_{t}" in state}
    if "normal" not in alphas:
        raise GdasError(f"{weights}: no alphas in this checkpoint")
    progress_file = weights.parent / PROGRESS_FILE
    done = int(read_json(progress_file).get("epoch", 0)) if progress_file.is_file() else 0
    tau = linear_tau(max(done - 1, 0), config.epochs, config.tau_max, config.tau_min)
    run_dir = weights.parent.parent.parent if weights.parent.parent.name == "checkpoint" else weights.parent
    return config, {"epoch": done, "tau": tau, "alphas": alphas}, run_dir


def derive_from_source(
    source: Path, *, rule: str = "paper", epoch: int | None = None, name: str = "searched", version: str = "1.0.0",
) -> Genotype:
    """The genotype of a run directory's epoch (default: the last finished) or of a checkpoint."""
    source = Path(source)
    if not source.exists():
        raise GdasError(f"{source}: no such run directory or checkpoint")
    is_run = source.is_dir() and (source / "config.json").is_file()
    from ..lm import derive_rnn_run, is_rnn_search_run  # the LM side imports this package; import lazily

    if is_run and is_rnn_search_run(source):
        if rule != "paper":
            raise GdasError(f"--rule {rule}: recurrent cells derive one input per node (T=1); omit --rule")
        return derive_rnn_run(source, epoch=epoch, name=name, version=version)
    config, record, run_dir = (_from_run_dir if is_run else _from_checkpoint)(source, epoch)
    probs = {t: torch.softmax(a, dim=-1) for t, a in record["alphas"].items()}
    if config.frc != ("reduce" not in probs):
        raise GdasError(f"{source}: alphas do not match the run's configuration (frc={config.frc})")
    return derive_genotype(probs, rule=rule, frc=config.frc, name=name, version=version,
                           provenance={**provenance(config, record, run_dir), "derived_from": str(source)})


def write_genotype(genotype: Genotype, path: Path) -> None:
    """Write the genotype JSON atomically; the folder must exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise GdasError(f"--output {path}: folder {path.parent} does not exist")
    text = genotype.to_json()
    atomic_write_text(path, text)
