"""The recurrent search network (DARTS-RNN style supernet; docs/sources.md, "RNN") with GDAS sampling.

The search cell has `steps` nodes (8); node i reads every earlier state s_0..s_i, edge (i, j)
chooses one of none/tanh/relu/sigmoid/identity, alphas are (36, 5) ~ N(0, 1e-3). For every edge
the state s_j goes through the node's W_i:  c, g = split((s_j * mh) W_i),
u_jk = s_j + sigmoid(c) * (f_k(g) - s_j), and the node sums its edges then applies
BatchNorm1d(affine=False), as s_0 is too. The cell output is the mean of the 8 nodes.

Sampling modes:
- `gdas`: one hard straight-through Gumbel draw (`sampler.draw`) of all 36 edges per forward, shared
  by the batch and the whole BPTT segment. Only the chosen op of each edge is computed: a node's
  inputs are grouped by chosen op so each activation runs once per node and step; `none` edges
  are skipped. Each kept term is multiplied by its hard weight (exactly 1) so alphas get gradient.
- `soft-gumbel`: a soft Gumbel-softmax sample of every edge per forward (no one-hot), every op of
  every edge computed and weighted by it: what the 2019 code ran when it found the published PTB
  cell (`F.gumbel_softmax(alphas, tau, hard=False)`, docs/sources.md "RNN").
- `darts`: softmax weights, every op of every edge computed (the ablation and the benchmark).

In eval mode a `gdas` network runs the currently derived cell (one input per node, never `none`),
so the validation loss of an epoch is that of the genotype the epoch would produce; `soft-gumbel`
and `darts` networks, trained as mixtures, evaluate with their softmax weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import GdasError
from ..genotype import Genotype
from ..models.rnn import ACTIVATIONS, LanguageModelBase, LMOutput, RecurrentCellBase, RNNArgs
from ..ops import RNN_PRIMITIVES
from ..sampler import draw, soft_gumbel, soft_weights
from .rnn_derive import RNN_STEPS, derive_rnn_edges, derive_rnn_genotype, rnn_edge_count

RNN_SAMPLING = ("gdas", "soft-gumbel", "darts")
NONE = RNN_PRIMITIVES.index("none")


@dataclass
class NodePlan:
    """The edges a node computes: `inputs` grouped by op, `groups` = [(op name, count)], their weights."""

    inputs: list[int]
    groups: list[tuple[str, int]]
    weights: torch.Tensor | None  # (len(inputs),) hard weights, or None for constant 1


@dataclass
class HardPlan:
    """One op per edge (the `gdas` forward, or a fixed derived cell)."""

    nodes: list[NodePlan]
    index: list[int]  # the chosen op of every edge, on the host (for logging and tests)


@dataclass
class SoftPlan:
    """Every op of every edge, weighted by `probs` (E, K): softmax(alpha) or a soft Gumbel sample."""

    probs: torch.Tensor


def _node_plans(choices: Sequence[Sequence[tuple[int, int]]], weights: torch.Tensor | None) -> list[NodePlan]:
    """`choices[i]` = node i's [(input j, op k)] sorted by (k, j), none dropped; `weights` flat in that order."""
    plans, start = [], 0
    for node in choices:
        groups: list[tuple[str, int]] = []
        for _, k in node:
            if groups and groups[-1][0] == RNN_PRIMITIVES[k]:
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((RNN_PRIMITIVES[k], 1))
        w = None if weights is None else weights[start : start + len(node)]
        plans.append(NodePlan([j for j, _ in node], groups, w))
        start += len(node)
    return plans


def hard_plan(hard: torch.Tensor, index: Sequence[int], steps: int) -> HardPlan:
    """The plan of a draw: per node, the non-`none` edges with their hard weights (one gather in all)."""
    choices, flat_edges, flat_ops, offset = [], [], [], 0
    for i in range(steps):
        # Grouped by op (in the space's order) so each activation runs once per node.
        node = sorted(
            ((j, int(index[offset + j])) for j in range(i + 1) if int(index[offset + j]) != NONE),
            key=lambda jk: (jk[1], jk[0]),
        )
        flat_edges += [offset + j for j, _ in node]
        flat_ops += [k for _, k in node]
        choices.append(node)
        offset += i + 1
    device = hard.device
    weights = hard[
        torch.tensor(flat_edges, dtype=torch.long, device=device),
        torch.tensor(flat_ops, dtype=torch.long, device=device),
    ]
    return HardPlan(_node_plans(choices, weights), [int(k) for k in index])


def fixed_plan(edges: Sequence[tuple[int, int]], steps: int) -> HardPlan:
    """A discrete cell (one (j, k) per node) as a plan with constant weights."""
    index = [NONE] * rnn_edge_count(steps)
    for i, (j, k) in enumerate(edges):
        index[i * (i + 1) // 2 + j] = k
    return HardPlan(_node_plans([[edge] for edge in edges], None), index)


class RNNSearchCell(RecurrentCellBase):
    """The recurrent supernet cell; `step` runs one time step under a plan."""

    def __init__(self, ninp: int, nhid: int, steps: int, dropouth: float, dropoutx: float) -> None:
        super().__init__(ninp, nhid, steps, dropouth, dropoutx)
        self.bn = nn.BatchNorm1d(nhid, affine=False)

    def step(self, s0: torch.Tensor, h_mask: torch.Tensor | None, plan: HardPlan | SoftPlan) -> torch.Tensor:
        if isinstance(plan, SoftPlan):
            return self._step_soft(self.bn(s0), h_mask, plan.probs)
        return self._step_hard(self.bn(s0), h_mask, plan.nodes)

    def _step_hard(self, s0: torch.Tensor, h_mask: torch.Tensor | None, nodes: list[NodePlan]) -> torch.Tensor:
        states = [s0]
        for i, node in enumerate(nodes):
            if not node.inputs:  # every edge drew `none`
                states.append(self.bn(torch.zeros_like(s0)))
                continue
            prev = torch.stack([states[j] for j in node.inputs])  # (m, B, H)
            c, g = ((prev if h_mask is None else prev * h_mask) @ self.Ws[i]).chunk(2, dim=-1)
            if len(node.groups) == 1:
                f = ACTIVATIONS[node.groups[0][0]](g)
            else:
                parts = g.split([count for _, count in node.groups])
                f = torch.cat([ACTIVATIONS[name](part) for (name, _), part in zip(node.groups, parts, strict=True)])
            terms = prev + c.sigmoid() * (f - prev)
            if node.weights is not None:
                terms = terms * node.weights.view(-1, 1, 1).to(terms.dtype)
            states.append(self.bn(terms.sum(dim=0)))
        return torch.stack(states[1:]).mean(dim=0)

    def _step_soft(self, s0: torch.Tensor, h_mask: torch.Tensor | None, probs: torch.Tensor) -> torch.Tensor:
        states, offset = s0.unsqueeze(0), 0
        for i in range(self.steps):
            c, g = ((states if h_mask is None else states * h_mask) @ self.Ws[i]).chunk(2, dim=-1)
            c = c.sigmoid()
            p = probs[offset : offset + i + 1].to(states.dtype)
            node = torch.zeros_like(s0)
            for k, name in enumerate(RNN_PRIMITIVES):
                if k != NONE:
                    node = node + (p[:, k].view(-1, 1, 1) * (states + c * (ACTIVATIONS[name](g) - states))).sum(dim=0)
            states = torch.cat([states, self.bn(node).unsqueeze(0)])
            offset += i + 1
        return states[1:].mean(dim=0)


class RNNSearchNetwork(LanguageModelBase):
    """Embedding, the search cell and the tied decoder; `alphas_recurrent` are the architecture."""

    def __init__(self, args: RNNArgs, steps: int = RNN_STEPS, sampling: str = "gdas") -> None:
        if sampling not in RNN_SAMPLING:
            raise GdasError(f"--sampling: {sampling!r} must be one of {', '.join(RNN_SAMPLING)} for an RNN search")
        if steps < 1:
            raise GdasError(f"--steps: {steps} must be >= 1")
        super().__init__(args)
        self.steps, self.sampling, self.tau = steps, sampling, 10.0
        self.cell = RNNSearchCell(args.ninp, args.ninp, steps, args.dropouth, args.dropoutx)
        self.alphas_recurrent = nn.Parameter(1e-3 * torch.randn(rnn_edge_count(steps), len(RNN_PRIMITIVES)))

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        return {"recurrent": self.alphas_recurrent}

    def alphas(self) -> list[nn.Parameter]:
        return [self.alphas_recurrent]

    def weights(self) -> Iterator[nn.Parameter]:
        return (p for p in self.parameters() if p is not self.alphas_recurrent)

    def set_tau(self, tau: float) -> None:
        self.tau = float(tau)

    def probabilities(self) -> dict[str, torch.Tensor]:
        return {"recurrent": soft_weights(self.alphas_recurrent.detach())}

    def sample(self, generator: torch.Generator | None = None) -> HardPlan | SoftPlan:
        """A training-time plan: a fresh hard draw (`gdas`), a fresh soft one (`soft-gumbel`) or the
        softmax weights (`darts`)."""
        if self.sampling == "darts":
            return SoftPlan(soft_weights(self.alphas_recurrent))
        if self.sampling == "soft-gumbel":
            return SoftPlan(soft_gumbel(self.alphas_recurrent, self.tau, generator=generator))
        result = draw(self.alphas_recurrent, self.tau, generator=generator)
        return hard_plan(result.hard, result.index.tolist(), self.steps)

    def eval_plan(self) -> HardPlan | SoftPlan:
        if self.sampling != "gdas":
            return SoftPlan(soft_weights(self.alphas_recurrent.detach()))
        return fixed_plan(derive_rnn_edges(self.probabilities()["recurrent"], self.steps), self.steps)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor, plan: HardPlan | SoftPlan | None = None) -> LMOutput:
        if plan is None:
            plan = self.sample() if self.training else self.eval_plan()
        return super().forward(tokens, hidden, plan)

    def genotype(self, **kwargs) -> Genotype:
        return derive_rnn_genotype(self.probabilities()["recurrent"], steps=self.steps, **kwargs)


# Reference 8.3: the search model's sizes and dropouts (the 2019 code's defaults).
SEARCH_ARGS = {"ninp": 300, "dropout": 0.75, "dropouth": 0.25, "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.0}


def build_rnn_search_network(
    ntoken: int, *, ninp: int = 300, steps: int = RNN_STEPS, sampling: str = "gdas", **dropouts: float
) -> RNNSearchNetwork:
    search_dropouts = {k: v for k, v in SEARCH_ARGS.items() if k != "ninp"}  # `ninp` is the argument's
    args = RNNArgs(ntoken=ntoken, ninp=ninp, **{**search_dropouts, **dropouts})
    return RNNSearchNetwork(args, steps=steps, sampling=sampling)
