"""How each search space is searched, registered by the space's name (`spaces.SPACES`): its supernet
builder, the rule that turns its alphas into a genotype, and the ops that rule chooses from.

`searched_genotype` is the one way a search (CNN or RNN, any space) turns an epoch's alphas into a
genotype: the space's derive rule, then how far the alphas moved (`movement`) in its provenance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import GdasError
from ..genotype import Cell, Edge, Genotype
from ..models.nb201 import check_macro_args
from ..movement import measure
from ..sampler import SAMPLING_MODES
from ..spaces import SPACES, SearchSpace
from .config import SearchConfig
from .derive import derive_genotype, non_none
from .nb201_derive import derive_nb201
from .nb201_supernet import NB201SearchNetwork
from .rnn_derive import derive_rnn_genotype
from .step import Supernet
from .supernet import SearchNetwork, check_network_args

Alphas = Mapping[str, torch.Tensor]  # by role: normal/reduce, recurrent, cell


@dataclass(frozen=True)
class SpaceSearch:
    """One space's search: the supernet a CNN search builds (None: the space is searched by its own task,
    the RNN search), how alphas become a genotype, and the op columns its derive rules choose from."""

    space: SearchSpace
    derive: Callable[..., Genotype]  # (alphas by role, rule, name=, version=, provenance=)
    candidates: tuple[int, ...]
    build: Callable[[SearchConfig, int], Supernet] | None = None  # (config, classes) -> the supernet
    check: Callable[[SearchConfig], None] | None = None  # the supernet's options, before any data is read


def _darts_check(config: SearchConfig) -> None:
    check_network_args(
        config.channels, config.cells_per_stage, 1, config.frc, config.sampling, config.layout, config.ops
    )


def _nb201_check(config: SearchConfig) -> None:
    if config.sampling not in SAMPLING_MODES:
        raise GdasError(f"--sampling: {config.sampling!r} must be one of {', '.join(SAMPLING_MODES)}")
    check_macro_args(config.channels, config.cells_per_stage, 1)


def _darts_supernet(config: SearchConfig, num_classes: int) -> Supernet:
    return SearchNetwork(
        config.channels,
        config.cells_per_stage,
        num_classes,
        frc=config.frc,
        sampling=config.sampling,
        layout=config.layout,
        ops=config.ops,
    )


def _nb201_supernet(config: SearchConfig, num_classes: int) -> Supernet:
    return NB201SearchNetwork(
        config.channels,
        config.cells_per_stage,
        num_classes,
        track_running_stats=config.track_stats,
        sampling=config.sampling,
        unchosen_weights=config.unchosen_grads,
    )


def _darts_derive(alphas: Alphas, rule: str, **genotype: Any) -> Genotype:
    probs = {role: torch.softmax(a.float(), dim=-1) for role, a in alphas.items()}
    return derive_genotype(probs, rule=rule, frc="reduce" not in probs, **genotype)


def _nb201_derive(alphas: Alphas, rule: str, *, name: str, version: str, provenance: dict | None) -> Genotype:
    """The released rule (argmax over all five ops, `none` included), on the alphas themselves: a float32
    softmax can make nearly equal alphas tie."""
    nodes = derive_nb201(alphas["cell"].double())
    cell = Cell(tuple(tuple(Edge(op, j) for op, j in node) for node in nodes), (len(nodes),))
    genotype = Genotype(name, version, "nas-bench-201", cell=cell, derive_rule=rule, provenance=dict(provenance or {}))
    return Genotype.from_dict(genotype.to_dict(), source="derived genotype (check --name/--version)")


def _rnn_derive(alphas: Alphas, rule: str, **genotype: Any) -> Genotype:
    rows = alphas["recurrent"].shape[0]
    steps = int(((8 * rows + 1) ** 0.5 - 1) / 2)  # rows = steps (steps + 1) / 2
    return derive_rnn_genotype(torch.softmax(alphas["recurrent"].float(), dim=-1), steps=steps, **genotype)


SEARCHES: dict[str, SpaceSearch] = {
    "darts": SpaceSearch(
        SPACES["darts"], _darts_derive, tuple(non_none(SPACES["darts"].ops)), _darts_supernet, _darts_check
    ),
    "darts_rnn": SpaceSearch(SPACES["darts_rnn"], _rnn_derive, tuple(non_none(SPACES["darts_rnn"].ops))),
    "nas-bench-201": SpaceSearch(
        SPACES["nas-bench-201"],
        _nb201_derive,
        tuple(range(len(SPACES["nas-bench-201"].ops))),  # the released rule keeps `none` in the running
        _nb201_supernet,
        _nb201_check,
    ),
}


def search_of(space: str) -> SpaceSearch:
    if space not in SEARCHES:
        raise GdasError(f"--space: {space!r} must be one of {', '.join(SEARCHES)}")
    return SEARCHES[space]


def _cnn_search(config: SearchConfig) -> SpaceSearch:
    search = search_of(config.space)
    if search.build is None or search.check is None:
        raise GdasError(f"--space {config.space}: searched by gdas search rnn, not gdas search cnn")
    return search


def check_supernet(config: SearchConfig) -> None:
    """The config's supernet options, each problem one GdasError naming its option."""
    check = _cnn_search(config).check
    assert check is not None
    check(config)


def build_supernet(config: SearchConfig, num_classes: int) -> Supernet:
    """The supernet of the config's space."""
    build = _cnn_search(config).build
    assert build is not None
    return build(config, num_classes)


def searched_genotype(
    space: str,
    alphas: Alphas,
    *,
    rule: str | None = None,
    arch_lr: float,
    steps: int | None,
    name: str = "searched",
    version: str = "1.0.0",
    provenance: dict[str, Any] | None = None,
) -> Genotype:
    """The genotype of an epoch's alphas under `rule` (default: the space's), its provenance holding how
    far the alphas moved and the noise verdict (`movement`, from the search's arch lr and A steps)."""
    search = search_of(space)
    chosen_rule = rule or search.space.default_rule
    if chosen_rule not in search.space.derive_rules:
        raise GdasError(
            f"--rule: {chosen_rule!r} must be one of {', '.join(search.space.derive_rules)} for space {space}"
        )
    genotype = search.derive(alphas, chosen_rule, name=name, version=version, provenance=provenance)
    cells = {role: cell for role, cell in genotype.cells().items() if role in alphas and isinstance(cell, Cell)}
    movement = measure(
        {role: alphas[role] for role in cells},
        cells,
        ops=search.space.ops,
        n_inputs=search.space.n_inputs,
        choices=search.candidates,
        arch_lr=arch_lr,
        steps=steps,
    )
    return dataclasses.replace(genotype, provenance={**genotype.provenance, "movement": movement})
