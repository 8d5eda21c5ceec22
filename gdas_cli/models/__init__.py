"""Networks built from genotypes."""

from .cells import build_cell
from .networks import NETS, CellNetwork, NetworkArgs, build_network, default_args

__all__ = ["NETS", "CellNetwork", "NetworkArgs", "build_cell", "build_network", "default_args"]
