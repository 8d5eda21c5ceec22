"""What `gdas derive` reads: a search run directory (any finished epoch), a search checkpoint, or the
parent folder of a `--seeds` search (its winner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import GdasError
from ..files import atomic_write_text
from ..genotype import Genotype
from ..rundir import RunDir, progress_of, read_metrics, resolve
from ..sampler import linear_tau
from ..spaces import get_space
from .cnn_task import SearchTask, epoch_genotype, read_search_weights
from .config import SearchConfig
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
    """The epoch's alphas (default: the last, the one a CNN search chooses) and the A steps taken by then."""
    config = saved_search_config(run)
    record = pick_epoch(load_alpha_history(run.path), epoch, str(run.path))
    step = record.step
    if step is None:  # alphas.jsonl of older runs: metrics.jsonl has the step
        records = read_metrics(run.metrics_file)
        step = next((r.get("step") for r in records if r.get("epoch") == record.epoch), None)
    return config, {"epoch": record.epoch, "tau": record.tau, "alphas": record.alphas, "step": step}, run.path


def _from_checkpoint(path: Path, epoch: int | None) -> tuple[SearchConfig, dict[str, Any], Path]:
    if epoch is not None:
        raise GdasError(f"--epoch: {path} is a checkpoint and holds one epoch; pass the run directory instead")
    found = resolve(path)
    state, config = read_search_weights(found.weights)
    roles = get_space(config.space).roles
    alphas = {role: state[f"alphas_{role}"].float() for role in roles if f"alphas_{role}" in state}
    if roles[0] not in alphas:
        raise GdasError(f"{found.weights}: no alphas in this checkpoint")
    progress = progress_of(found.weights.parent)
    done = int(progress.get("epoch", 0))
    tau = linear_tau(max(done - 1, 0), config.epochs, config.tau_max, config.tau_min)
    run_dir = found.run.path if found.run is not None else found.weights.parent
    step = progress.get("global_step")
    return config, {"epoch": done, "tau": tau, "alphas": alphas, "step": step}, run_dir


def derive_from_source(
    source: Path,
    *,
    rule: str | None = None,
    epoch: int | None = None,
    name: str = "searched",
    version: str = "1.0.0",
    max_skip: int | None = None,
) -> Genotype:
    """The genotype of a run directory's epoch (default: the one the run chose) or of a checkpoint, under
    `rule` (default: the space's) and `max_skip` (P-DARTS's limit on the normal cell's skip connections)."""
    source = Path(source)
    if not source.exists():
        raise GdasError(f"{source}: no such run directory or checkpoint")
    if is_seeds_run(source):  # a --seeds parent: its winner, the ranking in the provenance
        ranking = read_ranking(source)
        winner = derive_from_source(
            source / f"seed-{ranking['winner']}", rule=rule, epoch=epoch, name=name, version=version, max_skip=max_skip
        )
        return with_ranking(winner, ranking, source)
    run = RunDir(source)
    is_run = source.is_dir() and run.exists()
    if is_run and is_rnn_search_run(source):
        if rule not in (None, "rnn"):
            raise GdasError(f"--rule {rule}: recurrent cells derive one input per node (T=1); omit --rule")
        return derive_rnn_run(source, epoch=epoch, name=name, version=version, max_skip=max_skip)
    config, record, run_dir = _from_run_dir(run, epoch) if is_run else _from_checkpoint(source, epoch)
    roles = {role for role in get_space(config.space).roles if not (role == "reduce" and config.frc)}
    if set(record["alphas"]) != roles:
        raise GdasError(f"{source}: alphas do not match the run's configuration ({', '.join(sorted(roles))} cells)")
    return epoch_genotype(config, record, run_dir.name, rule=rule, name=name, version=version, max_skip=max_skip)


def write_genotype(genotype: Genotype, path: Path) -> None:
    """Write the genotype JSON atomically (callers check the path first with rundir.guard_output)."""
    atomic_write_text(Path(path), genotype.to_json())
