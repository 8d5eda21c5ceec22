"""`gdas search cnn|rnn`: run a GDAS search into a run directory."""

from __future__ import annotations

from ._app import make_app

app = make_app(
    "Search a cell with GDAS.\n\n"
    "Examples:\n\n"
    "  gdas search cnn --frc --dataset digits --epochs 2\n\n"
    "  gdas search rnn --dataset ptb --data-dir ~/data/ptb"
)


# ------------------------------------------------------------------------------------------ search cnn

import typer  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional  # noqa: E402

_SEARCH = "Search (paper Alg. 1)"
_NET = "Supernet"
_RUN = "Run"


@app.command("cnn")
def cnn(
    dataset: Annotated[Optional[str], typer.Option(help="cifar10, cifar100, digits (built-in demo) or folder:PATH. \\[default: cifar10]", rich_help_panel=_RUN)] = None,
    data_dir: Annotated[Optional[str], typer.Option(help="Where the CIFAR files are. \\[default: data]", rich_help_panel=_RUN)] = None,
    frc: Annotated[Optional[bool], typer.Option("--frc/--no-frc", help="Use the fixed reduction cell; search only the normal cell. Needs C % 8 == 0.", rich_help_panel=_NET, show_default=False)] = None,
    recipe: Annotated[Optional[str], typer.Option(help="\\[default: paper] paper (240 epochs, batch 128, wd 3e-4, tau 10->1, 8 cells) or xautodl (250 epochs, batch 256, wd 5e-4, nesterov, tau 10->0.1, 6 cells, batch sampling).", rich_help_panel=_SEARCH, show_default=False)] = None,
    sampling: Annotated[Optional[str], typer.Option(help="cell (a draw per cell per forward: the 2019 code), batch (one per cell type per forward: xautodl), sample (one normal and one reduction cell per example: the paper's text), sample_cell (a draw per cell per example), darts (softmax over all ops), gdas_all_ops (cell's draws, every op run and weighted: the paper's run without the acceleration step). \\[default: from --recipe]", rich_help_panel=_SEARCH)] = None,
    layout: Annotated[Optional[str], typer.Option(help="paper (N-R-N-R-N cells, GAP + linear) or xautodl (N-R-(N-1)-R-(N-1), BN-ReLU head). \\[default: from --recipe]", rich_help_panel=_NET)] = None,
    channels: Annotated[Optional[int], typer.Option("--channels", "-C", help="Initial channels C. \\[default: 16; 8 for digits]", rich_help_panel=_NET)] = None,
    cells_per_stage: Annotated[Optional[int], typer.Option("--cells-per-stage", "-N", help="Normal cells per stage N. \\[default: 2; 1 for digits]", rich_help_panel=_NET)] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Resize inputs to this size. \\[default: native; 16 for digits]", rich_help_panel=_NET)] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs. \\[default: from --recipe]", rich_help_panel=_SEARCH)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size of each step (train and valid). \\[default: from --recipe; 64 for digits]", rich_help_panel=_SEARCH)] = None,
    lr: Annotated[Optional[float], typer.Option(help="W learning rate, cosine to --lr-min. \\[default: 0.025]", rich_help_panel=_SEARCH)] = None,
    lr_min: Annotated[Optional[float], typer.Option(help="\\[default: 0.001]", rich_help_panel=_SEARCH)] = None,
    momentum: Annotated[Optional[float], typer.Option(help="\\[default: 0.9]", rich_help_panel=_SEARCH)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="W weight decay. \\[default: from --recipe]", rich_help_panel=_SEARCH)] = None,
    nesterov: Annotated[Optional[bool], typer.Option("--nesterov/--no-nesterov", help="\\[default: from --recipe]", rich_help_panel=_SEARCH, show_default=False)] = None,
    grad_clip: Annotated[Optional[float], typer.Option(help="Clip the weights' gradient norm (0: off). \\[default: 5]", rich_help_panel=_SEARCH)] = None,
    arch_lr: Annotated[Optional[float], typer.Option(help="Adam learning rate of the alphas. \\[default: 3e-4]", rich_help_panel=_SEARCH)] = None,
    arch_beta1: Annotated[Optional[float], typer.Option(help="\\[default: 0.5]", rich_help_panel=_SEARCH)] = None,
    arch_beta2: Annotated[Optional[float], typer.Option(help="\\[default: 0.999]", rich_help_panel=_SEARCH)] = None,
    arch_weight_decay: Annotated[Optional[float], typer.Option(help="\\[default: 1e-3]", rich_help_panel=_SEARCH)] = None,
    tau_max: Annotated[Optional[float], typer.Option(help="Gumbel temperature at the first epoch. \\[default: 10]", rich_help_panel=_SEARCH)] = None,
    tau_min: Annotated[Optional[float], typer.Option(help="... at the last epoch (linear). \\[default: from --recipe]", rich_help_panel=_SEARCH)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of weights, alphas, sampling and batches. \\[default: 0]", rich_help_panel=_RUN)] = None,
    split_seed: Annotated[Optional[int], typer.Option(help="Seed of the 50/50 train/valid split (saved in split.json). \\[default: --seed]", rich_help_panel=_RUN)] = None,
    limit_train_batches: Annotated[Optional[int], typer.Option(help="Stop each epoch after this many steps (quick trials).", rich_help_panel=_RUN)] = None,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader workers for folder: datasets. \\[default: 0]", rich_help_panel=_RUN)] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory. \\[default: runs/search-<dataset>-<time>]", rich_help_panel=_RUN)] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory from its last checkpoint.", rich_help_panel=_RUN)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.", rich_help_panel=_RUN)] = "auto",
    precision: Annotated[Optional[str], typer.Option(help="fp32, bf16, fp16 or amp. \\[default: fp32]", rich_help_panel=_RUN)] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Deterministic GPU kernels (exact resume on GPU).", rich_help_panel=_RUN)] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Also checkpoint every N steps (0: at epoch ends).", rich_help_panel=_RUN)] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or epoch lines.", rich_help_panel=_RUN)] = False,
) -> None:
    """Search a CNN cell with GDAS into a run directory.

    Writes config.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl, split.json, checkpoint/last and checkpoint/best, and at the end genotype.json. Every value of --recipe can be overridden.

    The built-in `digits` set defaults to a small supernet (C=8, N=1, 16x16 inputs, batch 64), so the demo runs in minutes on a laptop CPU; override with -C, -N, --image-size, --batch-size.

    Examples:

      gdas search cnn --frc --dataset digits --epochs 2

      gdas search cnn --frc --data-dir ~/data

      gdas search cnn --recipe xautodl --data-dir ~/data

      gdas search cnn --resume runs/search-cifar10-20260101-120000
    """
    from ..engine import EngineConfig, RunInterrupted
    from ..errors import GdasError
    from ..search.config import resolve_config
    from ..search.task import GENOTYPE_FILE, resume_config, run_search
    from ._output import console, print_error

    betas = None
    if arch_beta1 is not None or arch_beta2 is not None:
        betas = (0.5 if arch_beta1 is None else arch_beta1, 0.999 if arch_beta2 is None else arch_beta2)
    overrides = {
        "data_dir": data_dir, "frc": frc, "sampling": sampling, "layout": layout, "channels": channels,
        "cells_per_stage": cells_per_stage, "image_size": image_size, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "lr_min": lr_min, "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov,
        "grad_clip": grad_clip, "arch_lr": arch_lr, "arch_betas": betas, "arch_weight_decay": arch_weight_decay,
        "tau_max": tau_max, "tau_min": tau_min, "seed": seed, "split_seed": split_seed,
        "limit_train_batches": limit_train_batches, "workers": workers,
    }
    if resume is not None:
        if run_dir is not None and run_dir != resume:
            raise GdasError("--run-dir: give either --run-dir or --resume, not both")
        config, engine = resume_config(resume, {**overrides, "dataset": dataset, "recipe": recipe},
                                       {"precision": precision, "deterministic": deterministic or None})
        engine.quiet, engine.checkpoint_every = quiet, checkpoint_every or engine.checkpoint_every
        engine.device = device if device != "auto" else engine.device
        engine.run_dir = str(resume)
    else:
        config = resolve_config(recipe or "paper", dataset or "cifar10", overrides)
        engine = EngineConfig(
            epochs=config.epochs, run_dir=str(run_dir) if run_dir else None,
            run_name=f"search-{_slug(config.dataset)}", seed=config.seed, device=device,
            precision=precision or "fp32", deterministic=deterministic, checkpoint_every=checkpoint_every,
            limit_train_batches=config.limit_train_batches or 0, quiet=quiet,
        )
    engine.resume_hint = f"gdas search cnn --resume {engine.run_dir}" if engine.run_dir else ""
    try:
        result = run_search(config, engine, resume=resume is not None)
    except RunInterrupted as stop:
        print_error(str(stop))
        raise typer.Exit(130) from None
    genotype_path = Path(result["run_dir"]) / GENOTYPE_FILE
    if not quiet:
        console.print(f"search finished: {result['run_dir']}\ngenotype: {genotype_path}", highlight=False)


def _slug(dataset: str) -> str:
    """A run-folder-safe name for a dataset spec (folder:PATH -> folder-<last part>)."""
    if dataset.startswith("folder:"):
        return "folder-" + "".join(c if c.isalnum() else "-" for c in Path(dataset[7:]).name)
    return dataset
