"""`gdas eval RUN_DIR|CHECKPOINT`: test error, loss, parameters, mult-adds and images/s of a trained network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._output import console, print_json


def eval_command(
    path: Annotated[
        Path | None, typer.Argument(help="A training run folder, a checkpoint folder or a model.safetensors file.")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset to evaluate on (default: the run's own).")] = None,
    split: Annotated[
        str, typer.Option(help="test or train (train without augmentation); LM runs: valid or test.")
    ] = "test",
    data_dir: Annotated[Path | None, typer.Option(help="Where the data is (default: the run's --data-dir).")] = None,
    genotype: Annotated[
        str | None,
        typer.Option("--genotype", "-g", help="Evaluate the weights as this genotype (strict: they must fit it)."),
    ] = None,
    checkpoint: Annotated[
        str,
        typer.Option(
            help="For a run folder: last (the final epoch) or best (best validation top-1; runs with --val-split)."
        ),
    ] = "last",
    batch_size: Annotated[int, typer.Option(help="Evaluation batch size.")] = 256,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    limit_batches: Annotated[int, typer.Option(help="At most N batches (0: all; for quick checks).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
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
    """Evaluate a trained network: top-1/top-5 error, loss, parameters and mult-adds as the paper counts them.

    Parameters exclude the auxiliary head; mult-adds count conv and linear layers of one image.
    """
    from ..errors import GdasError
    from ..evaluate import evaluate_checkpoint

    if path is not None and from_hub is None:
        result = evaluate_checkpoint(
            path,
            dataset=dataset,
            split=split,
            data_dir=data_dir,
            genotype=genotype,
            which=checkpoint,
            batch_size=batch_size,
            device=device,
            limit_batches=limit_batches,
        )
    elif from_hub is not None and path is None:  # same options; fetches the repo, verifies it, then as above
        from ..evaluate import evaluate_hub_model

        result = evaluate_hub_model(
            from_hub,
            dataset=dataset,
            split=split,
            data_dir=data_dir,
            genotype=genotype,
            which=checkpoint,
            batch_size=batch_size,
            device=device,
            limit_batches=limit_batches,
        )
    else:
        raise GdasError("gdas eval: give a run folder or checkpoint, or --from-hub org/name[@revision] (one of them)")
    if as_json:
        print_json(result)
        return
    if "top1_error" not in result:  # another kind of run (language model): show what it reports
        for key, value in result.items():
            console.print(f"{key}: {value}", highlight=False, markup=False)
        return
    console.print(
        f"{result['genotype']} on {result['dataset']} {result['split']} ({result['images']} images): "
        f"top-1 error {result['top1_error']:.2f}%, top-5 error {result['top5_error']:.2f}%, loss {result['loss']:.4f}; "
        f"{result['params'] / 1e6:.2f}M params, {result['mult_adds'] / 1e6:.1f}M mult-adds; "
        f"{result['images_per_s']:.0f} images/s on {result['device']}",
        highlight=False,
        markup=False,
    )
    if result.get("checkpoint_choice"):
        console.print(
            f"checkpoint: {result['checkpoint_choice']}; error measured on the {result['split']} split",
            highlight=False,
            markup=False,
        )
