"""Discrete cells built from a genotype: the searched cell and the fixed reduction cell share one interface."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from ..errors import GdasError
from ..genotype import FRC, Cell, Genotype
from ..ops import FactorizedReduce, FixedReductionCell, Identity, ReLUConvBN, build_op, drop_path


def _preprocess(
    C_prev_prev: int, C_prev: int, C: int, reduction_prev: bool, affine: bool
) -> tuple[nn.Module, nn.Module]:
    s0 = FactorizedReduce(C_prev_prev, C, affine) if reduction_prev else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine)
    return s0, ReLUConvBN(C_prev, C, 1, 1, 0, affine)


class InferCell(nn.Module):
    """A cell of a final network: each node sums its genotype edges; the concat list forms the output.

    A node whose two edges read the same input applies both ops (the 2019 code silently kept one).
    """

    def __init__(
        self,
        cell: Cell,
        C_prev_prev: int,
        C_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = _preprocess(C_prev_prev, C_prev, C, reduction_prev, affine)
        self.inputs = [[edge.input for edge in node] for node in cell.nodes]
        self.ops = nn.ModuleList(
            nn.ModuleList(build_op(e.op, C, 2 if reduction and e.input < 2 else 1, affine) for e in node)
            for node in cell.nodes
        )
        self.concat = list(cell.concat)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for inputs, ops in zip(self.inputs, self.ops, strict=True):
            total = 0
            for index, op in zip(inputs, cast(nn.ModuleList, ops), strict=True):
                out = op(states[index])
                if self.training and drop_prob > 0 and not isinstance(op, Identity):
                    out = drop_path(out, drop_prob)
                total = total + out
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class FixedReductionInferCell(nn.Module):
    """The fixed reduction cell with the usual two-input preprocessing, so networks can stack it."""

    multiplier = FixedReductionCell.multiplier
    reduction = True

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction_prev: bool, affine: bool = True) -> None:
        super().__init__()
        self.preprocess0, self.preprocess1 = _preprocess(C_prev_prev, C_prev, C, reduction_prev, affine)
        self.body = FixedReductionCell(C, affine=affine)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        return self.body(self.preprocess0(s0), self.preprocess1(s1), drop_prob)


def build_cell(
    genotype: Genotype,
    *,
    c_prev_prev: int,
    c_prev: int,
    c: int,
    reduction: bool,
    reduction_prev: bool = False,
    affine: bool = True,
) -> InferCell | FixedReductionInferCell:
    """One cell of `genotype` for use in any network: `forward(s0, s1, drop_prob=0.0)` gives
    `multiplier * c` channels, at half resolution when `reduction` is set."""
    if genotype.space != "darts":
        raise GdasError(f"{genotype.ref}: a {genotype.space} genotype has no DARTS convolutional cell")
    spec = genotype.reduce if reduction else genotype.normal
    if spec == FRC:
        return FixedReductionInferCell(c_prev_prev, c_prev, c, reduction_prev, affine)
    if not isinstance(spec, Cell):
        raise GdasError(f"{genotype.ref}: no {'reduce' if reduction else 'normal'} cell")
    return InferCell(spec, c_prev_prev, c_prev, c, reduction, reduction_prev, affine)
