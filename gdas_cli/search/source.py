"""What `gdas derive` reads: a search run directory (any finished epoch), a search checkpoint, or the
parent folder of a `--seeds` search (its winner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import GdasError
from ..files import atomic_write_text
from ..genotype import Genotype
from ..rundir import RunDir, progress_of, resolve
from ..sampler import linear_tau
from .cnn_task import SearchTask, provenance, read_search_weights
from .config import SearchConfig
from .derive import derive_genotype
from .history import load_alpha_history, pick_epoch
from .rnn_task import derive_rnn_run, is_rnn_search_run
from .seeds import is_seeds_run, read_ranking, with_ranking


def saved_search_config(run: RunDir) -> SearchConfig:
    """The config a CNN search run was started with."""
    config = run.read_config()
    if config.get("kind") != SearchTask.kind:
        raise GdasError(
            f"{run.path}: a {config.get('kind')!r} run, not a search run; derive reads a search run or its checkpoint"
        )
    return SearchConfig.from_dict(config["task"], str(run.config_file))


def _from_run_dir(run: RunDir, epoch: int | None) -> tuple[SearchConfig, dict[str, Any], Path]:
    config = saved_search_config(run)
    record = pick_epoch(load_alpha_history(run.path), epoch, str(run.path))
    return config, {"epoch": record.epoch, "tau": record.tau, "alphas": record.alphas}, run.path


def _from_checkpoint(path: Path, epoch: int | None) -> tuple[SearchConfig, dict[str, Any], Path]:
    if epoch is not None:
        raise GdasError(f"--epoch: {path} is a checkpoint and holds one epoch; pass the run directory instead")
    found = resolve(path)
    state, config = read_search_weights(found.weights)
    alphas = {t: state[f"alphas_{t}"].float() for t in ("normal", "reduce") if f"alphas_{t}" in state}
    if "normal" not in alphas:
        raise GdasError(f"{found.weights}: no alphas in this checkpoint")
    done = int(progress_of(found.weights.parent).get("epoch", 0))
    tau = linear_tau(max(done - 1, 0), config.epochs, config.tau_max, config.tau_min)
    run_dir = found.run.path if found.run is not None else found.weights.parent
    return config, {"epoch": done, "tau": tau, "alphas": alphas}, run_dir


def derive_from_source(
    source: Path,
    *,
    rule: str = "paper",
    epoch: int | None = None,
    name: str = "searched",
    version: str = "1.0.0",
) -> Genotype:
    """The genotype of a run directory's epoch (default: the last finished) or of a checkpoint."""
    source = Path(source)
    if not source.exists():
        raise GdasError(f"{source}: no such run directory or checkpoint")
    if is_seeds_run(source):  # a --seeds parent: its winner, the ranking in the provenance
        ranking = read_ranking(source)
        winner = derive_from_source(
            source / f"seed-{ranking['winner']}", rule=rule, epoch=epoch, name=name, version=version
        )
        return with_ranking(winner, ranking, source)
    run = RunDir(source)
    is_run = source.is_dir() and run.exists()
    if is_run and is_rnn_search_run(source):
        if rule != "paper":
            raise GdasError(f"--rule {rule}: recurrent cells derive one input per node (T=1); omit --rule")
        return derive_rnn_run(source, epoch=epoch, name=name, version=version)
    config, record, run_dir = _from_run_dir(run, epoch) if is_run else _from_checkpoint(source, epoch)
    probs = {t: torch.softmax(a, dim=-1) for t, a in record["alphas"].items()}
    if config.frc != ("reduce" not in probs):
        raise GdasError(f"{source}: alphas do not match the run's configuration (frc={config.frc})")
    return derive_genotype(
        probs,
        rule=rule,
        frc=config.frc,
        name=name,
        version=version,
        provenance={**provenance(config, record, run_dir), "derived_from": str(source)},
    )


def write_genotype(genotype: Genotype, path: Path) -> None:
    """Write the genotype JSON atomically (callers check the path first with rundir.guard_output)."""
    atomic_write_text(Path(path), genotype.to_json())
