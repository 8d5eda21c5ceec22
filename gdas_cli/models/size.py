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
from .networks import build_network, default_args
from .rnn import DATASET_ARGS, RNNArgs, build_language_model

# CNN targets: (network family, classes, input side)
IMAGE_NETS: dict[str, tuple[str, int, int]] = {
    "cifar10": ("cifar", 10, 32),
    "cifar100": ("cifar", 100, 32),
    "imagenet": ("imagenet", 1000, 224),
}
# LM targets: the vocabulary of each corpus (paper Tables 3-4: PTB 10,000 words, WT2 33,278)
TEXT_VOCAB: dict[str, int] = {"ptb": 10_000, "wt2": 33_278}


def measure(genotype: Genotype, net: str, *, C: int | None = None, layers: int | None = None) -> dict[str, Any]:
    """The counts of `genotype`'s network for `net` (cifar10, cifar100, imagenet, ptb or wt2).

    CNNs default to the paper's widths (`default_args`); C and layers override them. Language
    models are counted at the paper's sizes (emb = hid = 850 on PTB, 700 on WT2).
    """
    if genotype.kind == "rnn":
        return _measure_lm(genotype, net)
    if net not in IMAGE_NETS:
        raise GdasError(f"--net: {net!r} is a text corpus; a cnn genotype builds an image network ({_known('cnn')})")
    family, classes, side = IMAGE_NETS[net]
    args = default_args(genotype, family, classes)
    args = type(args)(**{**args.to_dict(), "C": C or args.C, "layers": layers or args.layers})
    model = build_network(genotype, args)
    return {
        "genotype": genotype.ref,
        "net": net,
        "C": args.C,
        "layers": args.layers,
        "params": count_parameters(model),
        "mult_adds": count_mult_adds(model, (1, 3, side, side)),
    }


def _measure_lm(genotype: Genotype, net: str) -> dict[str, Any]:
    if net not in TEXT_VOCAB:
        raise GdasError(f"--net: {net!r} is an image set; an rnn genotype builds a language model ({_known('rnn')})")
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


def _known(kind: str) -> str:
    return ", ".join(TEXT_VOCAB if kind == "rnn" else IMAGE_NETS)
