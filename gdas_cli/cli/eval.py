"""`gdas eval RUN_DIR|CHECKPOINT`: test error, loss, parameters, mult-adds and images/s of a trained network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..limits import BATCH, COUNT
from ..progress import quiet as quiet_progress
from ._choices import Checkpoint, Device, Split
from ._output import console, print_json


def eval_command(
    path: Annotated[
        Path | None, typer.Argument(help="A training run folder, a checkpoint folder or a model.safetensors file.")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset to evaluate on (default: the run's own).")] = None,
    split: Annotated[
        Split,
        typer.Option(help="test, valid (image runs: the held-out --val-split images) or train (without augmentation)."),
    ] = Split.test,
    data_dir: Annotated[Path | None, typer.Option(help="Where the data is (default: the run's --data-dir).")] = None,
    genotype: Annotated[
        str | None,
        typer.Option("--genotype", "-g", help="Evaluate the weights as this genotype (strict: they must fit it)."),
    ] = None,
    checkpoint: Annotated[
        Checkpoint | None,
        typer.Option(
            help="For a run folder: last (the final epoch) or best (best validation top-1; runs with --val-split). "
            "\\[default: the one the run chose: best with --val-split, else last]"
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.", callback=BATCH.check)] = 256,
    test_batch_size: Annotated[
        int | None,
        typer.Option(
            help="LM runs: test streams (default: the run's, 10); 1 is the 2019 code's paper-exact perplexity "
            "(every token sees all the text before it), several times slower.",
            callback=BATCH.check,
        ),
    ] = None,
    device: Annotated[Device, typer.Option(help="auto (cuda if available), cpu or cuda.")] = Device.auto,
    limit_batches: Annotated[
        int, typer.Option(help="At most N batches (0: all; for quick checks).", callback=COUNT.check)
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    from_hub: Annotated[
        str | None,
        typer.Option(
            "--from-hub",
            help=(
                "Evaluate a published model instead: org/name or org/name@revision (a tag, branch or commit), "
                "downloaded to the Hub cache or read from it when offline."
            ),
        ),
    ] = None,
) -> None:
    """Evaluate a trained network: top-1/top-5 accuracy, loss, parameters and mult-adds as the paper counts them.

    A run folder is evaluated at the checkpoint the run chose (the one `gdas export` publishes: best with \
--val-split, chosen on the validation split, else the final epoch); images are sized and normalised as \
the weights were trained. Parameters exclude the auxiliary head; mult-adds count conv and linear layers \
of one image.

    Examples:

      gdas eval runs/train-cifar10-20260101-120000 --checkpoint best

      gdas eval --from-hub org/gdas-frc-cifar10@v1 --data-dir ~/data --json

      gdas eval runs/lm-ptb-20260101-120000 --split test --test-batch-size 1
    """
    from ..errors import GdasError
    from ..evaluate import evaluate_checkpoint, evaluate_hub_model

    options: dict[str, Any] = {
        "dataset": dataset,
        "split": split.value,
        "data_dir": data_dir,
        "genotype": genotype,
        "which": checkpoint.value if checkpoint is not None else None,
        "batch_size": batch_size,
        "device": device.value,
        "limit_batches": limit_batches,
        "test_batch_size": test_batch_size,
    }
    with quiet_progress(quiet):
        if path is not None and from_hub is None:
            result = evaluate_checkpoint(path, **options)
        elif from_hub is not None and path is None:  # same options; fetches the repo, verifies it, then as above
            result = evaluate_hub_model(from_hub, **options)
        else:
            raise GdasError(
                "gdas eval: give a run folder or checkpoint, or --from-hub org/name[@revision] (one of them)"
            )
    if as_json:
        print_json(result)
        return
    if "images" not in result:  # another kind of run (language model): show what it reports
        for key, value in result.items():
            console.print(f"{key}: {value}", highlight=False, markup=False)
        return
    split = result["split"]
    console.print(
        f"{result['genotype']} on {result['dataset']} {split} ({result['images']} images): "
        f"{split}_top1 {result[f'{split}_top1']:.2f}%, {split}_top5 {result[f'{split}_top5']:.2f}%, "
        f"{split}_loss {result[f'{split}_loss']:.4f}; "
        f"{result['params'] / 1e6:.2f}M params, {result['mult_adds'] / 1e6:.1f}M mult-adds; "
        f"{result['images_per_s']:.0f} images/s on {result['device']}",
        highlight=False,
        markup=False,
    )
    if result.get("checkpoint_choice"):
        console.print(
            f"checkpoint: {result['checkpoint_choice']}; measured on the {result['split']} split",
            highlight=False,
            markup=False,
        )
