"""GDAS search: the CNN supernet, deriving genotypes from alphas, and the search task on the engine."""

from .supernet import LAYOUTS, SearchNetwork, build_search_network

__all__ = ["LAYOUTS", "SearchNetwork", "build_search_network"]
