"""`gdas derive RUN_DIR|CHECKPOINT`: turn a search run's alphas into a versioned genotype JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..limits import COUNT, EPOCHS
from ._choices import Rule
from ._output import console, err_console, print_json


def derive(
    source: Annotated[
        Path, typer.Argument(help="A search run directory, a search checkpoint file in one, or a --seeds parent.")
    ],
    rule: Annotated[
        Rule | None,
        typer.Option(
            help="DARTS cells: paper (2 distinct inputs per node, the default) or pairs (xautodl's top-2 (op, input) "
            "pairs); NAS-Bench-201 cells: nb201 (argmax over all five ops, the released rule); RNN cells: rnn. "
            "\\[default: the space's first]"
        ),
    ] = None,
    epoch: Annotated[
        int | None,
        typer.Option(
            help="Derive from this epoch's alphas (run directory only; default: the epoch the run chose).",
            callback=EPOCHS.check,
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Genotype name.")] = "searched",
    version: Annotated[str, typer.Option(help="Genotype version (semantic).")] = "1.0.0",
    max_skip: Annotated[
        int | None,
        typer.Option(
            help="Keep at most this many skip_connect edges in the normal cell: the weakest (lowest skip "
            "probability) take their next-best op, as P-DARTS (ICCV 2019) does; recorded in the provenance.",
            callback=COUNT.check,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the genotype JSON here (default: print it).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --output file.")] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object: the genotype, where it was written, its rule and epoch."),
    ] = False,
) -> None:
    """Derive a genotype from the alphas of a GDAS search.

    Takes the epoch the run chose unless --epoch says otherwise: a CNN search's final epoch, an RNN \
search's epoch of lowest validation loss. The genotype's provenance records how far the alphas moved from \
uniform and how decisive each choice is, and the share of parameter-free ops in each cell; a warning says \
when that is indistinguishable from noise, and another when the normal cell is mostly parameter-free (the \
collapse of differentiable search), naming the remedies. --max-skip M applies P-DARTS's rule.

    Examples:

      gdas derive runs/search-digits -o my_cell.json

      gdas derive runs/search-digits --rule pairs --epoch 1

      gdas derive runs/search-digits --max-skip 2 -o my_cell.json
    """
    from ..collapse import max_skip_line, share_line
    from ..movement import summary_line
    from ..rundir import guard_output
    from ..search.source import derive_from_source, write_genotype

    if output is not None:
        guard_output(output, overwrite=overwrite, reads=[source])
    genotype = derive_from_source(
        source, rule=rule.value if rule else None, epoch=epoch, name=name, version=version, max_skip=max_skip
    )
    movement = genotype.provenance.get("movement")
    if output is not None:
        write_genotype(genotype, output)
    derived_epoch = genotype.provenance.get("epoch")
    if as_json:
        print_json(
            {
                "output": None if output is None else str(output),
                "ref": genotype.ref,
                "rule": genotype.derive_rule,
                "epoch": derived_epoch,
                "movement": movement,
                "genotype": genotype.to_dict(),
            }
        )
    elif output is None:
        typer.echo(genotype.to_json(), nl=False)
    else:
        console.print(
            f"wrote {output} ({genotype.ref}, rule {genotype.derive_rule}, epoch {derived_epoch})",
            highlight=False,
            markup=False,
        )
    # on stderr: stdout may be the genotype itself
    for line in (summary_line(movement) if movement else None, share_line(genotype), max_skip_line(genotype)):
        if line:
            err_console.print(line, highlight=False, markup=False)
