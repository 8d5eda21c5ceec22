"""`gdas search cnn|rnn`: run a GDAS search into a run directory."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import GdasError
from ..limits import (
    BATCH,
    BPTT,
    CELLS_PER_STAGE,
    CHANNELS,
    CUTOUT,
    EMSIZE,
    EPOCHS,
    IMAGE_SIZE,
    MAX_SEED,
    NODES,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEARCH_BATCH,
    SEARCH_CHANNELS,
    SEED,
    SEEDS,
    SELECT_LAYERS,
    WORKERS,
)
from ._app import make_app
from ._choices import Layout, Sampling, SpaceName
from ._output import console, err_console, is_main_process, print_json, print_plan
from ._run_options import RunOptions, check_saved, run_slug, run_until_interrupted, with_run_options

app = make_app(
    "Search a cell with GDAS.\n\n"
    "Examples:\n\n"
    "  gdas search cnn --frc --dataset digits --epochs 2\n\n"
    "  gdas search rnn --dataset ptb --data-dir ~/data/ptb"
)


# ------------------------------------------------------------------------------------------ search cnn

_SEARCH = "Search (paper Alg. 1)"
_NET = "Supernet"
_RUN = "Run"
_SELECT = "Best of K seeds (paper Sec. 4.2)"
_NB201 = "NAS-Bench-201 space (--space nas-bench-201)"


def cnn(
    dataset: Annotated[
        str | None,
        typer.Option(
            help="cifar10, cifar100, digits (built-in demo) or folder:PATH. \\[default: cifar10]", rich_help_panel=_RUN
        ),
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="Where the CIFAR files are. \\[default: data]", rich_help_panel=_RUN)
    ] = None,
    space: Annotated[
        SpaceName | None,
        typer.Option(
            metavar="SPACE",
            help=(
                "darts (the paper's CNN cells) or nas-bench-201 (NAS-Bench-201's topology space: one cell of 4 "
                "nodes, 5 ops; its cells can be looked up in the benchmark). \\[default: darts]"
            ),
            rich_help_panel=_NET,
        ),
    ] = None,
    frc: Annotated[
        bool | None,
        typer.Option(
            "--frc/--no-frc",
            help="Use the fixed reduction cell; search only the normal cell. Needs C % 8 == 0.",
            rich_help_panel=_NET,
            show_default=False,
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            help=(
                "\\[default: paper; nas-bench-201 for that space] paper (the paper's 240 epochs, SGD 0.025 cosine to "
                "1e-3, wd 3e-4, Adam 3e-4, tau 10->1; where it is silent the 2019 code's batch 128, clip 5, Adam "
                "betas, 8 cells, cell sampling), xautodl (the 2020 code: 250 epochs, batch 256, wd 5e-4, nesterov, "
                "tau 10->0.1, 6 cells, batch sampling) or nas-bench-201 (the released GDAS search of that space: "
                "C=16, N=5, 240 epochs, batch 64, nesterov, wd 5e-4, tau 10->0.1)."
            ),
            rich_help_panel=_SEARCH,
            show_default=False,
        ),
    ] = None,
    track_stats: Annotated[
        bool | None,
        typer.Option(
            "--track-stats/--no-track-stats",
            help="BN running statistics in the search cells. \\[default: no (GDAS.sh's usage line)]",
            rich_help_panel=_NB201,
            show_default=False,
        ),
    ] = None,
    unchosen_grads: Annotated[
        bool | None,
        typer.Option(
            "--unchosen-grads/--no-unchosen-grads",
            help=(
                "xautodl's gradient to the unchosen ops' weights (TinyNetworkGDAS adds them, 0 in value, to each "
                "edge); off: only the chosen op's. \\[default: on (2020 code)]"
            ),
            rich_help_panel=_NB201,
            show_default=False,
        ),
    ] = None,
    nas_bench: Annotated[
        Path | None,
        typer.Option(
            help=(
                "Look each epoch's derived cell up in this NATS-Bench topology benchmark (a "
                "NATS-tss-v1_0-3ffb9-simple folder or .pickle.pbz2 file; pickles, read only through the nats_bench "
                "API and only from this path) and log its accuracies."
            ),
            rich_help_panel=_NB201,
        ),
    ] = None,
    sampling: Annotated[
        Sampling | None,
        typer.Option(
            metavar="MODE",  # the modes are listed in the help; a long choice list would squeeze the names
            help=(
                "cell (a draw per cell per forward: the 2019 code), batch (one per cell type per forward: xautodl), "
                "sample (one normal and one reduction cell per example: the paper's text), sample_cell (a draw per "
                "cell per example), darts (softmax over all ops), gdas_all_ops (cell's draws, every op run and "
                "weighted: the paper's run without the acceleration step). \\[default: from --recipe]"
            ),
            rich_help_panel=_SEARCH,
        ),
    ] = None,
    layout: Annotated[
        Layout | None,
        typer.Option(
            help=(
                "paper (N-R-N-R-N cells, GAP + linear: the 2019 code) or xautodl (N-R-(N-1)-R-(N-1), BN-ReLU head: "
                "the 2020 code). \\[default: from --recipe; xautodl for digits]"
            ),
            rich_help_panel=_NET,
        ),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(
            "--channels",
            "-C",
            help="Initial channels C. \\[default: 16 (paper)]",
            rich_help_panel=_NET,
            callback=SEARCH_CHANNELS.check,
        ),
    ] = None,
    cells_per_stage: Annotated[
        int | None,
        typer.Option(
            "--cells-per-stage",
            "-N",
            help="Normal cells per stage N. \\[default: 2 (paper); 1 for digits]",
            rich_help_panel=_NET,
            callback=CELLS_PER_STAGE.check,
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            help="Resize images to this square side. \\[default: the data's own; your own data: the sizing rule]",
            rich_help_panel=_NET,
            callback=IMAGE_SIZE.check,
        ),
    ] = None,
    hflip: Annotated[
        bool | None,
        typer.Option(
            "--hflip/--no-hflip",
            help="Flip training images horizontally. \\[default: on (2019 code); off for digits]",
            rich_help_panel=_SEARCH,
            show_default=False,
        ),
    ] = None,
    cutout: Annotated[
        int | None,
        typer.Option(
            help="Cutout square side in pixels (0: off). \\[default: 0 (2019 code)]",
            rich_help_panel=_SEARCH,
            callback=CUTOUT.check,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs. \\[default: from --recipe]", rich_help_panel=_SEARCH, callback=EPOCHS.check),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Batch size of each step (train and valid). \\[default: from --recipe; 8 for digits]",
            rich_help_panel=_SEARCH,
            callback=SEARCH_BATCH.check,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="W learning rate, cosine to --lr-min. \\[default: 0.025 (paper); 0.05 for digits]",
            rich_help_panel=_SEARCH,
            callback=POSITIVE.check,
        ),
    ] = None,
    lr_min: Annotated[
        float | None,
        typer.Option(help="\\[default: 0.001 (paper)]", rich_help_panel=_SEARCH, callback=NON_NEGATIVE.check),
    ] = None,
    momentum: Annotated[
        float | None,
        typer.Option(help="\\[default: 0.9 (paper)]", rich_help_panel=_SEARCH, callback=PROBABILITY.check),
    ] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option(
            help="W weight decay. \\[default: from --recipe]", rich_help_panel=_SEARCH, callback=NON_NEGATIVE.check
        ),
    ] = None,
    nesterov: Annotated[
        bool | None,
        typer.Option(
            "--nesterov/--no-nesterov", help="\\[default: from --recipe]", rich_help_panel=_SEARCH, show_default=False
        ),
    ] = None,
    grad_clip: Annotated[
        float | None,
        typer.Option(
            help="Clip the weights' gradient norm (0: off). \\[default: 5 (2019 code)]",
            rich_help_panel=_SEARCH,
            callback=NON_NEGATIVE.check,
        ),
    ] = None,
    arch_lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate of the alphas. \\[default: 3e-4 (paper); 3e-3 for digits]",
            rich_help_panel=_SEARCH,
            callback=POSITIVE.check,
        ),
    ] = None,
    arch_beta1: Annotated[
        float | None,
        typer.Option(help="\\[default: 0.5 (2019 code)]", rich_help_panel=_SEARCH, callback=PROBABILITY.check),
    ] = None,
    arch_beta2: Annotated[
        float | None,
        typer.Option(help="\\[default: 0.999 (2019 code)]", rich_help_panel=_SEARCH, callback=PROBABILITY.check),
    ] = None,
    arch_weight_decay: Annotated[
        float | None,
        typer.Option(help="\\[default: 1e-3 (paper)]", rich_help_panel=_SEARCH, callback=NON_NEGATIVE.check),
    ] = None,
    tau_max: Annotated[
        float | None,
        typer.Option(
            help="Gumbel temperature at the first epoch. \\[default: 10 (paper)]",
            rich_help_panel=_SEARCH,
            callback=POSITIVE.check,
        ),
    ] = None,
    tau_min: Annotated[
        float | None,
        typer.Option(
            help="... at the last epoch (linear). \\[default: from --recipe]",
            rich_help_panel=_SEARCH,
            callback=POSITIVE.check,
        ),
    ] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the 50/50 train/valid split (saved in split.json). \\[default: --seed]",
            rich_help_panel=_RUN,
            callback=SEED.check,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="DataLoader workers for folder: datasets. \\[default: 0]", rich_help_panel=_RUN, callback=WORKERS.check
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            help=(
                "Best of K: search with seeds --seed .. --seed+K-1 (PARENT/seed-<s>, one shared split), train each "
                "derived cell briefly on the train half, rank them by valid-half top-1, keep the winner "
                "(paper Sec. 4.2: 4 seeds, following DARTS)."
            ),
            rich_help_panel=_SELECT,
            callback=SEEDS.check,
        ),
    ] = None,
    select_epochs: Annotated[
        int | None,
        typer.Option(
            help=(
                "Epochs of that training, with the data set's `gdas train` recipe. "
                "\\[default: 100 (DARTS); 2 for digits]"
            ),
            rich_help_panel=_SELECT,
            callback=EPOCHS.check,
        ),
    ] = None,
    select_channels: Annotated[
        int | None,
        typer.Option(
            help="C of that training's network. \\[default: the search's -C]",
            rich_help_panel=_SELECT,
            callback=CHANNELS.check,
        ),
    ] = None,
    select_layers: Annotated[
        int | None,
        typer.Option(
            help="Cells of that training's network. \\[default: the supernet's cells]",
            rich_help_panel=_SELECT,
            callback=SELECT_LAYERS.check,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write the final genotype JSON here (atomically).", rich_help_panel=_RUN
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the final summary as JSON on stdout.", rich_help_panel=_RUN)
    ] = False,
    run: RunOptions = RunOptions(),
) -> None:
    """Search a CNN cell with GDAS into a run directory.

    Writes config.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl, split.json and checkpoint/last, and at \
the end genotype.json: the final epoch's cell (paper Alg. 1, as both released codes report it), with how far \
its alphas moved from uniform; a warning says when that is indistinguishable from noise.

    CIFAR-10 and CIFAR-100 get the paper's recipe (or --recipe xautodl). Any other data set (a folder, the \
built-in digits) is sized by the sizing rule from its images, classes and image size and from the machine \
(README, "Your own data"). The plan printed at the start gives every value with its source (you, rule, \
paper, 2019 code, 2020 code), and an estimate of the run's time follows the first steps. A folder needs only \
PATH/train/<class>/<image>: the search splits it into its two halves itself. The valid top-1 reported is \
that of the A steps (batches of the valid half: train_arch_top1 in metrics.jsonl).

    Examples:

      gdas search cnn --frc --dataset digits

      gdas search cnn --dataset folder:~/icons --json

      gdas search cnn --frc --data-dir ~/data

      gdas search cnn --recipe xautodl --data-dir ~/data

      gdas search cnn --frc --dataset digits --seeds 2 --run-dir runs/best-of-2

      gdas search cnn --resume runs/search-cifar10-20260101-120000 --epochs 300
    """
    from ..engine import resume_settings
    from ..search.cnn_task import SearchTask, check_search, run_search
    from ..search.config import SearchConfig, check_config
    from ..search.seeds import is_seeds_run

    betas = None
    if arch_beta1 is not None or arch_beta2 is not None:
        betas = [0.5 if arch_beta1 is None else arch_beta1, 0.999 if arch_beta2 is None else arch_beta2]
    overrides = {
        "data_dir": data_dir,
        "space": space,
        "track_stats": track_stats,
        "unchosen_grads": unchosen_grads,
        "nas_bench": str(nas_bench) if nas_bench is not None else None,
        "frc": frc,
        "sampling": sampling,
        "layout": layout,
        "channels": channels,
        "cells_per_stage": cells_per_stage,
        "image_size": image_size,
        "hflip": hflip,
        "cutout": cutout,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_min": lr_min,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "nesterov": nesterov,
        "grad_clip": grad_clip,
        "arch_lr": arch_lr,
        "arch_betas": betas,
        "arch_weight_decay": arch_weight_decay,
        "tau_max": tau_max,
        "tau_min": tau_min,
        "split_seed": split_seed,
        "workers": workers,
    }
    select = {"C": select_channels, "layers": select_layers}
    if seeds is not None and run.seed + seeds - 1 > MAX_SEED:
        raise GdasError(f"--seeds: seeds {run.seed}..{run.seed + seeds - 1} pass {MAX_SEED}, the largest --seed")
    saved_run = run.resumed_run()
    if saved_run is not None and is_seeds_run(saved_run):
        given = run.typed(
            **{k: v for k, v in overrides.items() if k != "arch_betas"},
            dataset=dataset,
            recipe=recipe,
            seeds=seeds,
            select_epochs=select_epochs,
            select_channels=select_channels,
            select_layers=select_layers,
        )
        _check_output(output, run)
        _resume_seeds(saved_run, given, output, run.quiet, json_output)
        return
    if saved_run is not None and seeds is not None:
        raise GdasError(f"--seeds: {saved_run} is a single search run, not the parent folder of a --seeds search")
    selecting = {
        "--select-epochs": select_epochs,
        "--select-channels": select_channels,
        "--select-layers": select_layers,
    }
    for name, value in selecting.items():
        if value is not None and seeds is None:
            raise GdasError(f"{name}: only with --seeds K (it sets how the K searched cells are ranked)")
    if saved_run is not None:
        given = run.typed(**{k: v for k, v in overrides.items() if k != "arch_betas"}, dataset=dataset, recipe=recipe)
        if betas is not None:
            given["arch_betas"] = betas
        saved, engine = resume_settings(saved_run, SearchTask, given)
        config = SearchConfig.from_dict(saved, str(saved_run / "config.json"))
        check_saved(functools.partial(check_config, config), saved_run)
        title = f"plan of {saved_run} (resumed)"
    else:
        for key in ("seed", "limit_train_batches"):
            overrides[key] = getattr(run, key) if key in run.explicit else None
        config, title = _new_config(recipe, dataset or "cifar10", overrides, run.device)
        engine = run.engine_config(
            epochs=config.epochs,
            run_name=f"search-{run_slug(config.dataset)}",
            resume_hint="gdas search cnn --resume {run_dir}",
        )
        engine.seed, engine.limit_train_batches = config.seed, config.limit_train_batches or 0
        if seeds is not None:
            _check_output(output, run)
            _new_seeds(config, engine, seeds, select_epochs, select, output, title, json_output)
            return
    check_search(config)
    _check_output(output, run)
    plan = functools.partial(print_plan, title, config.to_dict(), config.sources)
    result = run_until_interrupted(lambda: run_search(config, engine, resume=run.mode, on_start=plan))
    _finish(result, output, run.quiet, json_output)


def _new_config(recipe: str | None, dataset: str, overrides: dict[str, Any], device: str) -> tuple[Any, str]:
    """A new search's config (the sizing rule applied to a data set but the paper's) and its plan's title."""
    from ..data import describe
    from ..search.cnn_task import check_dataset
    from ..search.config import resolve_config
    from ..sizing import check_workers, this_machine

    check_dataset(dataset)
    facts = describe(dataset, overrides.get("data_dir") or "data")
    machine = this_machine(device)
    check_workers(overrides.get("workers"), machine)
    config = resolve_config(recipe, dataset, overrides, facts, machine)
    title = f"plan: gdas search cnn on {dataset} ({facts.describe()}), {machine.describe()}, {config.space} space"
    return config, title


def _check_output(output: Path | None, run: RunOptions) -> None:
    """-o is checked before the search starts, not after it ran for hours."""
    from ..rundir import guard_output

    if output is not None:
        guard_output(output, reads=[p for p in (run.run_dir, run.resume) if p is not None])


def _new_seeds(
    config: Any,
    engine: Any,
    seeds: int,
    select_epochs: int | None,
    select: dict[str, Any],
    output: Path | None,
    title: str,
    as_json: bool,
) -> None:
    """`--seeds K`: the parent folder is --run-dir (default runs/search-<dataset>-seeds-<time>)."""
    from ..engine import default_run_dir
    from ..search.cnn_task import check_search
    from ..search.seeds import new_plan

    check_search(config)
    plan = new_plan(config, engine, seeds, select_epochs, {k: v for k, v in select.items() if v is not None})
    if not engine.quiet and is_main_process():
        print_plan(title, config.to_dict(), config.sources)
    parent = Path(engine.run_dir) if engine.run_dir else default_run_dir(f"{engine.run_name}-seeds")
    _run_seeds(plan, parent, False, {}, output, engine.quiet, as_json)


def _resume_seeds(parent: Path, given: dict[str, Any], output: Path | None, quiet: bool, as_json: bool) -> None:
    from ..search.seeds import SeedsPlan, check_resume

    plan = SeedsPlan.read(parent)
    check_resume(plan, parent, given)
    _run_seeds(plan, parent, True, given, output, quiet or plan.engine.quiet, as_json)


def _run_seeds(
    plan: Any, parent: Path, resume: bool, given: dict[str, Any], output: Path | None, quiet: bool, as_json: bool
) -> None:
    from ..search.seeds import run_seeds

    def say(text: str) -> None:
        if not quiet:
            err_console.print(text, markup=False, highlight=False)

    ranking = run_until_interrupted(lambda: run_seeds(plan, parent, resume=resume, overrides=given, say=say))
    if not is_main_process():  # under torchrun rank 0 reports the ranking
        return
    if not quiet and not as_json:
        console.print(_ranking_table(ranking))
    _finish({"run_dir": str(parent), "ranking": ranking}, output, quiet, as_json)


def _ranking_table(ranking: dict[str, Any]) -> Table:
    from ..genotype import Cell, Genotype

    table = Table(title=f"best of {len(ranking['seeds'])} seeds: {ranking['procedure']}", title_justify="left")
    first_role = Genotype.from_dict(ranking["seeds"][0]["genotype"]).search_space.roles[0]
    figures = ("valid top-1", "params", "search A-step top-1", "moved", "param-free")
    for column in ("rank", "seed", f"{first_role} cell", *figures):  # the cell folds; the figures keep their width
        table.add_column(column, overflow="fold", no_wrap=column in ("rank", "seed", "valid top-1", "params"))
    for rank, row in enumerate(ranking["seeds"], start=1):
        genotype = Genotype.from_dict(row["genotype"])
        cell = genotype.cells()[first_role]
        nodes = (
            " | ".join(" ".join(f"{e.op}({e.input})" for e in node) for node in cell.nodes)
            if isinstance(cell, Cell)
            else cell
        )
        arch = row.get("search_arch_top1")
        movement = genotype.provenance.get("movement") or {}
        moved = f"{movement['moved']:.3f} ({movement['verdict']})" if "moved" in movement else ""
        shares = genotype.provenance.get("param_free") or {}
        free = ", ".join(f"{role} {cell['param_free']}/{cell['edges']}" for role, cell in shares.items())
        table.add_row(
            str(rank),
            str(row["seed"]),
            nodes,
            f"{row['valid_top1']:.2f}%",
            f"{row['params'] / 1e6:.3f}M",
            "" if arch is None else f"{arch:.2f}%",
            moved,
            free,
        )
    return table


def _finish(result: dict[str, Any], output: Path | None, quiet: bool, as_json: bool = False) -> None:
    """Copy genotype.json to -o (atomically) and report: one wording for every search.

    `--json`: the summary as JSON on stdout; `--quiet`: only the genotype's path; else what the run chose,
    its validation figure and how far the alphas moved (a warning on stderr when that is noise).
    """
    from ..collapse import param_free as shares_of
    from ..collapse import share_line
    from ..movement import summary_line
    from ..refs import load_genotype
    from ..rundir import RunDir
    from ..search.source import write_genotype

    genotype_path = RunDir(Path(result["run_dir"])).genotype_file
    genotype = load_genotype(genotype_path)
    if output is not None:
        write_genotype(genotype, output)
    path = output or genotype_path
    movement = genotype.provenance.get("movement")
    if as_json:
        summary = {k: v for k, v in result.items() if k != "rank"}
        print_json({**summary, "genotype": str(path), "movement": movement, "param_free": shares_of(genotype)})
        return
    if quiet:
        console.print(str(path), highlight=False, markup=False, soft_wrap=True)
        return
    finished = f"search finished: {result['run_dir']}  {_result_text(result, genotype)}"
    console.print(finished, highlight=False, markup=False)
    if movement:
        line = summary_line(movement)
        (err_console if movement["verdict"] == "noise" else console).print(line, highlight=False, markup=False)
    shares = share_line(genotype)
    if shares:
        (err_console if shares.startswith("warning") else console).print(shares, highlight=False, markup=False)
    console.print(f"genotype: {path}", highlight=False, markup=False)


def _result_text(result: dict[str, Any], genotype: Any) -> str:
    """Which epoch's cell the run chose and why, with its validation figure, in metrics.jsonl's words."""
    if "ranking" in result:
        ranking = result["ranking"]
        best = ranking["seeds"][0]
        return f"winner: seed {ranking['winner']}, valid_top1 {best['valid_top1']:.2f}% (of {len(ranking['seeds'])})"
    last, chosen = result.get("last") or {}, result.get("chosen") or {}
    epoch = genotype.provenance.get("epoch")
    if chosen.get("checkpoint") == "best":
        value = genotype.provenance.get(chosen["by"])
        shown = f" {value:.4f}" if isinstance(value, (int, float)) else ""
        return f"result: epoch {epoch}, chosen by its {chosen['by']}{shown} (lowest on the valid split)"
    text = f"result: the final epoch {epoch}"
    if "train_arch_top1" in last:
        # a CNN search's A steps run on valid-half batches: their top-1 is its validation accuracy
        text += f", train_arch_top1 {last['train_arch_top1']:.2f}% (A steps on the valid half)"
    return text


app.command("cnn")(with_run_options(cnn))


# ------------------------------------------------------------------------------------------ search rnn

_RNN = "Search (paper Sec. 4.2, PTB)"


def rnn(
    dataset: Annotated[
        str | None,
        typer.Option(help="ptb, wt2 or demo-text (built in, no download). \\[default: ptb]", rich_help_panel=_RUN),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with the train/valid/test text files (ptb, wt2).", rich_help_panel=_RUN)
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Epochs. \\[default: 200 (paper); 3 for demo-text]", rich_help_panel=_RNN, callback=EPOCHS.check
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Training batch size (streams). \\[default: 128 (paper; the 2019 code: 256)]",
            rich_help_panel=_RNN,
            callback=SEARCH_BATCH.check,
        ),
    ] = None,
    eval_batch_size: Annotated[
        int | None,
        typer.Option(
            help="Validation batch size. \\[default: 10 (2019 code)]", rich_help_panel=_RNN, callback=BATCH.check
        ),
    ] = None,
    bptt: Annotated[
        int | None,
        typer.Option(help="Base BPTT length. \\[default: 35 (paper)]", rich_help_panel=_RNN, callback=BPTT.check),
    ] = None,
    emsize: Annotated[
        int | None,
        typer.Option(
            help="Embedding = hidden size. \\[default: 300 (paper)]", rich_help_panel=_RNN, callback=EMSIZE.check
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Nodes in the recurrent cell. \\[default: 8 (2019 code, DARTS-RNN)]",
            rich_help_panel=_RNN,
            callback=NODES.check,
        ),
    ] = None,
    sampling: Annotated[
        str | None,
        typer.Option(
            help=(
                "gdas (a hard Gumbel sample, one path per edge: the paper's method), soft-gumbel (a soft "
                "Gumbel-softmax over all activations: the 2019 code that found the published PTB cell) or "
                "darts (softmax, all ops). \\[default: gdas]"
            ),
            rich_help_panel=_RNN,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="SGD learning rate. \\[default: 20 (2019 code; the paper's 'Adam lr 20' is a typo)]",
            rich_help_panel=_RNN,
            callback=POSITIVE.check,
        ),
    ] = None,
    arch_lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate of the alphas. \\[default: 3e-3 (paper)]",
            rich_help_panel=_RNN,
            callback=POSITIVE.check,
        ),
    ] = None,
    tau_max: Annotated[
        float | None,
        typer.Option(
            help="Gumbel temperature at the first epoch. \\[default: 10 (2019 code)]",
            rich_help_panel=_RNN,
            callback=POSITIVE.check,
        ),
    ] = None,
    tau_min: Annotated[
        float | None,
        typer.Option(
            help="... at the last epoch (linear). \\[default: 1 (2019 code)]",
            rich_help_panel=_RNN,
            callback=POSITIVE.check,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write the final genotype JSON here (atomically).", rich_help_panel=_RUN
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the final summary as JSON on stdout.", rich_help_panel=_RUN)
    ] = False,
    run: RunOptions = RunOptions(),
) -> None:
    """Search a recurrent cell with GDAS (DARTS-RNN space, 8 nodes, T=1 derive).

    Writes config.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl, checkpoint/{last,best} and,
    at the end, genotype.json: the epoch with the lowest validation loss (the 2019 code's choice, also
    checkpoint/best and what `gdas derive` takes), with how far its alphas moved from uniform.

    Examples:

      gdas search rnn --dataset demo-text -o my_rnn.json

      gdas search rnn --dataset ptb --data-dir ~/data/ptb

      gdas search rnn --resume runs/search-rnn-ptb-20260101-120000
    """
    from ..engine import config_from_dict, resume_settings
    from ..search.rnn_task import (
        LMSearchConfig,
        RNNSearchTask,
        check_search_config,
        resolve_search_config,
        run_rnn_search,
    )

    values = {
        "data_dir": str(data_dir) if data_dir else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "eval_batch_size": eval_batch_size,
        "bptt": bptt,
        "emsize": emsize,
        "steps": steps,
        "sampling": sampling,
        "lr": lr,
        "arch_lr": arch_lr,
        "tau_max": tau_max,
        "tau_min": tau_min,
    }
    saved_run = run.resumed_run()
    if saved_run is not None:
        given = run.typed(dataset=dataset, **values)
        saved, engine = resume_settings(saved_run, RNNSearchTask, given)
        config = config_from_dict(LMSearchConfig, saved, str(saved_run / "config.json"))
        check_saved(functools.partial(check_search_config, config), saved_run)
        title = f"plan of {saved_run} (resumed)"
    else:
        seed = run.seed if "seed" in run.explicit else None
        config = resolve_search_config(dataset or "ptb", {**values, "seed": seed})
        engine = run.engine_config(
            epochs=config.epochs,
            run_name=f"search-rnn-{run_slug(config.dataset)}",
            resume_hint="gdas search rnn --resume {run_dir}",
        )
        title = f"plan: gdas search rnn on {config.dataset}"
    _check_output(output, run)
    plan = functools.partial(print_plan, title, dataclasses.asdict(config), config.sources)
    result = run_until_interrupted(lambda: run_rnn_search(config, engine, resume=run.mode, on_start=plan))
    _finish(result, output, run.quiet, json_output)


app.command("rnn")(with_run_options(rnn))
