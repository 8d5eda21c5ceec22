"""`gdas export SOURCE [-o DIR] [--format onnx|pt2] [--license ID] [--push-to-hub ORG/NAME --tag vX]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._choices import ExportFormat
from ._output import console, print_json

HELP = """Write a publishable model folder (and push it to the Hugging Face Hub as one tagged commit).

SOURCE is a training run directory (checkpoint/best, else checkpoint/last), a folder gdas export wrote or a zoo \
weights folder (checked as gdas eval checks it), a .safetensors checkpoint, or a genotype (JSON file, zoo name, \
hf-hub:org/name@rev) for a genotype-only repo.

Examples:

  gdas export runs/train-cifar10-0601 -o gdas-frc-cifar10

  gdas export runs/train-cifar10-0601 --push-to-hub my-org/gdas-frc-cifar10 --tag v1

  gdas export best.safetensors -o out --format onnx --format pt2 --license mit

  gdas export gdas-frc-cifar10 -o gdas-frc-cifar10-onnx --format onnx

  gdas export my_cell.json --push-to-hub my-org/my-cell --tag v1
"""


def export_command(
    source: Annotated[
        str, typer.Argument(help="Run directory, exported folder, .safetensors checkpoint, or genotype reference.")
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder to write (created).")] = None,
    formats: Annotated[
        list[ExportFormat] | None,
        typer.Option("--format", help="Also write onnx or pt2 (torch.export), each with a sidecar JSON (repeatable)."),
    ] = None,
    push_to_hub: Annotated[str | None, typer.Option("--push-to-hub", help="Upload to this Hub repo, org/name.")] = None,
    tag: Annotated[str | None, typer.Option(help="Tag the uploaded commit (the version users pin).")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the Hub repo as private.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --output folder.")] = False,
    dataset: Annotated[str | None, typer.Option(help="Data set named in the card, if the source does not say.")] = None,
    license: Annotated[
        str | None,
        typer.Option(help="License of the weights, a Hub license id such as mit or apache-2.0 (default: none stated)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    from ..export import ExportRequest, export

    request = ExportRequest(
        source=source,
        output=output,
        formats=tuple(dict.fromkeys(f.value for f in formats or ())),
        repo_id=push_to_hub,
        tag=tag,
        private=private,
        overwrite=overwrite,
        dataset=dataset,
        license=license,
    )
    result = export(request)
    if as_json:
        print_json(result.to_dict())
        return
    where = str(result.folder) if result.folder else "a temporary folder"
    console.print(f"wrote {where}: {', '.join(result.files)}", highlight=False)
    for fmt, info in result.exports.items():
        diff = f", max abs diff {info['max_abs_diff']:.1e}" if "max_abs_diff" in info else ""
        console.print(f"{fmt}: {info['file']} matches PyTorch ({info['checked']}{diff})", highlight=False)
    if result.push is not None:
        pinned = f"{result.push.repo_id}@{result.push.tag or result.push.commit}"
        console.print(
            f"pushed {result.push.repo_id} commit {result.push.commit[:12]}"
            + (f", tag {result.push.tag}" if result.push.tag else "")
            + f": {result.push.url}",
            highlight=False,
        )
        how = f"gdas eval --from-hub {pinned}" if result.source.weights else f"gdas genotypes show hf-hub:{pinned}"
        console.print(f"load it with: {how}", highlight=False)


export_command.__doc__ = HELP
