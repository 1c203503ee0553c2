import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.quant import disable, fold_bn, insert_quantizers
from bevdeploy.specs.run import QuantSpec
from quantnets import _randomize_bn, tiny_resnet
from torch import nn


def test_fold_preserves_outputs_and_finds_all_pairs():
    model = tiny_resnet()
    x = torch.randn(2, 3, 64, 96)
    ref = model(x)
    pairs = fold_bn(model)
    # stem + 4 bottlenecks x 3 convs + 2 downsample Sequentials + the ConvTranspose deblock
    assert len(pairs) == 1 + 12 + 2 + 1
    assert ("deblock.0", "deblock.1") in pairs and ("layer2.0.downsample.0", "layer2.0.downsample.1") in pairs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    assert fold_bn(model) == []  # nothing left to fold


class Odd(nn.Module):
    """conv and bn named as a pair, but the forward puts a ReLU between them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(torch.relu(self.conv(x)))


def test_explicit_pairs_and_heuristic_off():
    model = _randomize_bn(Odd()).eval()
    x = torch.randn(1, 3, 8, 8)
    ref = model(x)
    assert fold_bn(model, heuristic=False) == []
    torch.testing.assert_close(model(x), ref)
    with pytest.raises(BevDeployError, match="names a module the model lacks"):
        fold_bn(model, pairs=[("conv", "nope")], heuristic=False)


def test_explicit_pair_with_wrong_channels_is_an_error():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(5)).eval()
    with pytest.raises(BevDeployError, match="equal channels"):
        fold_bn(model, pairs=[("0", "1")], heuristic=False)
    assert fold_bn(model) == []  # the heuristic skips it silently


@pytest.fixture
def one_thread():
    """spconv's strided CPU conv races with more than one thread (about 1% of outputs differ
    between identical calls; BEVFusion's LiDAR encoder runs it single-threaded for that reason)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_fold_sparse_conv_and_batchnorm1d(one_thread):
    spconv = pytest.importorskip("spconv.pytorch")
    torch.manual_seed(0)
    net = spconv.SparseSequential(
        spconv.SubMConv3d(4, 8, 3, bias=False, indice_key="s0"), nn.BatchNorm1d(8), nn.ReLU(),
        spconv.SparseConv3d(8, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm1d(8),
    )
    _randomize_bn(net).eval()
    coords = torch.unique(torch.randint(0, 12, (300, 3)), dim=0)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.int64), coords], 1).int()
    x = spconv.SparseConvTensor(torch.randn(len(coords), 4), indices, [12, 12, 12], 1)
    ref = net(x).features
    assert fold_bn(net) == [("0", "1"), ("3", "4")]
    # spconv's CPU kernels reject a bias in eval mode; the fake-quant wrapper adds it after the conv
    insert_quantizers(net, QuantSpec())
    disable(net, ["*"])
    torch.testing.assert_close(net(x).features, ref, rtol=1e-5, atol=1e-5)
