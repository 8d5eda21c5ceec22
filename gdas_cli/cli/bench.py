"""`gdas bench REF --nas-bench PATH`: a NAS-Bench-201 cell's recorded results in the benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import GdasError
from ..refs import load_genotype
from ._choices import BenchData, BenchHp, plain
from ._output import console, print_json


def bench(
    ref: Annotated[
        str,
        typer.Argument(
            help="A NAS-Bench-201 genotype: an arch string (|nor_conv_3x3~0|+|...|), a zoo name, a JSON path or "
            "hf-hub:org/repo\\[@rev]."
        ),
    ],
    nas_bench: Annotated[
        Path | None,
        typer.Option(
            help="The NATS-Bench topology benchmark: the NATS-tss-v1_0-3ffb9-simple folder or the "
            "NATS-tss-v1_0-3ffb9.pickle.pbz2 file. Its files are pickles: they are read only through the "
            "nats_bench API (pip install 'gdas-cli\\[nas-bench]') and only from this path; nothing is downloaded.",
        ),
    ] = None,
    dataset: Annotated[
        list[BenchData] | None,
        typer.Option(
            metavar="NAME",
            help="cifar10-valid, cifar10, cifar100 or ImageNet16-120 (repeat for several). \\[default: all four]",
        ),
    ] = None,
    hp: Annotated[
        BenchHp,
        typer.Option(metavar="EPOCHS", help="The benchmark's training schedule: 200 (epochs, the paper's) or 12."),
    ] = BenchHp.epochs_200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Look a NAS-Bench-201 cell up in the benchmark: train/valid/test top-1 per data set, params, FLOPs, latency.

    The accuracies are the mean over the benchmark's recorded seeds. The benchmark (gigabytes) is never
    downloaded: without --nas-bench one line says where it comes from.

    Examples:

      gdas bench '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|' \\
--nas-bench ~/NATS-tss-v1_0-3ffb9-simple

      gdas bench runs/search-cifar10/genotype.json --nas-bench ~/NATS-tss-v1_0-3ffb9-simple --dataset cifar100 --json
    """
    from ..bench import Bench
    from ..genotype import to_arch_str

    genotype = load_genotype(ref)
    if genotype.space != "nas-bench-201":
        raise GdasError(f"{ref}: a {genotype.space} genotype; the benchmark holds NAS-Bench-201 cells only")
    result = Bench.open(nas_bench).lookup(to_arch_str(genotype), plain(dataset) or None, hp.value)
    if as_json:
        print_json(result)
        return
    table = Table(title=f"{result['arch']}  (cell {result['index']}, {hp.value} epochs)", title_justify="left")
    for column in ("data set", "train top-1", "valid top-1", "test top-1", "params", "FLOPs", "latency"):
        table.add_column(column)
    for name, row in result["datasets"].items():
        accuracy = row["accuracy"]
        latency = row["latency_s"]
        table.add_row(
            name,
            *(f"{accuracy[split]:.2f}%" if split in accuracy else "-" for split in ("train", "valid", "test")),
            f"{row['params_M']:.3f}M",
            f"{row['flops_M']:.2f}M",
            "-" if latency is None else f"{latency * 1000:.2f} ms",
        )
    console.print(table)
