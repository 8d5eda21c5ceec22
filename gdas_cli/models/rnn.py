"""The recurrent language model of a genotype (DARTS-style cell, reference section 8).

Cell, per time step t with input x_t and previous hidden h:

    c0, g0 = split([x_t * mx, h * mh] W0);   s0 = h + sigmoid(c0) * (tanh(g0) - h)
    node i (edge op f from state j):  c, g = split((s_j * mh) W_i);  s_i = s_j + sigmoid(c) * (f(g) - s_j)
    h_t = mean(s_k for k in concat)

mx, mh are variational masks drawn once per forward and reused at every step. The model is
embedding (with word-level embedding dropout) -> locked dropout -> cell -> locked dropout ->
decoder tied to the embedding. Init: uniform(-0.04, 0.04), decoder bias 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import GdasError
from ..genotype import Cell, Genotype

INIT_RANGE = 0.04

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


@dataclass(frozen=True)
class RNNArgs:
    """Everything besides the genotype that fixes a language model's weights and regularisation.

    `ninp` is both the embedding and the hidden size (the tied decoder needs them equal).
    """

    ntoken: int
    ninp: int = 850
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


def variational_mask(batch: int, dim: int, p: float, like: torch.Tensor) -> torch.Tensor | None:
    """A (batch, dim) keep mask scaled by 1/keep, or None when p == 0."""
    if p <= 0:
        return None
    return _keep_mask(batch, dim, p, like)


def _keep_mask(batch: int, dim: int, p: float, like: torch.Tensor) -> torch.Tensor:
    """A (batch, dim) keep mask scaled by 1/keep, for 0 < p < 1."""
    keep = 1.0 - p
    return torch.empty(batch, dim, dtype=like.dtype, device=like.device).bernoulli_(keep).div_(keep)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout of (T, B, D) with one mask per (example, feature), shared over time."""
    if not training or p <= 0:
        return x
    mask = _keep_mask(x.size(1), x.size(2), p, x)
    return x * mask.unsqueeze(0)


def embedded_dropout(weight: torch.Tensor, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Embedding lookup with whole words dropped (rows of the embedding zeroed, the rest scaled)."""
    if training and p > 0:
        keep = 1.0 - p
        rows = torch.empty(weight.size(0), 1, dtype=weight.dtype, device=weight.device).bernoulli_(keep).div_(keep)
        weight = weight * rows
    return F.embedding(tokens, weight)


def uniform_parameter(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape).uniform_(-INIT_RANGE, INIT_RANGE))


class RecurrentCellBase(nn.Module):
    """W0 and the per-node W_i, the variational masks and the time loop; subclasses run the nodes."""

    def __init__(self, ninp: int, nhid: int, steps: int, dropouth: float, dropoutx: float) -> None:
        super().__init__()
        self.ninp, self.nhid, self.steps = ninp, nhid, steps
        self.dropouth, self.dropoutx = dropouth, dropoutx
        self.W0 = uniform_parameter(ninp + nhid, 2 * nhid)
        self.Ws = nn.ParameterList([uniform_parameter(nhid, 2 * nhid) for _ in range(steps)])

    def masks(self, inputs: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.training:
            return None, None
        batch = inputs.size(1)
        return (
            variational_mask(batch, self.ninp, self.dropoutx, inputs),
            variational_mask(batch, self.nhid, self.dropouth, inputs),
        )

    def init_state(self, x_proj: torch.Tensor, h: torch.Tensor, h_mask: torch.Tensor | None) -> torch.Tensor:
        """s0 from the precomputed input projection x W0[:ninp] and the previous hidden state."""
        hm = h if h_mask is None else h * h_mask
        c0, g0 = (x_proj + hm @ self.W0[self.ninp :]).chunk(2, dim=-1)
        return h + c0.sigmoid() * (g0.tanh() - h)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, *extra) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (T, B, ninp), hidden (B, nhid) -> outputs (T, B, nhid), last hidden (B, nhid)."""
        x_mask, h_mask = self.masks(inputs)
        x = inputs if x_mask is None else inputs * x_mask
        # One matmul for the input half of W0 over all steps (the same sum as [x, h] W0 per step).
        x_proj = x @ self.W0[: self.ninp]
        outputs = []
        for t in range(inputs.size(0)):
            hidden = self.step(self.init_state(x_proj[t], hidden, h_mask), h_mask, *extra)
            outputs.append(hidden)
        return torch.stack(outputs), hidden

    def step(self, s0: torch.Tensor, h_mask: torch.Tensor | None, *extra) -> torch.Tensor:
        raise NotImplementedError


def node_update(
    s: torch.Tensor, W: torch.Tensor, h_mask: torch.Tensor | None, activation: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """s + sigmoid(c) * (f(g) - s) with c, g = split((s * mh) W): one node of a discrete cell."""
    c, g = ((s if h_mask is None else s * h_mask) @ W).chunk(2, dim=-1)
    return s + c.sigmoid() * (activation(g) - s)


class RecurrentCell(RecurrentCellBase):
    """The discrete cell of an `rnn` genotype: one (op, input) edge per node."""

    def __init__(self, cell: Cell, ninp: int, nhid: int, dropouth: float, dropoutx: float) -> None:
        super().__init__(ninp, nhid, cell.steps, dropouth, dropoutx)
        self.edges = [(node[0].op, node[0].input) for node in cell.nodes]
        self.concat = list(cell.concat)
        for op, _ in self.edges:
            if op not in ACTIVATIONS:
                raise GdasError(f"op {op!r} cannot be used in a final recurrent cell (known: {', '.join(ACTIVATIONS)})")

    def step(self, s0: torch.Tensor, h_mask: torch.Tensor | None, *extra) -> torch.Tensor:
        states = [s0]
        for i, (op, j) in enumerate(self.edges):
            states.append(node_update(states[j], self.Ws[i], h_mask, ACTIVATIONS[op]))
        return torch.stack([states[k] for k in self.concat]).mean(dim=0)


@dataclass
class LMOutput:
    """logits (T*B, ntoken); hidden (B, nhid) to carry to the next segment; raw cell outputs (T, B, nhid)."""

    logits: torch.Tensor
    hidden: torch.Tensor
    raw: torch.Tensor


class LanguageModelBase(nn.Module):
    """Embedding, dropouts and the tied decoder around a recurrent cell (`self.cell`)."""

    cell: RecurrentCellBase

    def __init__(self, args: RNNArgs) -> None:
        super().__init__()
        if args.ntoken < 2 or args.ninp < 1:
            raise GdasError(f"a language model needs >= 2 words and a hidden size >= 1, got {args}")
        self.args = args
        self.encoder = nn.Embedding(args.ntoken, args.ninp)
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        # The decoder weight IS the embedding (tied); only its bias is separate, so the state dict has
        # no shared tensors (safetensors refuses those).
        self.decoder_bias = nn.Parameter(torch.zeros(args.ntoken))

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        weight = self.encoder.weight
        return torch.zeros(batch_size, self.args.ninp, dtype=weight.dtype, device=weight.device)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor, *extra) -> LMOutput:
        """tokens (T, B) -> logits for every position (T*B rows, time-major)."""
        args = self.args
        emb = embedded_dropout(self.encoder.weight, tokens, args.dropoute, self.training)
        emb = locked_dropout(emb, args.dropouti, self.training)
        raw, hidden = self.cell(emb, hidden, *extra)
        out = locked_dropout(raw, args.dropout, self.training)
        logits = F.linear(out.reshape(-1, args.ninp), self.encoder.weight, self.decoder_bias)
        return LMOutput(logits, hidden, raw)


class RNNLanguageModel(LanguageModelBase):
    """The final language model of an `rnn` genotype."""

    def __init__(self, genotype: Genotype, args: RNNArgs) -> None:
        if genotype.recurrent is None:
            raise GdasError(
                f"{genotype.ref}: a {genotype.kind} genotype cannot build a recurrent language model; "
                "use an rnn genotype (e.g. gdas_rnn)"
            )
        super().__init__(args)
        self.genotype = genotype
        self.cell = RecurrentCell(genotype.recurrent, args.ninp, args.ninp, args.dropouth, args.dropoutx)


def lm_loss(output: LMOutput, targets: torch.Tensor, tar: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to minimise, plain NLL): NLL plus TAR, tar * mean((h_{t+1} - h_t)^2) on the raw outputs."""
    nll = F.cross_entropy(output.logits, targets)
    loss = nll
    if tar > 0 and output.raw.size(0) > 1:
        loss = loss + tar * (output.raw[1:] - output.raw[:-1]).pow(2).mean()
    return loss, nll


# Paper Tables 3-4: emb = hid = 850 on PTB and 700 on WT2; dropouts of the 2019 code (docs/sources.md, "RNN").
DATASET_ARGS: dict[str, dict] = {
    "ptb": {"ninp": 850, "dropout": 0.75, "dropouth": 0.25, "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.1},
    "wt2": {"ninp": 700, "dropout": 0.75, "dropouth": 0.15, "dropoutx": 0.75, "dropouti": 0.2, "dropoute": 0.1},
}


def build_language_model(genotype: Genotype, args: RNNArgs) -> RNNLanguageModel:
    return RNNLanguageModel(genotype, args)
