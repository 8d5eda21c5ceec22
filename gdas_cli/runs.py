"""What `gdas runs` and `gdas plot curves` show of a run: one reader, torch-free, weights never loaded.

`read_run` reads a run folder once: config.json (its `run` record, rundir.run_record), the records of
metrics.jsonl, the lock and checkpoint/last, and the result file's provenance, into a `RunSummary`:

    kind        the command that started it, without `gdas` (search cnn, search rnn, train, ...)
    state       running (a live lock), finished, interrupted (resumable: `resume` is the command) or
                empty (no checkpoint: the same command starts it again)
    epochs      done / planned; a parent run (`--seeds`) counts the epochs of its parts
    chosen      the epoch the run chose (rundir.chosen_checkpoint's rule: the best value of its selection
                metric, else the final epoch), its validation and test figures and the split that chose it
    best        the epoch of the best validation figure, whether or not the run chose by it
    seconds     the run's recorded time: the sum of its epochs' `seconds` (training and evaluation)

A split's figure is its top-1 where recorded, else its perplexity, else its loss. Runs written before the
run record are read by the record vocabulary (README "Records: one vocabulary"): `<split>_loss`,
`<split>_top1`, `<split>_ppl`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import GdasError
from .jsonio import read_json_object, read_jsonl
from .rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    SPLITS,
    RunDir,
    lock_holder,
    resume_command,
    run_record,
)

STATES = ("running", "finished", "interrupted", "empty")
METRICS = ("top1", "ppl", "loss")  # a split's figure: the first one recorded
MODES = {"top1": "max", "ppl": "min", "loss": "min"}
MAX_DEPTH = 6  # how deep under DIR `find_runs` looks (a --seeds parent's trainings are 2 below it)


@dataclass
class RunSummary:
    """One run folder as `gdas runs` lists and compares it (module docstring)."""

    path: Path
    name: str
    kind: str
    dataset: str | None
    space: str | None
    genotype: str | None
    state: str
    epochs_done: int
    epochs_planned: int | None
    created: str | None
    seconds: float
    chosen: dict[str, Any] | None = None
    best: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    param_free: dict[str, float] | None = None
    resume: str | None = None
    pid: int | None = None
    parts: list[str] = field(default_factory=list)  # a parent run's runs, relative to it
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    figures: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON row of `gdas runs list --json` (the config and records are left to `compare`)."""
        data = asdict(self)
        for key in ("config", "records", "figures"):
            data.pop(key)
        data["path"] = str(self.path)
        return data


# ------------------------------------------------------------------------------------------- finding


def find_runs(root: Path) -> list[Path]:
    """Every run folder (a config.json) under `root`, parents' parts included; checkpoints are not entered."""
    root = Path(root)
    if not root.is_dir():
        raise GdasError(f"{root}: no such folder of runs")
    return sorted(_walk(root, 0))


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError as err:
        raise GdasError(f"{folder}: cannot list it ({err.strerror})") from None
    if any(entry.name == CONFIG_FILE and entry.is_file() for entry in entries):
        yield folder
    if depth >= MAX_DEPTH:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and entry.name != CHECKPOINT_DIR and not entry.name.startswith("."):
            yield from _walk(Path(entry.path), depth + 1)


# ------------------------------------------------------------------------------------------- reading


def _record_of(config: dict[str, Any]) -> dict[str, Any]:
    """config.json's run record; for runs written before it, one made of the kind and task config."""
    record = config.get("run")
    if isinstance(record, dict) and isinstance(record.get("figures"), dict):
        return record
    task = config["task"]
    vocabulary = {split: {m: f"{split}_{m}" for m in METRICS} for split in SPLITS}
    return run_record(
        f"gdas {config.get('kind') or 'run'}",
        dataset=task.get("dataset"),
        space=task.get("space"),
        genotype=task.get("genotype_ref"),
        figures=vocabulary,
        records={"metrics": METRICS_FILE},
    )


def _figure(figures: dict[str, dict[str, str]], split: str, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """{key, value} of a split's figure in `record` (its top-1, else perplexity, else loss), if recorded."""
    for metric in METRICS:
        key = figures.get(split, {}).get(metric)
        if key and record is not None and _number(record.get(key)):
            return {"key": key, "value": record[key]}
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _best_record(records: Sequence[dict[str, Any]], key: str, mode: str) -> dict[str, Any] | None:
    """The first record of the best value of `key` (the engine keeps the first of equal values)."""
    found = [(i, r) for i, r in enumerate(records) if _number(r.get(key))]
    if not found:
        return None
    sign = 1 if mode == "max" else -1
    return max(found, key=lambda item: (sign * item[1][key], -item[0]))[1]


def _split_of(figures: dict[str, dict[str, str]], key: str | None) -> str | None:
    return next((split for split, keys in figures.items() if key in keys.values()), None)


def _chosen(config: dict[str, Any], figures: dict[str, dict[str, str]], records: list[dict[str, Any]]) -> dict:
    """The epoch the run chose (rundir.chosen_checkpoint's rule), its figures and what chose it."""
    selection = config.get("selection")
    selection = selection if isinstance(selection, dict) else {}
    by, mode = selection.get("by"), selection.get("mode") or "max"
    record = _best_record(records, by, mode) if by else (records[-1] if records else None)
    figures_of = {split: _figure(figures, split, record) for split in ("valid", "test")}
    return {
        "checkpoint": "best" if by else "last",
        "epoch": record.get("epoch") if record else None,
        "by": by,
        "split": _split_of(figures, by) if by else None,
        **figures_of,
    }


def _best(figures: dict[str, dict[str, str]], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The epoch of the best validation figure, with its record."""
    for metric in METRICS:
        key = figures.get("valid", {}).get(metric)
        record = _best_record(records, key, MODES[metric]) if key else None
        if record is not None:
            return {"epoch": record.get("epoch"), "by": key, "split": "valid", "record": record}
    return None


def _param_free(run: Path, result: str | None) -> dict[str, float] | None:
    """The share of parameter-free ops per cell of the run's result genotype (its provenance), if any."""
    path = run / result if result else None
    if path is None or not path.is_file():
        return None
    provenance = read_json_object(path, "genotype file").get("provenance")
    shares = provenance.get("param_free") if isinstance(provenance, dict) else None
    if not isinstance(shares, dict):
        return None
    return {role: cell["share"] for role, cell in shares.items() if isinstance(cell, dict) and "share" in cell}


def _state(run: RunDir, done: int, planned: int | None, finished_result: bool) -> tuple[str, int | None]:
    pid = lock_holder(run.path)
    if pid is not None:
        return "running", pid
    if planned is not None and done >= planned and finished_result:
        return "finished", None
    if run.has_checkpoint("last"):
        return "interrupted", None
    return "empty", None


def read_run(path: Path, name: str | None = None) -> RunSummary:
    """The summary of one run folder (module docstring); a folder that is not a run is a GdasError."""
    run = RunDir(Path(path))
    if not run.exists():
        raise GdasError(f"{path}: not a run folder (no {CONFIG_FILE})")
    config = run.read_config()
    record = _record_of(config)
    if record.get("parts"):
        return _read_parent(run, config, record, name)
    figures = record["figures"]
    metrics_file = (record.get("records") or {}).get("metrics", METRICS_FILE)
    records = read_jsonl(run.path / metrics_file, "metrics file", missing_ok=True)
    planned = config["engine"].get("epochs")
    done = int(records[-1].get("epoch", 0)) if records else 0
    result = record.get("result")
    state, pid = _state(run, done, planned, result is None or (run.path / result).is_file())
    return RunSummary(
        **_identity(run, config, record, name),
        state=state,
        epochs_done=done,
        epochs_planned=planned,
        seconds=round(sum(r["seconds"] for r in records if _number(r.get("seconds"))), 3),
        chosen=_chosen(config, figures, records) if records else None,
        best=_best(figures, records),
        final=records[-1] if records else None,
        param_free=_param_free(run.path, result),
        resume=resume_command(config["engine"].get("resume_hint", ""), run.path) if state == "interrupted" else None,
        pid=pid,
        config=config,
        records=records,
        figures=figures,
    )


def _identity(run: RunDir, config: dict[str, Any], record: dict[str, Any], name: str | None) -> dict[str, Any]:
    """What a run is, from its run record: folder, name, command, data set, space or genotype, creation time."""
    return {
        "path": run.path,
        "name": name or run.path.name,
        "kind": str(record["command"]).removeprefix("gdas "),
        "dataset": record.get("dataset"),
        "space": record.get("space"),
        "genotype": record.get("genotype"),
        "created": config.get("created"),
    }


def _read_parent(run: RunDir, config: dict[str, Any], record: dict[str, Any], name: str | None) -> RunSummary:
    """A run made of runs (`--seeds`): its epochs, time and state are its parts'; its figure is its winner's
    (the ranking its result's provenance holds)."""
    parts = [(part, RunDir(run.path / str(part["run"]))) for part in record["parts"]]
    read = [read_run(child.path) for _, child in parts if child.exists()]
    planned = sum(int(part.get("epochs") or 0) for part, _ in parts)
    done = sum(child.epochs_done for child in read)
    result = record.get("result")
    finished = result is not None and (run.path / result).is_file()
    running = next((child for child in read if child.state == "running"), None)
    if running is not None:
        state, pid = "running", running.pid
    elif finished:
        state, pid = "finished", None
    else:
        state, pid = ("interrupted" if read else "empty"), None
    ranking = _ranking(run.path / result) if finished and result else []
    rows = [{"epoch": None, "seed": row.get("seed"), **row} for row in ranking]
    by = next(iter(record["figures"].get("valid", {}).values()), None)
    winner = rows[0] if rows else None
    chosen = None
    if winner is not None:
        chosen = {"checkpoint": None, "seed": winner["seed"], "epoch": None, "by": by, "split": "valid"}
        chosen.update({"valid": _figure(record["figures"], "valid", winner), "test": None})
    return RunSummary(
        **_identity(run, config, record, name),
        state=state,
        epochs_done=done,
        epochs_planned=planned,
        seconds=round(sum(child.seconds for child in read), 3),
        chosen=chosen,
        best=None if winner is None else {"seed": winner["seed"], "by": by, "split": "valid", "record": winner},
        final=None,
        param_free=_param_free(run.path, result),
        resume=resume_command(config["engine"].get("resume_hint", ""), run.path) if state == "interrupted" else None,
        pid=pid,
        parts=[str(part["run"]) for part, _ in parts],
        config=config,
        figures=record["figures"],
    )


def _ranking(genotype_file: Path) -> list[dict[str, Any]]:
    provenance = read_json_object(genotype_file, "genotype file").get("provenance") or {}
    best_of = provenance.get("best_of_seeds") if isinstance(provenance, dict) else None
    return list(best_of.get("ranking") or []) if isinstance(best_of, dict) else []


def list_runs(root: Path) -> list[RunSummary | dict[str, Any]]:
    """Every run under `root`, oldest first (config.json's `created`); a run that cannot be read is a row
    {name, path, state: "unreadable", error} so one broken folder does not hide the others."""
    root = Path(root)
    rows: list[RunSummary | dict[str, Any]] = []
    for path in find_runs(root):
        name = path.relative_to(root).as_posix() if path != root else path.name
        try:
            rows.append(read_run(path, name))
        except GdasError as err:
            rows.append({"name": name, "path": str(path), "state": "unreadable", "error": str(err)})
    return sorted(rows, key=_start)


def _start(row: RunSummary | dict[str, Any]) -> tuple[str, str]:
    if isinstance(row, RunSummary):
        return (row.created or "", row.name)
    return ("", str(row["name"]))


# ------------------------------------------------------------------------------------------- compare

# keys that always differ between two runs and say nothing about how they differ
_UNCOMPARED = (
    "created",
    "engine.run_dir",
    "engine.quiet",
    "engine.resume_hint",
    "task.sources",
    "task.genotype",
    "run.parts",
)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """config.json as dotted keys (task.lr, engine.epochs, run.dataset); lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if any(dotted == skip or dotted.startswith(skip + ".") for skip in _UNCOMPARED):
            continue
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def compare_runs(paths: Sequence[Path]) -> dict[str, Any]:
    """The config keys whose values differ between the runs (each run's value, None where it has none), and
    each run's final and best records and the epoch it chose."""
    if len(paths) < 2:
        raise GdasError("gdas runs compare: give at least two runs")
    summaries = [read_run(Path(p), str(p)) for p in paths]
    flats = [flatten(s.config) for s in summaries]
    keys = sorted({k for flat in flats for k in flat})
    differ = {k: [flat.get(k) for flat in flats] for k in keys if len({repr(flat.get(k)) for flat in flats}) > 1}
    return {
        "runs": [s.name for s in summaries],
        "differ": differ,
        "records": [
            {
                "run": s.name,
                "kind": s.kind,
                "state": s.state,
                "epochs_done": s.epochs_done,
                "final": s.final,
                "best": s.best,
                "chosen": s.chosen,
            }
            for s in summaries
        ],
    }


# -------------------------------------------------------------------------------------------- curves


def curves(summary: RunSummary) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per metric (loss, top1, ppl) and split, the (epoch, value) points of the run's records."""
    points: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for split in SPLITS:
        for metric, key in summary.figures.get(split, {}).items():
            line = [(int(r["epoch"]), float(r[key])) for r in summary.records if _number(r.get(key)) and "epoch" in r]
            if line:
                points.setdefault(metric, {})[split] = line
    return points
