"""Search spaces, registered by name: what a genotype of each space holds, in the core layer and torch-free.

A `SearchSpace` owns the facts every layer reads instead of branching on a space: its searched ops
(the alphas' columns, in order), the ops a genotype may name, the cells (roles) a genotype holds and
any fixed cell a role may name instead, the cell topology (the states before the first node, the edges
per node, how the output is made, a fixed node count), the derive rules and how its cells are drawn
and counted. The layers above register the rest under the same name: the final network
(`models.FAMILIES`) and the supernet and derive rules (`search.spaces.SEARCHES`).

    darts           the DARTS/GDAS CNN space: normal and reduction cells of 2-edge nodes (or the FRC)
    darts_rnn       the DARTS recurrent space: one cell of 1-edge nodes over 8 steps
    nas-bench-201   NAS-Bench-201's topology space: one cell, every node reads every earlier node
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from . import nb201
from .errors import GdasError

# The DARTS space in the 2019 code's order (it decides argmax ties); genotypes of published baseline
# cells may also name the ops of NASNet, AmoebaNet and PNASNet.
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
DARTS_EXTRA_OPS = ("sep_conv_7x7", "conv_7x1_1x7", "conv_3x1_1x3")
RNN_OPS: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
FRC = "frc"


@dataclass(frozen=True)
class SearchSpace:
    """One space's genotype facts (module docstring); `ops` are its alphas' columns, in order."""

    name: str
    kind: str  # cnn | rnn: the family of networks its cells build
    ops: tuple[str, ...]
    genotype_ops: frozenset[str]
    roles: tuple[str, ...]  # the cells a genotype holds, in file order
    inputs: tuple[str, ...]  # the states before the first node, as drawn and described
    edges_per_node: int | None  # None: one edge from every earlier state, in order
    output: str  # concat | mean | last: how the cell's output is made of its states
    steps: int | None = None  # a fixed number of intermediate nodes, else any
    fixed_cells: dict[str, str] = field(default_factory=dict)  # role -> a named fixed cell it may be
    derive_rules: tuple[str, ...] = ()  # the rules a search of this space derives with, default first
    zero_op: str | None = "none"
    title: str = ""
    # how plot.py draws a cell: labels of the first states, the output, and what feeds state 0 (an RNN's
    # x_t and h_{t-1}; the first states of the other spaces are the cell's inputs themselves)
    drawn_inputs: tuple[str, ...] = ()
    drawn_output: str = "$c_{k}$"
    drawn_feeds: tuple[str, ...] = ()
    # what `gdas genotypes info --net` counts a genotype of this space on, the default first
    info_nets: tuple[str, ...] = ()

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def edge_row(self, node: int, source: int) -> int:
        """The alpha row of the edge into intermediate node `node` (0-based) from state `source`."""
        return sum(self.n_inputs + k for k in range(node)) + source

    def edges(self, steps: int) -> list[tuple[int, int]]:
        """(node, source state) of every edge of a supernet cell of `steps` nodes, in alpha-row order."""
        return [(node, source) for node in range(steps) for source in range(self.n_inputs + node)]

    def state_name(self, state: int) -> str:
        return self.inputs[state] if state < self.n_inputs else f"node {state}"

    @property
    def default_rule(self) -> str:
        return self.derive_rules[0]


SPACES: dict[str, SearchSpace] = {
    "darts": SearchSpace(
        name="darts",
        kind="cnn",
        ops=DARTS_OPS,
        genotype_ops=frozenset(DARTS_OPS + DARTS_EXTRA_OPS),
        roles=("normal", "reduce"),
        inputs=("c_{k-2}", "c_{k-1}"),
        edges_per_node=2,
        output="concat",
        fixed_cells={"reduce": FRC},
        derive_rules=("paper", "pairs"),
        title="DARTS/GDAS CNN cells (paper Sec. 4.1)",
        drawn_inputs=("$c_{k-2}$", "$c_{k-1}$"),
        info_nets=("cifar10", "cifar100", "imagenet"),
    ),
    "darts_rnn": SearchSpace(
        name="darts_rnn",
        kind="rnn",
        ops=RNN_OPS,
        genotype_ops=frozenset(RNN_OPS),
        roles=("recurrent",),
        inputs=("h_0",),
        edges_per_node=1,
        output="mean",
        derive_rules=("rnn",),
        title="DARTS recurrent cell (paper Sec. 4.2)",
        drawn_output="$h_t$",
        drawn_feeds=("$x_t$", "$h_{t-1}$"),
        info_nets=("ptb", "wt2"),
    ),
    "nas-bench-201": SearchSpace(
        name="nas-bench-201",
        kind="cnn",
        ops=nb201.OPS,
        genotype_ops=frozenset(nb201.OPS),
        roles=("cell",),
        inputs=("node 0",),
        edges_per_node=None,
        output="last",
        steps=nb201.NODES - 1,
        derive_rules=("nb201",),
        title="NAS-Bench-201 topology space (NATS-Bench tss)",
        drawn_inputs=("$c_{k-1}$",),
        info_nets=("cifar10", "cifar100", "imagenet16-120"),
    ),
}
# the space of genotype files written before the space was a registry: one per kind
KIND_SPACES = {"cnn": "darts", "rnn": "darts_rnn"}


def get_space(name: str, where: str = "space") -> SearchSpace:
    """The registered space `name`; an unknown one is a GdasError naming the known ones."""
    try:
        return SPACES[name]
    except (KeyError, TypeError):
        raise GdasError(f"{where}: unknown search space {name!r}; known: {', '.join(SPACES)}") from None


def space_of_role(role: str) -> SearchSpace:
    """The space whose genotypes hold cell `role` (roles are unique across spaces: an alpha matrix's name
    says which space's ops its columns are)."""
    found = [space for space in SPACES.values() if role in space.roles]
    if not found:
        raise GdasError(
            f"{role!r}: no search space has such a cell; known: "
            + ", ".join(r for s in SPACES.values() for r in s.roles)
        )
    return found[0]


def iter_spaces(kind: str | None = None) -> Iterator[SearchSpace]:
    return (space for space in SPACES.values() if kind is None or space.kind == kind)
