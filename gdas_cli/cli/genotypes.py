"""`gdas genotypes list|show|info|plot`: browse the zoo and measure the network a cell builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import GdasError
from ..genotype import Genotype, describe_cell, zoo_genotypes
from ..refs import load_genotype
from ._app import make_app
from ._output import console, print_json

app = make_app(
    "Browse published and searched genotypes.\n\n"
    "Examples:\n\n"
    "  gdas genotypes list\n\n"
    "  gdas genotypes show gdas_frc\n\n"
    "  gdas genotypes info gdas --net imagenet --json\n\n"
    "  gdas genotypes plot gdas_frc -o cell.png"
)

RefArg = Annotated[
    str, typer.Argument(help="Zoo name, name@version, a genotype JSON path, or hf-hub:org/repo\\[@rev].")
]


@app.command("list")
def list_genotypes(
    kind: Annotated[str | None, typer.Option(help="Only cnn or rnn genotypes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the genotypes shipped with gdas (newest version last)."""
    if kind not in (None, "cnn", "rnn"):
        raise GdasError(f"--kind: {kind!r} must be cnn or rnn")
    genotypes = [g for g in zoo_genotypes() if kind is None or g.kind == kind]
    if as_json:
        print_json([_summary(g) for g in genotypes])
        return
    table = Table("name", "version", "kind", "source", title="gdas genotypes")
    for g in genotypes:
        row = _summary(g)
        table.add_row(row["name"], row["version"], row["kind"], row["source"])
    console.print(table)


def _summary(genotype: Genotype) -> dict[str, str]:
    prov = genotype.provenance
    source = prov.get("original_name", "") + (f" ({prov['table']})" if "table" in prov else "")
    return {"name": genotype.name, "version": genotype.version, "kind": genotype.kind, "source": source.strip()}


@app.command("show")
def show(ref: RefArg) -> None:
    """Print a genotype's cells, one node per line."""
    genotype = load_genotype(ref)
    console.print(
        f"[bold]{genotype.ref}[/bold]  kind={genotype.kind}  space={genotype.space}  "
        f"derive_rule={genotype.derive_rule}",
        highlight=False,
    )
    for role, cell in genotype.cells().items():
        console.print(f"{role}:", style="bold", highlight=False)
        for line in describe_cell(cell, genotype.kind):
            console.print(f"  {line}", highlight=False, markup=False)
    for key, value in genotype.provenance.items():
        console.print(f"{key}: {value}", highlight=False, markup=False)


@app.command("info")
def info(
    ref: RefArg,
    net: Annotated[str, typer.Option(help="cifar10, cifar100 or imagenet.")] = "cifar10",
    channels: Annotated[int | None, typer.Option("--channels", "-C", min=2, help="Initial channels C.")] = None,
    layers: Annotated[int | None, typer.Option(min=3, help="Number of cells.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Parameters and mult-adds of the network a CNN genotype builds, counted as the paper counts them.

    Defaults are the paper's widths: CIFAR C=36 with 20 cells; ImageNet 14 cells with C=50 (52 when
    the genotype uses the fixed reduction cell).
    """
    from ..metrics import count_mult_adds, count_parameters
    from ..models import build_network, check_frc_channels, default_args

    nets = {"cifar10": ("cifar", 10, 32), "cifar100": ("cifar", 100, 32), "imagenet": ("imagenet", 1000, 224)}
    if net not in nets:
        raise GdasError(f"--net: {net!r} must be one of {', '.join(nets)}")
    genotype = load_genotype(ref)
    if genotype.kind != "cnn":
        raise GdasError(f"{ref}: a {genotype.kind} genotype builds no CNN; use a cnn genotype")
    family, classes, size = nets[net]
    args = default_args(genotype, family, classes)
    args = type(args)(**{**args.to_dict(), "C": channels or args.C, "layers": layers or args.layers})
    check_frc_channels(genotype, args.C)
    model = build_network(genotype, args)
    params, mult_adds = count_parameters(model), count_mult_adds(model, (1, 3, size, size))
    result = {
        "genotype": genotype.ref,
        "net": net,
        "C": args.C,
        "layers": args.layers,
        "params": params,
        "mult_adds": mult_adds,
    }
    if as_json:
        print_json(result)
        return
    console.print(
        f"{genotype.ref} on {net} (C={args.C}, {args.layers} cells): "
        f"{params / 1e6:.2f}M params, {mult_adds / 1e6:.1f}M mult-adds",
        highlight=False,
    )


@app.command("plot")
def plot(
    ref: RefArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write: .png, .svg or .pdf.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
) -> None:
    """Draw the genotype's cells as the paper's Fig. 4 does."""
    from ..plot import plot_genotype
    from ..rundir import guard_output

    guard_output(output, overwrite=overwrite, reads=[Path(ref)] if Path(ref).exists() else [])
    genotype = load_genotype(ref)
    plot_genotype(genotype, output)
    console.print(f"wrote {output}", highlight=False)
