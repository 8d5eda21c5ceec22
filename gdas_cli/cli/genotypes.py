"""`gdas genotypes list|show|info|plot`: browse the zoo and measure the network a cell builds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ..errors import GdasError
from ..limits import CHANNELS, LAYERS  # torch-free
from ..refs import load_genotype  # torch-free (genotype.py; the Hub client only for hf-hub: refs)
from ._app import make_app
from ._choices import Kind, Net, ShowFormat
from ._output import console, print_json

if TYPE_CHECKING:
    from ..genotype import Genotype

app = make_app(
    "Browse published and searched genotypes.\n\n"
    "Examples:\n\n"
    "  gdas genotypes list\n\n"
    "  gdas genotypes show gdas_frc\n\n"
    "  gdas genotypes info gdas --net imagenet --json\n\n"
    "  gdas genotypes info gdas_rnn --net wt2\n\n"
    "  gdas genotypes plot gdas_frc -o cell.png"
)

RefArg = Annotated[
    str,
    typer.Argument(
        help="Zoo name, name@version, a genotype JSON path, hf-hub:org/repo\\[@rev], or a NAS-Bench-201 arch string."
    ),
]


@app.command("list")
def list_genotypes(
    kind: Annotated[Kind | None, typer.Option(help="Only the genotypes of this kind.")] = None,
    space: Annotated[
        str | None, typer.Option(help="Only the genotypes of this search space: darts, darts_rnn or nas-bench-201.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the genotypes shipped with gdas (newest version last).

    Examples:

      gdas genotypes list

      gdas genotypes list --space nas-bench-201

      gdas genotypes list --kind rnn --json
    """
    from ..genotype import zoo_genotypes
    from ..spaces import get_space

    if space is not None:
        get_space(space, "--space")
    genotypes = [
        g for g in zoo_genotypes() if (kind is None or g.kind == kind.value) and (space is None or g.space == space)
    ]
    if as_json:
        print_json([_summary(g) for g in genotypes])
        return
    table = Table("name", "version", "kind", "space", "source", title="gdas genotypes")
    for g in genotypes:
        row = _summary(g)
        table.add_row(row["name"], row["version"], row["kind"], row["space"], row["source"])
    console.print(table)


def _summary(genotype: Genotype) -> dict[str, str]:
    prov = genotype.provenance
    source = prov.get("original_name", "") + (f" ({prov['table']})" if "table" in prov else "")
    return {
        "name": genotype.name,
        "version": genotype.version,
        "kind": genotype.kind,
        "space": genotype.space,
        "source": source.strip(),
    }


@app.command("show")
def show(
    ref: RefArg,
    output_format: Annotated[
        ShowFormat,
        typer.Option(
            "--format",
            help="text (the cells, one node per line), arch-str (a NAS-Bench-201 cell as the benchmark writes it) or "
            "json (the genotype file, checked).",
        ),
    ] = ShowFormat.text,
) -> None:
    """Print a genotype's cells, one node per line (and check the file: a bad one is named with its problem).

    For a searched genotype each op is followed by its probability and its margin over the runner-up \
([p=0.214 +0.052]), and a line says how far the alphas moved from uniform.

    Examples:

      gdas genotypes show gdas_frc

      gdas genotypes show my_cell.json

      gdas genotypes show runs/search-nb201/genotype.json --format arch-str

      gdas genotypes show '|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    """
    from ..genotype import chosen_of, describe_cell, to_arch_str

    genotype = load_genotype(ref)
    if output_format == ShowFormat.arch_str:
        console.print(to_arch_str(genotype), highlight=False, markup=False)
        return
    if output_format == ShowFormat.json:
        typer.echo(genotype.to_json(), nl=False)
        return
    console.print(
        f"[bold]{genotype.ref}[/bold]  kind={genotype.kind}  space={genotype.space}  "
        f"derive_rule={genotype.derive_rule}",
        highlight=False,
    )
    for role, cell in genotype.cells().items():
        console.print(f"{role}:", style="bold", highlight=False)
        for line in describe_cell(cell, genotype.space, chosen_of(genotype, role)):
            console.print(f"  {line}", highlight=False, markup=False)
    for key, value in genotype.provenance.items():
        if key != "movement":
            console.print(f"{key}: {value}", highlight=False, markup=False)
    movement = genotype.provenance.get("movement")
    if isinstance(movement, dict) and "verdict" in movement:
        from ..movement import summary_line

        console.print(summary_line(movement), highlight=False, markup=False)


@app.command("info")
def info(
    ref: RefArg,
    net: Annotated[
        Net | None,
        typer.Option(
            metavar="NET",
            help="The network to count: cifar10 (default), cifar100 or imagenet for DARTS cells; cifar10, "
            "cifar100 or imagenet16-120 for NAS-Bench-201 cells (the benchmark's networks); ptb (default) or "
            "wt2 for recurrent cells.",
        ),
    ] = None,
    channels: Annotated[
        int | None, typer.Option("--channels", "-C", help="Initial channels C (cnn).", callback=CHANNELS.check)
    ] = None,
    layers: Annotated[
        int | None,
        typer.Option(
            help="Number of cells (DARTS; at least 3), or cells per stage (NAS-Bench-201).",
            callback=LAYERS.check,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Parameters and mult-adds of the network a genotype builds, counted as the paper counts them.

    Defaults are the paper's sizes: CIFAR C=36 with 20 cells; ImageNet 14 cells with C=50 (52 when
    the genotype uses the fixed reduction cell); language models emb = hid = 850 on PTB, 700 on WT2.

    Examples:

      gdas genotypes info gdas_frc

      gdas genotypes info gdas --net imagenet --json

      gdas genotypes info gdas_rnn --net wt2
    """
    from ..genotype import check_frc_channels, shipped_size

    genotype = load_genotype(ref)
    nets = genotype.search_space.info_nets
    name = net.value if net else nets[0]
    if name not in nets:
        raise GdasError(
            f"--net: {name!r}: a {genotype.kind} genotype of space {genotype.space} is counted on {', '.join(nets)}"
        )
    if genotype.recurrent is not None and (channels or layers):
        raise GdasError("--channels/--layers: a language model is counted at the paper's sizes only")
    if channels is not None:
        check_frc_channels(genotype, channels)
    result = shipped_size(genotype, name)
    if result is not None and (channels not in (None, result.get("C")) or layers not in (None, result.get("layers"))):
        result = None
    if result is None:  # not a zoo network at the paper's widths: build it and count
        from ..models.size import measure

        result = measure(genotype, name, C=channels, layers=layers)
    if as_json:
        print_json(result)
    elif "mult_adds" in result:
        console.print(
            f"{result['genotype']} on {name} (C={result['C']}, {result['layers']} cells): "
            f"{result['params'] / 1e6:.2f}M params, {result['mult_adds'] / 1e6:.1f}M mult-adds",
            highlight=False,
        )
    else:
        console.print(
            f"{result['genotype']} on {name} (emb = hid = {result['emsize']}, {result['vocab']:,} words): "
            f"{result['params'] / 1e6:.2f}M params",
            highlight=False,
        )


@app.command("plot")
def plot(
    ref: RefArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write: .png, .svg or .pdf.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: what was written.")] = False,
) -> None:
    """Draw the genotype's cells as the paper's Fig. 4 does.

    Examples:

      gdas genotypes plot gdas_frc -o cell.png

      gdas genotypes plot my_cell.json -o cell.svg
    """
    from ..plot import plot_genotype
    from ..rundir import guard_output

    guard_output(output, overwrite=overwrite, reads=[Path(ref)] if Path(ref).exists() else [])
    genotype = load_genotype(ref)
    plot_genotype(genotype, output)
    if as_json:
        print_json({"output": str(output), "genotype": genotype.ref})
        return
    console.print(f"wrote {output}", highlight=False, markup=False)
