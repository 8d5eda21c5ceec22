"""How each search space is searched, registered by the space's name (`spaces.SPACES`): its supernet
builder, the rule that turns its alphas into a genotype, and the ops that rule chooses from.

`searched_genotype` is the one way a search (CNN or RNN, any space) turns an epoch's alphas into a
genotype: the space's derive rule (with `--max-skip`, P-DARTS's limit on skip connections), then how far
the alphas moved (`movement`) and the share of parameter-free ops (`param_free`, collapse.py) in its
provenance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..collapse import param_free
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
from .supernet import LAYOUTS, SearchNetwork, check_network_args

Alphas = Mapping[str, torch.Tensor]  # by role: normal/reduce, recurrent, cell


@dataclass(frozen=True)
class SpaceSearch:
    """One space's search: the supernet a CNN search builds (None: the space is searched by its own task,
    the RNN search), how alphas become a genotype, and the op columns its derive rules choose from."""

    space: SearchSpace
    derive: Callable[..., Genotype]  # (alphas by role, rule, masked=, name=, version=, provenance=)
    candidates: tuple[int, ...]
    build: Callable[[SearchConfig, int], Supernet] | None = None  # (config, classes) -> the supernet
    check: Callable[[SearchConfig], None] | None = None  # the supernet's options, before any data is read
    final_layers: Callable[[SearchConfig], int] | None = None  # `gdas train --layers` of a supernet-sized network


def _darts_check(config: SearchConfig) -> None:
    check_network_args(
        config.channels, config.cells_per_stage, 1, config.frc, config.sampling, config.layout, config.ops
    )


def _nb201_check(config: SearchConfig) -> None:
    if config.sampling not in SAMPLING_MODES:
        raise GdasError(f"--sampling: {config.sampling!r} must be one of {', '.join(SAMPLING_MODES)}")
    check_macro_args(config.channels, config.cells_per_stage, 1)


def _darts_final_layers(config: SearchConfig) -> int:
    """The supernet's cell count (its reduction cells included), at least the three a DARTS network needs."""
    return max(3, len(LAYOUTS[config.layout].reductions(config.cells_per_stage)))


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


Masked = frozenset[tuple[str, int, int]]  # (role, alpha row, op): probabilities a derive takes as 0


def _probabilities(alphas: Alphas, masked: Masked) -> dict[str, torch.Tensor]:
    """softmax(alpha) per role, the masked entries set to 0 and the rest left as they are (P-DARTS)."""
    probs = {role: torch.softmax(a.float(), dim=-1) for role, a in alphas.items()}
    for role, row, op in masked:
        probs[role][row, op] = 0.0
    return probs


def _darts_derive(alphas: Alphas, rule: str, *, masked: Masked = frozenset(), **genotype: Any) -> Genotype:
    probs = _probabilities(alphas, masked)
    return derive_genotype(probs, rule=rule, frc="reduce" not in probs, **genotype)


def _nb201_derive(
    alphas: Alphas,
    rule: str,
    *,
    masked: Masked = frozenset(),
    name: str,
    version: str,
    provenance: dict | None = None,
) -> Genotype:
    """The released rule (argmax over all five ops, `none` included), on the alphas themselves: a float32
    softmax can make nearly equal alphas tie. With masked ops (--max-skip), a float64 softmax with those at 0."""
    cell = alphas["cell"].double()
    if masked:
        cell = torch.softmax(cell, dim=-1)
        for _, row, op in masked:
            cell[row, op] = 0.0
    nodes = derive_nb201(cell)
    derived = Cell(tuple(tuple(Edge(op, j) for op, j in node) for node in nodes), (len(nodes),))
    genotype = Genotype(
        name, version, "nas-bench-201", cell=derived, derive_rule=rule, provenance=dict(provenance or {})
    )
    return Genotype.from_dict(genotype.to_dict(), source="derived genotype (check --name/--version)")


def _rnn_derive(alphas: Alphas, rule: str, *, masked: Masked = frozenset(), **genotype: Any) -> Genotype:
    rows = alphas["recurrent"].shape[0]
    steps = int(((8 * rows + 1) ** 0.5 - 1) / 2)  # rows = steps (steps + 1) / 2
    return derive_rnn_genotype(_probabilities(alphas, masked)["recurrent"], steps=steps, **genotype)


SEARCHES: dict[str, SpaceSearch] = {
    "darts": SpaceSearch(
        SPACES["darts"],
        _darts_derive,
        tuple(non_none(SPACES["darts"].ops)),
        _darts_supernet,
        _darts_check,
        _darts_final_layers,
    ),
    "darts_rnn": SpaceSearch(SPACES["darts_rnn"], _rnn_derive, tuple(non_none(SPACES["darts_rnn"].ops))),
    "nas-bench-201": SpaceSearch(
        SPACES["nas-bench-201"],
        _nb201_derive,
        tuple(range(len(SPACES["nas-bench-201"].ops))),  # the released rule keeps `none` in the running
        _nb201_supernet,
        _nb201_check,
        lambda config: config.cells_per_stage,  # the benchmark network's N: cells per stage, as the supernet's
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


def final_layers(config: SearchConfig) -> int:
    """`gdas train --layers` of the final network the size of the config's supernet."""
    layers = _cnn_search(config).final_layers
    assert layers is not None
    return layers(config)


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
    max_skip: int | None = None,
) -> Genotype:
    """The genotype of an epoch's alphas under `rule` (default: the space's), its provenance holding how
    far the alphas moved and the noise verdict (`movement`, from the search's arch lr and A steps) and the
    share of parameter-free ops per cell (`param_free`). `max_skip`: P-DARTS's limit on the normal cell's
    skip connections (`limit_skips`), recorded as `max_skip`."""
    search = search_of(space)
    chosen_rule = rule or search.space.default_rule
    if chosen_rule not in search.space.derive_rules:
        raise GdasError(
            f"--rule: {chosen_rule!r} must be one of {', '.join(search.space.derive_rules)} for space {space}"
        )
    genotype_args = {"name": name, "version": version, "provenance": provenance}
    if max_skip is None:
        genotype = search.derive(alphas, chosen_rule, **genotype_args)
    else:
        genotype, limited = limit_skips(search, alphas, chosen_rule, max_skip, genotype_args)
        genotype = dataclasses.replace(genotype, provenance={**genotype.provenance, "max_skip": limited})
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
    extra = {"movement": movement}
    shares = param_free(genotype)
    if shares:
        extra["param_free"] = shares
    return dataclasses.replace(genotype, provenance={**genotype.provenance, **extra})


P_DARTS = "P-DARTS (Chen, Xie, Wu and Tian, ICCV 2019)"


def limit_skips(
    search: SpaceSearch, alphas: Alphas, rule: str, max_skip: int, genotype_args: dict[str, Any]
) -> tuple[Genotype, dict[str, Any]]:
    """P-DARTS's rule: while the normal cell keeps more than `max_skip` skip connections, the one of lowest
    skip probability is taken out (its probability set to 0) and the cell derived again, so that edge takes
    its next-best op (or the node another input). Returns the genotype and what was replaced."""
    space = search.space
    if max_skip < 0:
        raise GdasError(f"--max-skip: {max_skip} must be >= 0")
    if space.skip_op is None or not space.normal_roles:
        raise GdasError(f"--max-skip: the {space.name} space has no skip connection op to limit")
    skip = space.ops.index(space.skip_op)
    probs = {role: torch.softmax(a.double(), dim=-1) for role, a in alphas.items()}
    masked: set[tuple[str, int, int]] = set()
    replaced: list[dict[str, Any]] = []
    genotype = search.derive(alphas, rule, masked=frozenset(masked), **genotype_args)
    kept = _kept_skips(genotype, space)
    before = len(kept)
    while len(kept) > max_skip:
        role, node, source = min(kept, key=lambda k: (float(probs[k[0]][space.edge_row(k[1], k[2]), skip]), k))
        row = space.edge_row(node, source)
        masked.add((role, row, skip))
        p_skip = round(float(probs[role][row, skip]), 4)
        replaced.append({"cell": role, "node": node, "input": source, "p_skip": p_skip})
        genotype = search.derive(alphas, rule, masked=frozenset(masked), **genotype_args)
        kept = _kept_skips(genotype, space)
    record = {"limit": max_skip, "rule": P_DARTS, "skips_before": before, "skips_after": len(kept)}
    return genotype, {**record, "replaced": replaced}


def _kept_skips(genotype: Genotype, space: SearchSpace) -> list[tuple[str, int, int]]:
    """(role, node, input) of every skip connection the normal cells keep."""
    cells = genotype.cells()
    return [
        (role, node, edge.input)
        for role in space.normal_roles
        if isinstance(cell := cells.get(role), Cell)
        for node, edges in enumerate(cell.nodes)
        for edge in edges
        if edge.op == space.skip_op
    ]
