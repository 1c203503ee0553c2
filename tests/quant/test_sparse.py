import pytest
import torch
from bevdeploy.quant import calib_table, calibrate, fold_bn, insert_quantizers
from bevdeploy.specs.run import QuantSpec
from torch import nn

spconv = pytest.importorskip("spconv.pytorch")


def _net_and_input():
    torch.manual_seed(0)
    net = spconv.SparseSequential(
        spconv.SubMConv3d(4, 16, 3, bias=False, indice_key="s0"), nn.BatchNorm1d(16), nn.ReLU(),
        spconv.SparseConv3d(16, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
    ).eval()
    coords = torch.unique(torch.randint(0, 16, (500, 3)), dim=0)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int64), coords], 1).int()
    return net, spconv.SparseConvTensor(torch.randn(len(coords), 4), indices, [16, 16, 16], 1)


def test_sparse_convs_are_fake_quantized_per_output_channel():
    net, x = _net_and_input()
    ref = net(x).features
    fold_bn(net)
    names = insert_quantizers(net, QuantSpec(method="max"))
    assert names == ["0", "3"]
    assert type(net[0]).__name__ == "QuantSubMConv3d" and isinstance(net[0], spconv.SubMConv3d)
    calibrate(net, lambda m: m(x), QuantSpec(method="max"))
    table = calib_table(net)
    assert table["0._weight_quantizer"]["axis"] == 0 and len(table["0._weight_quantizer"]["amax"]) == 16
    out = net(x).features
    cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
    assert 0.99 < cos < 1.0  # quantized: close, not identical
    assert "0.weight" in net.state_dict() and "0._input_quantizer._amax" in net.state_dict()
