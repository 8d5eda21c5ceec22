"""How big the network a genotype builds is: parameters and mult-adds, counted as the paper counts them.

`gdas genotypes info` reads these counts for the zoo genotypes from `genotypes/sizes.json` (so it
needs no torch); `measure` is the live count that file is checked against (tests/test_models.py).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import GdasError
from ..genotype import Genotype
from ..metrics import count_mult_adds, count_parameters
from .families import FAMILIES, build_network, default_args, family_of
from .rnn import DATASET_ARGS, RNNArgs, build_language_model

# the DARTS space's targets as (network, classes, input side): what genotypes/sizes.json counts them on
IMAGE_NETS: dict[str, tuple[str, int, int]] = {
    name: (target.net, target.classes, target.side) for name, target in FAMILIES["darts"].targets.items()
}
# LM targets: the vocabulary of each corpus (paper Tables 3-4: PTB 10,000 words, WT2 33,278)
TEXT_VOCAB: dict[str, int] = {"ptb": 10_000, "wt2": 33_278}


def measure(genotype: Genotype, net: str, *, C: int | None = None, layers: int | None = None) -> dict[str, Any]:
    """The counts of `genotype`'s network for `net` (its family's targets: cifar10, cifar100, imagenet for
    the DARTS space, imagenet16-120 for NAS-Bench-201's; ptb or wt2 for language models).

    CNNs default to their family's widths (`default_args`: the paper's, or the benchmark's); C and layers
    override them. Language models are counted at the paper's sizes (emb = hid = 850 on PTB, 700 on WT2).
    NAS-Bench-201 mult-adds are counted as the benchmark counts its FLOPs: with the classifier's bias.
    """
    if genotype.space not in FAMILIES:
        return _measure_lm(genotype, net)
    family = family_of(genotype)
    if net not in family.targets:
        raise GdasError(f"--net: {net!r}: a {genotype.space} genotype is counted on {', '.join(family.targets)}")
    target = family.targets[net]
    args = default_args(genotype, target.net, target.classes)
    args = type(args)(**{**args.to_dict(), "C": C or args.C, "layers": layers or args.layers})
    model = build_network(genotype, args)
    bias_adds = target.classes if family.counts_bias else 0
    return {
        "genotype": genotype.ref,
        "net": net,
        "C": args.C,
        "layers": args.layers,
        "params": count_parameters(model),
        "mult_adds": count_mult_adds(model, (1, 3, target.side, target.side)) + bias_adds,
    }


def _measure_lm(genotype: Genotype, net: str) -> dict[str, Any]:
    if net not in TEXT_VOCAB:
        raise GdasError(
            f"--net: {net!r} is an image set; an rnn genotype builds a language model ({', '.join(TEXT_VOCAB)})"
        )
    args = RNNArgs(ntoken=TEXT_VOCAB[net], **DATASET_ARGS[net])
    with torch.device("meta"):  # counting needs shapes only
        model = build_language_model(genotype, args)
    return {
        "genotype": genotype.ref,
        "net": net,
        "emsize": args.ninp,
        "vocab": args.ntoken,
        "params": count_parameters(model),
    }
