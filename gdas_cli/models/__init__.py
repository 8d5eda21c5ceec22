"""Networks built from genotypes: each search space's family (families.py), cells, heads and language models."""

from .cells import build_cell
from .families import FAMILIES, Family, Network, build_network, default_args, family_of
from .nb201 import NB201Classifier
from .networks import (
    INPUTS,
    NB201_NET,
    NETS,
    CellFeatures,
    CellNetwork,
    FeatureInfo,
    NetworkArgs,
    TrainForward,
    pretrained_cfg_for,
)

__all__ = [
    "FAMILIES",
    "INPUTS",
    "NB201_NET",
    "NETS",
    "CellFeatures",
    "CellNetwork",
    "Family",
    "FeatureInfo",
    "NB201Classifier",
    "Network",
    "NetworkArgs",
    "TrainForward",
    "build_cell",
    "build_network",
    "default_args",
    "family_of",
    "pretrained_cfg_for",
]
