"""Best of K seeds (`gdas search cnn --seeds K`): K searches, then the derived cells ranked by validation.

The paper (Sec. 4.2): "Following [DARTS], we run GDAS 4 times with different random seeds and pick
the best cell based on its validation performance." DARTS (Sec. 3.3) measures that performance by
training each cell from scratch for a short period; here each derived cell trains for
`select_epochs` with the data set's `gdas train` recipe on the search's TRAIN half and is evaluated
on its VALID half (the split.json every search records; all K searches share one split, so the K
cells are measured on the same images).

A parent folder holds everything, each part an ordinary resumable run::

    PARENT/seeds.json          what was asked: the seeds, select_epochs, the search and engine configs
    PARENT/config.json         what the parent is (rundir.run_record, its parts listed), as every run has
    PARENT/seed-<s>/           the search with seed s (a search run: derive, plot, resume work on it)
    PARENT/select/seed-<s>/    the short training of its cell (a train run)
    PARENT/ranking.json        every seed's valid top-1, best first
    PARENT/genotype.json       the winner's genotype, the ranking in its provenance

`resume=True` continues where the parent stopped: finished parts are skipped, an interrupted one
resumes from its checkpoint.

Under torchrun (WORLD_SIZE P > 1) the K seeds are spread over the P processes: rank r searches and
trains seeds[r::P], each as an ordinary one-process run on its own device (engine.local_runtime:
cuda:LOCAL_RANK, or the CPU); one gloo group only lets the ranks wait for each other (seeds.json
written, every seed done) and hands rank 0 the results it ranks. The folders and files are those of
the one-process run, and so is the ranking (each part is the same one-process run).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch.distributed as dist

from .. import __version__
from ..checkpoint import read_json, write_json
from ..data import ImageData, TensorImages, describe, load_images
from ..engine import RESUME_SAFE as ENGINE_RESUME_SAFE
from ..engine import (
    EngineConfig,
    Runtime,
    check_run_options,
    ignore_sigterm,
    local_runtime,
    lost_peer,
    lost_peer_cause,
    refuse_changes,
    resumes,
    start_process_group,
)
from ..errors import GdasEnvironmentError, GdasError
from ..files import atomic_write_text
from ..genotype import Genotype, load_local_genotype
from ..metrics import count_parameters
from ..models import NetworkArgs, build_network
from ..rundir import GENOTYPE_FILE, RunDir, progress_of, read_metrics, read_split, run_record
from ..sizing import DataFacts, Machine, this_machine, train_sizes, uses_rule
from ..training.image import TrainConfig, make_config, train
from .cnn_task import SearchTask, run_search
from .config import SearchConfig
from .spaces import final_layers

SEEDS_FILE = "seeds.json"
RANKING_FILE = "ranking.json"
SEEDS_SCHEMA = "gdas-search-seeds"
RANKING_SCHEMA = "gdas-seed-ranking"

# Epochs of the short training that ranks the cells: DARTS Sec. 3.3 trained 100 on CIFAR-10, a sixth
# of its 600-epoch final training; a data set sized by the rule trains a sixth of the rule's epochs.
DEFAULT_SELECT_EPOCHS = 100
SELECT_SHARE = 6

# options a resumed parent may change: those a resumed search may (where the data is, how it runs and is shown)
RESUME_SAFE = ENGINE_RESUME_SAFE | SearchTask.resume_may_change


def is_seeds_run(path: Path) -> bool:
    """Whether `path` is the parent folder of a `--seeds` search."""
    return (Path(path) / SEEDS_FILE).is_file()


def select_settings(config: SearchConfig, machine: Machine) -> tuple[dict[str, Any], int]:
    """The short training's `gdas train` settings and epochs: a network the size of the supernet (its C and
    cell count), and for a data set sized by the rule the rule's recipe for the train half."""
    select: dict[str, Any] = {"C": config.channels, "layers": final_layers(config)}
    if not uses_rule(config.dataset):
        return select, DEFAULT_SELECT_EPOCHS
    facts = describe(config.dataset, config.data_dir or "data")
    half = DataFacts(facts.name, facts.train_images // 2, facts.classes, facts.image_size)
    sizes = train_sizes(half, machine, config.space)
    select.update({k: sizes[k] for k in ("batch_size", "lr", "drop_path", "image_size", "cutout")})
    return select, max(2, math.ceil(sizes["epochs"] / SELECT_SHARE))


@dataclasses.dataclass
class SeedsPlan:
    """What seeds.json holds: the K seeds, the short training's epochs, the shared configs."""

    seeds: list[int]
    select_epochs: int
    search: SearchConfig
    engine: EngineConfig
    select: dict[str, Any] = dataclasses.field(default_factory=dict)  # `gdas train` options of the short training

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SEEDS_SCHEMA,
            "schema_version": 1,
            "seeds": self.seeds,
            "select_epochs": self.select_epochs,
            "search": self.search.to_dict(),
            "engine": self.engine.to_dict(),
            "select": self.select,
            "gdas_version": __version__,
        }

    @classmethod
    def read(cls, parent: Path) -> SeedsPlan:
        path = Path(parent) / SEEDS_FILE
        data = read_json(path)
        if data.get("schema") != SEEDS_SCHEMA or not isinstance(data.get("seeds"), list):
            raise GdasError(f"{path}: not a gdas seeds file")
        return cls(
            seeds=[int(s) for s in data["seeds"]],
            select_epochs=int(data["select_epochs"]),
            search=SearchConfig.from_dict(data["search"], str(path)),
            engine=EngineConfig.from_dict(data["engine"]),
            select=dict(data.get("select") or {}),
        )


def new_plan(
    config: SearchConfig,
    engine: EngineConfig,
    count: int,
    select_epochs: int | None,
    select: dict[str, Any] | None = None,
) -> SeedsPlan:
    """K = `count` seeds from config.seed on; one split (config.split_seed, else the first seed) for all.

    `select`: `gdas train` settings of the short training besides its epochs (C, layers, batch_size...;
    default: `select_settings`)."""
    if count < 1:
        raise GdasError(f"--seeds: {count} must be >= 1")
    defaults, default_epochs = select_settings(config, this_machine(engine.device))
    epochs = default_epochs if select_epochs is None else select_epochs
    if epochs < 1:
        raise GdasError(f"--select-epochs: {epochs} must be >= 1")
    split_seed = config.split_seed if config.split_seed is not None else config.seed
    search = dataclasses.replace(config, split_seed=split_seed)
    return SeedsPlan(
        list(range(config.seed, config.seed + count)), epochs, search, engine, {**defaults, **(select or {})}
    )


def check_resume(plan: SeedsPlan, parent: Path, given: dict[str, Any]) -> None:
    """Refuse an option typed on `--resume PARENT` that would change what the parent computes."""
    saved = {**plan.engine.to_dict(), **plan.search.to_dict(), "seeds": len(plan.seeds)}
    saved["select_epochs"], saved["seed"] = plan.select_epochs, plan.seeds[0]
    saved["select_channels"], saved["select_layers"] = plan.select.get("C"), plan.select.get("layers")
    refuse_changes(given, saved, RESUME_SAFE, str(parent), "seeds.json")


# ------------------------------------------------------------------------------------------ the runs


def _child(parent: Path, seed: int) -> Path:
    return parent / f"seed-{seed}"


def _select_dir(parent: Path, seed: int) -> Path:
    return parent / "select" / f"seed-{seed}"


def _finished(run_dir: Path) -> bool:
    run = RunDir(run_dir)
    return run.has_checkpoint("last") and bool(progress_of(run.checkpoint("last")).get("finished"))


def _search_child(
    plan: SeedsPlan, parent: Path, seed: int, overrides: dict[str, Any], local_rank: int | None = None
) -> Path:
    """Run, resume or skip the search of `seed`; returns its run folder. `local_rank`: run it as a
    one-process run on this rank's device (under torchrun); None: the process's own runtime."""
    run_dir = _child(parent, seed)
    if RunDir(run_dir).genotype_file.is_file() and _finished(run_dir):
        return run_dir
    if resumes("auto", run_dir):  # a search stopped in its first epoch starts again
        saved = RunDir(run_dir).read_config()
        config = SearchConfig.from_dict({**saved["task"], **_safe(overrides, saved["task"])}, str(run_dir))
        engine = EngineConfig.from_dict({**saved["engine"], **_safe(overrides, saved["engine"])})
    else:
        config = dataclasses.replace(plan.search, seed=seed)
        hint = f"gdas search cnn --resume {parent}"
        engine = dataclasses.replace(plan.engine, run_dir=str(run_dir), seed=seed, resume_hint=hint)
    run_search(config, engine, resume="auto", runtime=_runtime(engine, local_rank))
    return run_dir


def _runtime(engine: EngineConfig, local_rank: int | None) -> Runtime | None:
    return None if local_rank is None else local_runtime(engine, local_rank)


def _safe(overrides: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if k in RESUME_SAFE and k in saved and v is not None}


def selection_data(config: SearchConfig, split: dict[str, Any], image_size: int | None = None) -> ImageData:
    """The search's data set (at `image_size`) with its TRAIN half as training set and its VALID half as test set."""
    data = load_images(config.dataset, config.data_dir or "data", image_size=image_size, test=False)
    train_half, valid_half = split["train"], split["valid"]
    if any(i >= len(data.train) for i in (*train_half, *valid_half)):
        raise GdasError(f"split.json: image indices beyond the {len(data.train)} training images of {config.dataset}")
    if isinstance(data.train, TensorImages):
        train_set: Any = data.train.subset(train_half)
        valid_set: Any = data.train.subset(valid_half)
    else:
        from torch.utils.data import Subset

        train_set, valid_set = Subset(data.train, train_half), Subset(data.train, valid_half)
    return dataclasses.replace(data, train=train_set, test=valid_set)


def _select_child(
    plan: SeedsPlan, parent: Path, seed: int, overrides: dict[str, Any], local_rank: int | None = None
) -> dict[str, Any]:
    """Train `seed`'s derived cell for select_epochs on the TRAIN half; its VALID-half top-1 and loss."""
    search_dir = _child(parent, seed)
    genotype = load_local_genotype(str(RunDir(search_dir).genotype_file))
    split = read_split(RunDir(search_dir).split_file)
    run_dir = _select_dir(parent, seed)
    workers = overrides.get("workers") if overrides.get("workers") is not None else plan.search.workers
    config = make_config(
        plan.search.dataset,
        genotype,
        {**plan.select, "epochs": plan.select_epochs, "data_dir": plan.search.data_dir or "data", "workers": workers},
    )
    finished, started = _finished(run_dir), resumes("auto", run_dir)
    if started and not finished:
        config = TrainConfig.from_dict(RunDir(run_dir).read_config()["task"], str(RunDir(run_dir).config_file))
    data = selection_data(plan.search, split, config.image_size)
    if not finished:
        if started:
            saved = RunDir(run_dir).read_config()
            engine = EngineConfig.from_dict({**saved["engine"], **_safe(overrides, saved["engine"])})
        else:
            engine = dataclasses.replace(
                plan.engine,
                run_dir=str(run_dir),
                epochs=plan.select_epochs,
                seed=plan.seeds[0],  # every cell trains with the same seed: only the cell differs
                eval_every=plan.select_epochs,
                resume_hint=f"gdas search cnn --resume {parent}",
            )
        train(config, engine, resume="auto", data=data, runtime=_runtime(engine, local_rank))
    return _selection_result(run_dir, genotype, data.num_classes, seed, search_dir)


def _metrics(run: RunDir) -> list[dict[str, Any]]:
    """A finished run's metrics.jsonl, checked (rundir.read_metrics); missing or empty is an error naming it."""
    records = read_metrics(run.metrics_file)
    if not records:
        raise GdasError(f"{run.metrics_file}: missing; resume the parent run to finish it")
    return records


def _selection_result(
    run_dir: Path, genotype: Genotype, num_classes: int, seed: int, search_dir: Path
) -> dict[str, Any]:
    saved = TrainConfig.from_dict(RunDir(run_dir).read_config()["task"])
    last = _metrics(RunDir(run_dir))[-1]
    if not all(isinstance(last.get(key), (int, float)) for key in ("test_top1", "test_loss")):
        raise GdasError(f"{RunDir(run_dir).metrics_file}: the last record has no test_top1 and test_loss")
    args = NetworkArgs(saved.net, saved.C, saved.layers, num_classes, saved.auxiliary)
    searched = _metrics(RunDir(search_dir))[-1]
    return {
        "seed": seed,
        "valid_top1": last["test_top1"],
        "valid_loss": last["test_loss"],
        "params": count_parameters(build_network(genotype, args)),
        "network": {"net": saved.net, "C": saved.C, "layers": saved.layers},
        "search_arch_top1": searched.get("train_arch_top1"),
        "genotype": genotype.to_dict(),
        "search_run": str(search_dir),
        "select_run": str(run_dir),
    }


def run_seeds(
    plan: SeedsPlan,
    parent: Path,
    *,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """Search every seed, train every derived cell briefly, rank them; returns ranking.json's content.

    `overrides`: the settings a resumed parent may change (RESUME_SAFE), applied to every part.
    Under torchrun each rank runs its share of the seeds (see the module's notes); every rank returns
    the ranking, rank 0 writes it.
    """
    parent = Path(parent)
    overrides = overrides or {}
    plan = dataclasses.replace(
        plan,
        search=dataclasses.replace(plan.search, **_safe(overrides, plan.search.to_dict())),
        engine=dataclasses.replace(plan.engine, **_safe(overrides, plan.engine.to_dict())),
    )
    group = _Group.from_env()
    if group.world == 1:
        _start_parent(plan, parent, resume)
        results = _run_share(plan, parent, plan.seeds, overrides, say, None)
        return _write_ranking(plan, parent, results)
    if plan.engine.sync_bn:
        raise GdasError("--sync-bn: under torchrun --seeds runs each seed as a one-process run; drop --sync-bn")
    group.start()
    try:
        problem = None
        if group.rank == 0:
            try:
                _start_parent(plan, parent, resume)
            except GdasError as err:
                problem = str(err)
        problem = group.share(problem)  # the others wait for seeds.json (or rank 0's refusal)
        if problem is not None:
            raise GdasError(problem)
        mine = plan.seeds[group.rank :: group.world]
        results = _run_share(plan, parent, mine, overrides, say, group.local_rank)
        everyone = group.gather(results)  # every rank has finished its seeds
        results = sorted((r for share in everyone for r in share), key=lambda r: plan.seeds.index(r["seed"]))
        ranking = _write_ranking(plan, parent, results) if group.rank == 0 else _ranking(plan, results)
        group.share(None)  # ranking.json is written before any rank returns
        return ranking
    except (RuntimeError, dist.DistError) as err:
        if not lost_peer(err):
            raise
        raise GdasEnvironmentError(group.lost(err, parent)) from None
    finally:
        group.stop()


def _start_parent(plan: SeedsPlan, parent: Path, resume: bool) -> None:
    """A new parent: checked, made, seeds.json written; every parent: its config.json."""
    if not resume:
        check_run_options(plan.engine, SearchTask.refuses)
        if parent.exists() and (not parent.is_dir() or any(parent.iterdir())):
            raise GdasError(f"{parent}: run directory is not empty; pass --resume {parent} to continue it")
        parent.mkdir(parents=True, exist_ok=True)
        write_json(parent / SEEDS_FILE, plan.to_dict())
    if not RunDir(parent).config_file.is_file():  # parents started before they had one get it on resume
        write_json(RunDir(parent).config_file, parent_config(plan, parent))


def _run_share(
    plan: SeedsPlan,
    parent: Path,
    seeds: list[int],
    overrides: dict[str, Any],
    say: Callable[[str], None],
    local_rank: int | None,
) -> list[dict[str, Any]]:
    """Search `seeds` (some of plan.seeds, or all), then train their cells; their selection results."""
    count = len(plan.seeds)
    for seed in seeds:
        i = plan.seeds.index(seed) + 1
        say(f"seed {seed} ({i}/{count}): search in {_child(parent, seed)}")
        _search_child(plan, parent, seed, overrides, local_rank)
    results = []
    for seed in seeds:
        i = plan.seeds.index(seed) + 1
        say(f"seed {seed} ({i}/{count}): {plan.select_epochs} epoch(s) of training in {_select_dir(parent, seed)}")
        results.append(_select_child(plan, parent, seed, overrides, local_rank))
    return results


@dataclasses.dataclass
class _Group:
    """The torchrun ranks of a `--seeds` run: a gloo group only to wait for each other and gather results."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False

    @classmethod
    def from_env(cls) -> _Group:
        env = os.environ
        return cls(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))

    def start(self) -> None:
        if not dist.is_initialized():
            start_process_group("gloo")
            self.owned = True

    def share(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (a barrier too)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def lost(self, err: BaseException, parent: Path) -> str:
        """A rank is gone: one line; torchrun sends SIGTERM to the survivors, which may come while this one ends."""
        ignore_sigterm()
        cause = lost_peer_cause(err)
        return (
            f"rank {self.rank} of {self.world}: lost another rank ({cause}); the finished seeds in {parent} are "
            f"kept; resume with: torchrun ... gdas search cnn --resume {parent}"
        )

    def stop(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
        self.owned = False


def parent_config(plan: SeedsPlan, parent: Path) -> dict[str, Any]:
    """The parent's config.json: the run record every run has (its parts are the K searches and the K short
    trainings), the shared search and engine configs, and the command that resumes it."""
    searches = [(_child(parent, s), plan.search.epochs) for s in plan.seeds]
    trainings = [(_select_dir(parent, s), plan.select_epochs) for s in plan.seeds]
    parts = [{"run": run.relative_to(parent).as_posix(), "epochs": epochs} for run, epochs in searches + trainings]
    engine = {**plan.engine.to_dict(), "run_dir": str(parent), "resume_hint": "gdas search cnn --resume {run_dir}"}
    return {
        "kind": "seeds",
        "run": run_record(
            "gdas search cnn --seeds",
            dataset=plan.search.dataset,
            space=plan.search.space,
            figures={"valid": {"top1": "valid_top1"}},  # each cell's short training, measured on the valid half
            records={"ranking": RANKING_FILE},
            result=GENOTYPE_FILE,
            parts=parts,
        ),
        "gdas_version": __version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        "seeds": plan.seeds,
        "select_epochs": plan.select_epochs,
        "engine": engine,
        "task": plan.search.to_dict(),
    }


def _write_ranking(plan: SeedsPlan, parent: Path, results: list[dict[str, Any]]) -> dict[str, Any]:
    ranking = _ranking(plan, results)
    write_json(parent / RANKING_FILE, ranking)
    winner = Genotype.from_dict(ranking["seeds"][0]["genotype"], str(parent / RANKING_FILE))
    atomic_write_text(parent / GENOTYPE_FILE, with_ranking(winner, ranking, parent).to_json())
    return ranking


def _ranking(plan: SeedsPlan, results: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(results, key=lambda r: (-r["valid_top1"], r["seed"]))  # ties: the lower seed
    return {
        "schema": RANKING_SCHEMA,
        "schema_version": 1,
        "selected_by": "valid_top1",
        "procedure": (
            f"each searched cell trained from scratch for {plan.select_epochs} epoch(s) with the "
            f"{plan.search.dataset} training recipe on the search's train half, evaluated on its valid half"
        ),
        "split_seed": plan.search.split_seed,
        "select_epochs": plan.select_epochs,
        "winner": ranked[0]["seed"],
        "seeds": ranked,
    }


def ranking_summary(ranking: dict[str, Any], parent: Path) -> dict[str, Any]:
    """The ranking as a genotype's provenance holds it: seed, valid top-1 and params per seed."""
    return {
        "parent_run": Path(parent).name,  # its name: a genotype never records a local path
        "selected_by": ranking["selected_by"],
        "procedure": ranking["procedure"],
        "ranking": [
            {"seed": r["seed"], "valid_top1": r["valid_top1"], "params": r["params"]} for r in ranking["seeds"]
        ],
    }


def with_ranking(genotype: Genotype, ranking: dict[str, Any], parent: Path) -> Genotype:
    data = genotype.to_dict()
    data["provenance"] = {**data.get("provenance", {}), "best_of_seeds": ranking_summary(ranking, parent)}
    return Genotype.from_dict(data, str(parent / RANKING_FILE))


def read_ranking(parent: Path) -> dict[str, Any]:
    """ranking.json of a finished parent; an unfinished one is an error naming the resume command."""
    path = Path(parent) / RANKING_FILE
    if not path.is_file():
        raise GdasError(f"{parent}: the seeds are not all searched and ranked yet; gdas search cnn --resume {parent}")
    data = read_json(path)
    if data.get("schema") != RANKING_SCHEMA:
        raise GdasError(f"{path}: not a gdas seed ranking")
    return data
