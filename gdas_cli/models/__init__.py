"""Networks built from genotypes."""

from .cells import build_cell
from .networks import (
    NETS,
    CellFeatures,
    CellNetwork,
    FeatureInfo,
    NetworkArgs,
    TrainForward,
    build_network,
    default_args,
    pretrained_cfg_for,
)

__all__ = [
    "NETS",
    "CellFeatures",
    "CellNetwork",
    "FeatureInfo",
    "NetworkArgs",
    "TrainForward",
    "build_cell",
    "build_network",
    "default_args",
    "pretrained_cfg_for",
]
