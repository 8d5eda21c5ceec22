"""`gdas runs list|compare`: watch and compare run folders from their records (never their weights, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ._app import make_app
from ._output import console, print_json

if TYPE_CHECKING:
    from ..runs import RunSummary

app = make_app(
    "Watch and compare runs: what each run folder is, how far it got, what it chose.\n\n"
    "Examples:\n\n"
    "  gdas runs list\n\n"
    "  gdas runs list runs/sweep --json\n\n"
    "  gdas runs compare runs/search-a runs/search-b"
)


@app.command("list")
def list_command(
    folder: Annotated[Path, typer.Argument(help="A folder of run folders, searched to any depth.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List every run under FOLDER, oldest first.

    One row per run folder: its kind (search cnn, search rnn, train, search cnn --seeds and the parts of such a \
parent), data set, genotype or search space, epochs done of planned, state (running: a live lock; finished; \
interrupted: resumable, with the command that resumes it; empty: no checkpoint yet, the same command starts it \
again), the validation and test figures of the epoch the run chose and the split that chose it, the share of \
parameter-free ops in its searched cells, and its recorded time. Reads config.json, metrics.jsonl and the \
result's provenance only: no weights, no torch.

    Examples:

      gdas runs list

      gdas runs list runs/sweep --json
    """
    from ..runs import RunSummary, list_runs

    rows = list_runs(folder)
    if as_json:
        print_json([row.to_dict() if isinstance(row, RunSummary) else row for row in rows])
        return
    table = Table(title=f"{len(rows)} run(s) in {folder}", title_justify="left")
    cells = [_cells(row) if isinstance(row, RunSummary) else _unreadable(row) for row in rows]
    shown = [i for i, column in enumerate(_COLUMNS) if i < 6 or any(cell[i] for cell in cells)]
    for i in shown:
        table.add_column(_COLUMNS[i], overflow="fold")
    for cell in cells:
        table.add_row(*[cell[i] for i in shown])
    console.print(table)
    for row in rows:
        if isinstance(row, RunSummary) and row.resume:
            console.print(f"resume {row.name}: {row.resume}", highlight=False, markup=False)


# the first six are always shown; the others when some run has a value
_COLUMNS = ("run", "kind", "data", "cell", "epochs", "state", "valid", "test", "chosen", "param-free", "time")


def _unreadable(row: dict[str, Any]) -> list[str]:
    return [row["name"], "", "", "", "", f"unreadable: {row['error']}", *[""] * 5]


def _cells(row: RunSummary) -> list[str]:
    from ..progress import format_duration

    chosen = row.chosen or {}
    state = f"running (pid {row.pid})" if row.state == "running" else row.state
    planned = "?" if row.epochs_planned is None else str(row.epochs_planned)
    return [
        row.name,
        row.kind,
        row.dataset or "",
        row.genotype or row.space or "",
        f"{row.epochs_done}/{planned}",
        state,
        _figure(chosen.get("valid")),
        _figure(chosen.get("test")),
        _chosen(chosen),
        _shares(row.param_free),
        format_duration(row.seconds) if row.seconds else "",
    ]


def _figure(figure: dict[str, Any] | None) -> str:
    """`95.12%` (top-1), `ppl 123.4`, `loss 0.4321`: the record key is in --json."""
    if not figure:
        return ""
    key, value = figure["key"], figure["value"]
    return f"{value:.2f}%" if key.endswith("top1") else f"{key.rpartition('_')[2]} {value:.4g}"


def _chosen(chosen: dict[str, Any]) -> str:
    """Which epoch (or seed) gave the figures, and the split that chose it."""
    if not chosen:
        return ""
    if chosen.get("seed") is not None:
        return f"seed {chosen['seed']} (best {chosen['split']})"
    if chosen.get("by"):
        return f"epoch {chosen['epoch']} (best {chosen['split']})"
    return f"epoch {chosen['epoch']} (final)"


def _shares(shares: dict[str, float] | None) -> str:
    return ", ".join(f"{role} {share:.0%}" for role, share in (shares or {}).items())


@app.command("compare")
def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run folders.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Compare runs: the config keys that differ, side by side, then each run's final and best records.

    The best record is the epoch of the best validation figure (top-1, else perplexity, else loss); the \
chosen epoch is the one the run chose (README "One checkpoint rule"). Run folders, their timestamps and \
each setting's source are left out of the comparison.

    Examples:

      gdas runs compare runs/search-a runs/search-b

      gdas runs compare runs/train-* --json
    """
    from ..runs import compare_runs

    result = compare_runs(runs)
    if as_json:
        print_json(result)
        return
    names = result["runs"]
    differ = Table("config key", *names, title="config keys that differ", title_justify="left")
    for key, values in result["differ"].items():
        differ.add_row(key, *[_value(v) for v in values])
    console.print(differ if result["differ"] else "the runs' configs do not differ", highlight=False)
    records = Table("record", *names, title="final and best records", title_justify="left")
    for label, rows in (
        ("final", [r["final"] for r in result["records"]]),
        ("best", [(r["best"] or {}).get("record") for r in result["records"]]),
    ):
        keys = [k for k in _keys(rows) if k not in ("genotype", "bench_arch", "alphas_sha256")]
        for key in keys:
            records.add_row(f"{label} {key}", *[_value((row or {}).get(key)) for row in rows])
    console.print(records)


def _keys(rows: list[dict[str, Any] | None]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in (row or {}) if k not in keys]
    return keys


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
