"""The op registry: exact layer order of the 2019 code, shapes at both strides, FRC checks."""

import pytest
import torch
from torch import nn

from gdas_cli import GdasError
from gdas_cli.genotype import CNN_OPS, RNN_OPS
from gdas_cli.ops import OPS, PRIMITIVES, FactorizedReduce, FixedReductionCell, Identity, Zero, build_op


def test_primitives_in_original_order():
    assert PRIMITIVES == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    )
    assert set(PRIMITIVES) <= set(OPS)


def test_genotype_op_names_are_the_op_table():
    """genotype.py validates names without importing torch; its names must be exactly the table's."""
    from gdas_cli.ops import RNN_PRIMITIVES

    assert CNN_OPS == frozenset(OPS)
    assert RNN_OPS == RNN_PRIMITIVES


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_op_shapes(name, stride):
    op = build_op(name, 8, stride, affine=True)
    out = op(torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 8, 8 // stride, 8 // stride)


def test_layer_orders():
    sep = build_op("sep_conv_3x3", 8, 2, affine=True)
    layers = [type(m).__name__ for m in sep.modules() if not list(m.children())]
    assert layers == ["ReLU", "Conv2d", "Conv2d", "BatchNorm2d"] * 2
    convs = [m for m in sep.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1), (1, 1)], "only the first depthwise conv strides"
    dil = build_op("dil_conv_5x5", 8, 1, affine=True)
    assert dil[1].dilation == (2, 2) and dil[1].padding == (4, 4) and dil[1].groups == 8
    pool = build_op("avg_pool_3x3", 8, 1, affine=True)
    assert not pool[1].affine and not pool[0].count_include_pad, "pool BN stays affine-free in final nets"
    assert isinstance(build_op("skip_connect", 8, 1, True), Identity)
    assert isinstance(build_op("skip_connect", 8, 2, True), FactorizedReduce)
    assert all(not m.affine for m in build_op("sep_conv_5x5", 8, 1, False).modules() if isinstance(m, nn.BatchNorm2d))


def test_zero_subsamples_then_zeroes():
    x = torch.randn(1, 2, 6, 6)
    assert torch.equal(Zero(2)(x), torch.zeros(1, 2, 3, 3))


def test_factorized_reduce_shifts_second_path():
    fr = FactorizedReduce(1, 2, affine=False)
    with torch.no_grad():
        fr.conv_1.weight.fill_(1.0)
        fr.conv_2.weight.fill_(1.0)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    fr.eval()
    raw = torch.cat([fr.conv_1(x), fr.conv_2(torch.nn.functional.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:])], 1)
    assert raw[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]
    assert raw[0, 1].tolist() == [[5.0, 7.0], [13.0, 15.0]]


def test_fixed_reduction_cell():
    cell = FixedReductionCell(16)
    out = cell(torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8))
    assert out.shape == (2, 64, 4, 4)
    grouped = [m for m in cell.modules() if isinstance(m, nn.Conv2d) and m.groups == 8]
    assert len(grouped) == 4
    with pytest.raises(GdasError, match="divisible by 8, got 12"):
        FixedReductionCell(12)


def test_unknown_op():
    with pytest.raises(GdasError, match="unknown op 'conv_9x9'"):
        build_op("conv_9x9", 8, 1, True)
