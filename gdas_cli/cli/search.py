"""`gdas search cnn|rnn`: run a GDAS search into a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import GdasError
from ._app import make_app
from ._choices import Layout, Sampling
from ._output import console, err_console
from ._run_options import RunOptions, run_slug, run_until_interrupted, with_run_options

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
                "\\[default: paper] paper (the paper's 240 epochs, SGD 0.025 cosine to 1e-3, wd 3e-4, Adam 3e-4, "
                "tau 10->1; where it is silent the 2019 code's batch 128, clip 5, Adam betas, 8 cells, cell sampling) "
                "or xautodl (the 2020 code: 250 epochs, batch 256, wd 5e-4, nesterov, tau 10->0.1, 6 cells, batch "
                "sampling)."
            ),
            rich_help_panel=_SEARCH,
            show_default=False,
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
        typer.Option("--channels", "-C", help="Initial channels C. \\[default: 16 (paper)]", rich_help_panel=_NET),
    ] = None,
    cells_per_stage: Annotated[
        int | None,
        typer.Option(
            "--cells-per-stage",
            "-N",
            help="Normal cells per stage N. \\[default: 2 (paper); 1 for digits]",
            rich_help_panel=_NET,
        ),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(help="Resize inputs to this size. \\[default: native; 8 for digits]", rich_help_panel=_NET),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs. \\[default: from --recipe]", rich_help_panel=_SEARCH)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Batch size of each step (train and valid). \\[default: from --recipe; 8 for digits]",
            rich_help_panel=_SEARCH,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            help="W learning rate, cosine to --lr-min. \\[default: 0.025 (paper); 0.05 for digits]",
            rich_help_panel=_SEARCH,
        ),
    ] = None,
    lr_min: Annotated[float | None, typer.Option(help="\\[default: 0.001 (paper)]", rich_help_panel=_SEARCH)] = None,
    momentum: Annotated[float | None, typer.Option(help="\\[default: 0.9 (paper)]", rich_help_panel=_SEARCH)] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="W weight decay. \\[default: from --recipe]", rich_help_panel=_SEARCH)
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
            help="Clip the weights' gradient norm (0: off). \\[default: 5 (2019 code)]", rich_help_panel=_SEARCH
        ),
    ] = None,
    arch_lr: Annotated[
        float | None,
        typer.Option(
            help="Adam learning rate of the alphas. \\[default: 3e-4 (paper); 3e-3 for digits]",
            rich_help_panel=_SEARCH,
        ),
    ] = None,
    arch_beta1: Annotated[
        float | None, typer.Option(help="\\[default: 0.5 (2019 code)]", rich_help_panel=_SEARCH)
    ] = None,
    arch_beta2: Annotated[
        float | None, typer.Option(help="\\[default: 0.999 (2019 code)]", rich_help_panel=_SEARCH)
    ] = None,
    arch_weight_decay: Annotated[
        float | None, typer.Option(help="\\[default: 1e-3 (paper)]", rich_help_panel=_SEARCH)
    ] = None,
    tau_max: Annotated[
        float | None,
        typer.Option(help="Gumbel temperature at the first epoch. \\[default: 10 (paper)]", rich_help_panel=_SEARCH),
    ] = None,
    tau_min: Annotated[
        float | None,
        typer.Option(help="... at the last epoch (linear). \\[default: from --recipe]", rich_help_panel=_SEARCH),
    ] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the 50/50 train/valid split (saved in split.json). \\[default: --seed]", rich_help_panel=_RUN
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="DataLoader workers for folder: datasets. \\[default: 0]", rich_help_panel=_RUN)
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Best of K: search with seeds --seed .. --seed+K-1 (PARENT/seed-<s>, one shared split), train each "
                "derived cell briefly on the train half, rank them by valid-half top-1, keep the winner "
                "(paper Sec. 4.2: 4 seeds, following DARTS)."
            ),
            rich_help_panel=_SELECT,
        ),
    ] = None,
    select_epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "Epochs of that training, with the data set's `gdas train` recipe. "
                "\\[default: 100 (DARTS); 2 for digits]"
            ),
            rich_help_panel=_SELECT,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write the final genotype JSON here (atomically).", rich_help_panel=_RUN
        ),
    ] = None,
    run: RunOptions = RunOptions(),
) -> None:
    """Search a CNN cell with GDAS into a run directory.

    Writes config.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl, split.json, checkpoint/last and \
checkpoint/best, and at the end genotype.json. Every value of --recipe can be overridden.

    The built-in `digits` set has its own demo recipe (C=16, N=1, xautodl's layout with its BN-ReLU head, 8x8 \
inputs, batch 8, lr 0.05, arch lr 3e-3: search/config.py says why), so 2 epochs learn in about half a minute \
on a laptop CPU; every value can be overridden. The valid top-1 reported is that of the A steps (batches of \
the valid half, train_arch_top1 in metrics.jsonl).

    Examples:

      gdas search cnn --frc --dataset digits --epochs 2

      gdas search cnn --frc --data-dir ~/data

      gdas search cnn --recipe xautodl --data-dir ~/data

      gdas search cnn --frc --dataset digits --epochs 2 --seeds 2 --run-dir runs/best-of-2

      gdas search cnn --resume runs/search-cifar10-20260101-120000
    """
    from ..engine import resume_settings
    from ..search.cnn_task import SearchTask, run_search
    from ..search.config import SearchConfig, resolve_config
    from ..search.seeds import is_seeds_run

    betas = None
    if arch_beta1 is not None or arch_beta2 is not None:
        betas = [0.5 if arch_beta1 is None else arch_beta1, 0.999 if arch_beta2 is None else arch_beta2]
    overrides = {
        "data_dir": data_dir,
        "frc": frc,
        "sampling": sampling,
        "layout": layout,
        "channels": channels,
        "cells_per_stage": cells_per_stage,
        "image_size": image_size,
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
    if run.resume is not None and is_seeds_run(run.resume):
        given = run.typed(
            **{k: v for k, v in overrides.items() if k != "arch_betas"},
            dataset=dataset,
            recipe=recipe,
            seeds=seeds,
            select_epochs=select_epochs,
        )
        _check_output(output, run)
        _resume_seeds(run.resume, given, output, run.quiet)
        return
    if run.resume is not None and seeds is not None:
        raise GdasError(f"--seeds: {run.resume} is a single search run, not the parent folder of a --seeds search")
    if select_epochs is not None and seeds is None:
        raise GdasError("--select-epochs: only with --seeds K (it sets how the K searched cells are ranked)")
    if run.resume is not None:
        given = run.typed(**{k: v for k, v in overrides.items() if k != "arch_betas"}, dataset=dataset, recipe=recipe)
        if betas is not None:
            given["arch_betas"] = betas
        saved, engine = resume_settings(run.resume, SearchTask.kind, given, _SEARCH_RESUME_SAFE, network="cnn")
        config = SearchConfig.from_dict(saved, str(run.resume / "config.json"))
    else:
        for key in ("seed", "limit_train_batches"):
            overrides[key] = getattr(run, key) if key in run.explicit else None
        config = resolve_config(recipe or "paper", dataset or "cifar10", overrides)
        engine = run.engine_config(
            epochs=config.epochs,
            run_name=f"search-{run_slug(config.dataset)}",
            resume_hint="gdas search cnn --resume {run_dir}",
        )
        engine.seed, engine.limit_train_batches = config.seed, config.limit_train_batches or 0
        if seeds is not None:
            _check_output(output, run)
            _new_seeds(config, engine, seeds, select_epochs, output)
            return
    _check_output(output, run)
    result = run_until_interrupted(lambda: run_search(config, engine, resume=run.resume is not None))
    _finish(result, output, run.quiet)


# a resumed search may also change where its data is and how it is read
_SEARCH_RESUME_SAFE = frozenset({"data_dir", "workers"})


def _check_output(output: Path | None, run: RunOptions) -> None:
    """-o is checked before the search starts, not after it ran for hours."""
    from ..rundir import guard_output

    if output is not None:
        guard_output(output, reads=[p for p in (run.run_dir, run.resume) if p is not None])


def _new_seeds(config: Any, engine: Any, seeds: int, select_epochs: int | None, output: Path | None) -> None:
    """`--seeds K`: the parent folder is --run-dir (default runs/search-<dataset>-seeds-<time>)."""
    from ..engine import default_run_dir
    from ..search.cnn_task import check_search
    from ..search.seeds import new_plan

    check_search(config)
    plan = new_plan(config, engine, seeds, select_epochs)
    parent = Path(engine.run_dir) if engine.run_dir else default_run_dir(f"{engine.run_name}-seeds")
    _run_seeds(plan, parent, False, {}, output, engine.quiet)


def _resume_seeds(parent: Path, given: dict[str, Any], output: Path | None, quiet: bool) -> None:
    from ..search.seeds import SeedsPlan, check_resume

    plan = SeedsPlan.read(parent)
    check_resume(plan, parent, given)
    _run_seeds(plan, parent, True, given, output, quiet or plan.engine.quiet)


def _run_seeds(plan: Any, parent: Path, resume: bool, given: dict[str, Any], output: Path | None, quiet: bool) -> None:
    from ..search.seeds import run_seeds

    def say(text: str) -> None:
        if not quiet:
            err_console.print(text, markup=False, highlight=False)

    ranking = run_until_interrupted(lambda: run_seeds(plan, parent, resume=resume, overrides=given, say=say))
    if not quiet:
        console.print(_ranking_table(ranking))
    _finish({"run_dir": str(parent)}, output, quiet)


def _ranking_table(ranking: dict[str, Any]) -> Table:
    from ..genotype import Genotype

    table = Table(title=f"best of {len(ranking['seeds'])} seeds: {ranking['procedure']}", title_justify="left")
    for column in ("rank", "seed", "normal cell", "valid top-1", "params", "search A-step top-1"):
        table.add_column(column, overflow="fold")
    for rank, row in enumerate(ranking["seeds"], start=1):
        cell = Genotype.from_dict(row["genotype"]).normal
        nodes = " | ".join(" ".join(f"{edge.op}({edge.input})" for edge in node) for node in cell.nodes) if cell else ""
        arch = row.get("search_arch_top1")
        table.add_row(
            str(rank),
            str(row["seed"]),
            nodes,
            f"{row['valid_top1']:.2f}%",
            f"{row['params'] / 1e6:.3f}M",
            "" if arch is None else f"{arch:.2f}%",
        )
    return table


def _finish(result: dict[str, Any], output: Path | None, quiet: bool) -> None:
    """Copy genotype.json to -o (atomically) and say where the result is: one wording for both searches."""
    from ..refs import load_genotype
    from ..rundir import RunDir
    from ..search.source import write_genotype

    genotype_path = RunDir(Path(result["run_dir"])).genotype_file
    if output is not None:
        write_genotype(load_genotype(genotype_path), output)
    if quiet:
        return
    last = result.get("last") or {}
    best = f"  best {result['best_metric']} {result['best']:.4f}" if result.get("best") is not None else ""
    if "train_arch_top1" in last and result.get("best") is not None:
        # a CNN search's A steps run on valid-half batches: their top-1 is its validation accuracy
        top1 = f"last {last['train_arch_top1']:.2f}%, best {result['best']:.2f}%"
        best = f"  valid top-1 of the A steps (train_arch_top1): {top1}"
    console.print(
        f"search finished: {result['run_dir']}{best}\ngenotype: {output or genotype_path}",
        highlight=False,
        markup=False,
    )


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
        int | None, typer.Option(help="Epochs. \\[default: 200 (paper); 3 for demo-text]", rich_help_panel=_RNN)
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Training batch size (streams). \\[default: 128 (paper; the 2019 code: 256)]", rich_help_panel=_RNN
        ),
    ] = None,
    eval_batch_size: Annotated[
        int | None, typer.Option(help="Validation batch size. \\[default: 10 (2019 code)]", rich_help_panel=_RNN)
    ] = None,
    bptt: Annotated[
        int | None, typer.Option(help="Base BPTT length. \\[default: 35 (paper)]", rich_help_panel=_RNN)
    ] = None,
    emsize: Annotated[
        int | None, typer.Option(help="Embedding = hidden size. \\[default: 300 (paper)]", rich_help_panel=_RNN)
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help="Nodes in the recurrent cell. \\[default: 8 (2019 code, DARTS-RNN)]", rich_help_panel=_RNN),
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
        ),
    ] = None,
    arch_lr: Annotated[
        float | None,
        typer.Option(help="Adam learning rate of the alphas. \\[default: 3e-3 (paper)]", rich_help_panel=_RNN),
    ] = None,
    tau_max: Annotated[
        float | None,
        typer.Option(help="Gumbel temperature at the first epoch. \\[default: 10 (2019 code)]", rich_help_panel=_RNN),
    ] = None,
    tau_min: Annotated[
        float | None,
        typer.Option(help="... at the last epoch (linear). \\[default: 1 (2019 code)]", rich_help_panel=_RNN),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Also write the final genotype JSON here (atomically).", rich_help_panel=_RUN
        ),
    ] = None,
    run: RunOptions = RunOptions(),
) -> None:
    """Search a recurrent cell with GDAS (DARTS-RNN space, 8 nodes, T=1 derive).

    Writes config.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl, checkpoint/{last,best} and,
    at the end, genotype.json (the epoch with the lowest validation loss).

    Examples:

      gdas search rnn --dataset demo-text -o my_rnn.json

      gdas search rnn --dataset ptb --data-dir ~/data/ptb

      gdas search rnn --resume runs/search-rnn-ptb-20260101-120000
    """
    from ..engine import config_from_dict, resume_settings
    from ..search.rnn_task import LMSearchConfig, RNNSearchTask, resolve_search_config, run_rnn_search

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
    if run.resume is not None:
        given = run.typed(dataset=dataset, **values)
        saved, engine = resume_settings(run.resume, RNNSearchTask.kind, given, frozenset({"data_dir"}), network="rnn")
        config = config_from_dict(LMSearchConfig, saved, str(run.resume / "config.json"))
    else:
        seed = run.seed if "seed" in run.explicit else None
        config = resolve_search_config(dataset or "ptb", {**values, "seed": seed})
        engine = run.engine_config(
            epochs=config.epochs,
            run_name=f"search-rnn-{run_slug(config.dataset)}",
            resume_hint="gdas search rnn --resume {run_dir}",
        )
    _check_output(output, run)
    result = run_until_interrupted(lambda: run_rnn_search(config, engine, resume=run.resume is not None))
    _finish(result, output, run.quiet)


app.command("rnn")(with_run_options(rnn))
