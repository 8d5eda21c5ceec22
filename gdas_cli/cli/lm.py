"""`gdas search rnn` and `gdas train ptb|wt2|demo-text`: recurrent cells and language models.

Registers its commands on the `search` and `train` groups (imported from their modules).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from ._output import console, print_error
from .search import app as search_app
from .train import app as train_app

DataDir = Annotated[Optional[Path], typer.Option(help="Folder with the train/valid/test text files (ptb, wt2).")]
Epochs = Annotated[Optional[int], typer.Option(help="Epochs (default: the paper's; small for demo-text).")]
BatchSize = Annotated[Optional[int], typer.Option(help="Training batch size (streams).")]
EvalBatch = Annotated[Optional[int], typer.Option(help="Validation batch size (default 10).")]
Bptt = Annotated[Optional[int], typer.Option(help="Base BPTT length (default 35).")]
Emsize = Annotated[Optional[int], typer.Option(help="Embedding = hidden size.")]
Lr = Annotated[Optional[float], typer.Option(help="SGD learning rate (default 20).")]
Seed = Annotated[int, typer.Option(help="Random seed (weights, dropout, sampling, segment lengths).")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Precision = Annotated[str, typer.Option(help="fp32, bf16, fp16 or amp (mixed precision on GPUs).")]
RunDir = Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<name>-<time>).")]
Resume = Annotated[Optional[Path], typer.Option(help="Continue this run from its last checkpoint, with its saved settings.")]
CheckpointEvery = Annotated[int, typer.Option(min=0, help="Also checkpoint every N steps (0: at epoch ends).")]
LimitBatches = Annotated[int, typer.Option(min=0, help="At most N segments per epoch (0: all; for smoke runs).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or per-epoch lines.")]


def _engine_options(device: str, precision: str, run_dir: Path | None, checkpoint_every: int, limit: int,
                    quiet: bool, resume_hint: str) -> dict[str, Any]:
    return {"device": device, "precision": precision, "run_dir": str(run_dir) if run_dir else None,
            "checkpoint_every": checkpoint_every, "limit_train_batches": limit, "quiet": quiet,
            "resume_hint": resume_hint}


def _run(start: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run, turning Ctrl-C (checkpoint saved) into one line on stderr and exit code 130."""
    from ..engine import RunInterrupted

    try:
        return start()
    except RunInterrupted as stop:
        print_error(str(stop))
        sys.exit(130)


@search_app.command("rnn")
def search_rnn(
    dataset: Annotated[str, typer.Option(help="ptb, wt2 or demo-text (built in, no download).")] = "ptb",
    data_dir: DataDir = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    eval_batch_size: EvalBatch = None,
    bptt: Bptt = None,
    emsize: Emsize = None,
    steps: Annotated[Optional[int], typer.Option(help="Nodes in the recurrent cell (paper: 8).")] = None,
    sampling: Annotated[Optional[str], typer.Option(help="gdas (hard Gumbel, one path) or darts (softmax, all ops).")] = None,
    lr: Lr = None,
    arch_lr: Annotated[Optional[float], typer.Option(help="Adam learning rate of the alphas (default 3e-3).")] = None,
    tau_max: Annotated[Optional[float], typer.Option(help="Gumbel temperature at the first epoch (default 10).")] = None,
    tau_min: Annotated[Optional[float], typer.Option(help="Gumbel temperature at the last epoch (default 1).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    precision: Precision = "fp32",
    run_dir: RunDir = None,
    resume: Resume = None,
    checkpoint_every: CheckpointEvery = 0,
    limit_train_batches: LimitBatches = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the final genotype JSON here.")] = None,
    quiet: Quiet = False,
) -> None:
    """Search a recurrent cell with GDAS (DARTS-RNN space, 8 nodes, T=1 derive).

    Writes config.json, metrics.jsonl, alphas.jsonl, genotypes.jsonl, checkpoint/{last,best} and,
    at the end, genotype.json (the epoch with the lowest validation loss).

    Examples:

      gdas search rnn --dataset demo-text -o my_rnn.json

      gdas search rnn --dataset ptb --data-dir ~/data/ptb

      gdas search rnn --resume runs/search-rnn-ptb-20260101-120000
    """
    from ..lm import resolve_search_config, resume_run, run_rnn_search

    if resume is not None:
        _, result = _run(lambda: resume_run(resume, quiet=quiet))
    else:
        overrides = {"data_dir": str(data_dir) if data_dir else None, "epochs": epochs, "batch_size": batch_size,
                     "eval_batch_size": eval_batch_size, "bptt": bptt, "emsize": emsize, "steps": steps,
                     "sampling": sampling, "lr": lr, "arch_lr": arch_lr, "tau_max": tau_max, "tau_min": tau_min,
                     "seed": seed}
        config = resolve_search_config(dataset, overrides)
        engine = _engine_options(device, precision, run_dir, checkpoint_every, limit_train_batches, quiet,
                                 "gdas search rnn --resume {run_dir}")
        result = _run(lambda: run_rnn_search(config, engine))
    genotype_path = Path(result["run_dir"]) / "genotype.json"
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(genotype_path.read_text(encoding="utf-8"), encoding="utf-8")
    best = f"  best valid_loss {result['best']:.4f}" if result.get("best") is not None else ""
    console.print(f"search done: {result['run_dir']}{best}  genotype {output or genotype_path}",
                  highlight=False, markup=False)


def _train_command(dataset: str, summary: str) -> None:
    def train_lm(
        genotype: Annotated[Optional[str], typer.Option(help="Zoo name, name@version, JSON path or hf-hub: ref of an rnn genotype.")] = None,
        data_dir: DataDir = None,
        epochs: Epochs = None,
        batch_size: BatchSize = None,
        eval_batch_size: EvalBatch = None,
        test_batch_size: Annotated[Optional[int], typer.Option(help="Test batch size (default 1).")] = None,
        bptt: Bptt = None,
        emsize: Emsize = None,
        lr: Lr = None,
        weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay (PTB 8e-7, WT2 5e-7).")] = None,
        nonmono: Annotated[Optional[int], typer.Option(help="ASGD switch window (default 5).")] = None,
        seed: Seed = 0,
        device: Device = "auto",
        precision: Precision = "fp32",
        run_dir: RunDir = None,
        resume: Resume = None,
        checkpoint_every: CheckpointEvery = 0,
        limit_train_batches: LimitBatches = 0,
        test: Annotated[bool, typer.Option(help="Evaluate test perplexity of the best weights at the end.")] = True,
        quiet: Quiet = False,
    ) -> None:
        from ..engine import read_run_config
        from ..errors import GdasError
        from ..genotype import load_genotype
        from ..lm import evaluate_lm_run, resolve_train_config, resume_run, run_lm_training

        if resume is not None:
            _, result = _run(lambda: resume_run(resume, quiet=quiet))
        else:
            if genotype is None:
                raise GdasError(f"gdas train {dataset}: --genotype is required (e.g. --genotype gdas_rnn)")
            overrides = {"data_dir": str(data_dir) if data_dir else None, "epochs": epochs, "batch_size": batch_size,
                         "eval_batch_size": eval_batch_size, "test_batch_size": test_batch_size, "bptt": bptt,
                         "emsize": emsize, "lr": lr, "weight_decay": weight_decay, "nonmono": nonmono, "seed": seed}
            config = resolve_train_config(dataset, load_genotype(genotype), overrides)
            engine = _engine_options(device, precision, run_dir, checkpoint_every, limit_train_batches, quiet,
                                     f"gdas train {dataset} --resume {{run_dir}}")
            result = _run(lambda: run_lm_training(config, engine))
        line = f"training done: {result['run_dir']}"
        if result.get("best") is not None:
            line += f"  best valid_loss {result['best']:.4f}"
        if test:
            trained_on = read_run_config(Path(result["run_dir"])).get("device", "cpu")
            metrics = evaluate_lm_run(result["run_dir"], device=trained_on)
            line += (f"  valid ppl {metrics['valid_ppl']:.2f}  test ppl {metrics['test_ppl']:.2f}  "
                     f"params {metrics['params'] / 1e6:.2f}M")
        console.print(line, highlight=False, markup=False)

    train_lm.__doc__ = summary
    train_app.command(dataset)(train_lm)


_train_command("ptb", """Train the language model of an rnn genotype on Penn Treebank (paper: emb = hid = 850, 23M params).

    Examples:

      gdas train ptb --genotype gdas_rnn --data-dir ~/data/ptb

      gdas train ptb --resume runs/lm-ptb-20260101-120000
    """)
_train_command("wt2", """Train the language model of an rnn genotype on WikiText-2 (paper: emb = hid = 700, 33M params).

    Examples:

      gdas train wt2 --genotype gdas_rnn --data-dir ~/data/wikitext-2
    """)
_train_command("demo-text", """Train a small language model on the built-in demo-text corpus (Python's own docs; no download).

    Examples:

      gdas train demo-text --genotype gdas_rnn --epochs 2
    """)
