"""bevdeploy.sparse convs against spconv 2.3 (same weights) and against dense conv3d."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bevdeploy import sparse as ts
from sparse_inputs import BATCH, SHAPE, needs_spconv, random_sites, single_thread, spconv

# (subm, kwargs): kernel 3 / 1, stride 2, padding per axis, dilation, BEVFusion's z-strided
# conv_out (1,1,3)/(1,1,2) in its xyz layout and the same conv in a zyx layout (3,1,1)/(2,1,1).
CASES = [
    (True, dict(kernel_size=3, padding=1)),
    (True, dict(kernel_size=3, dilation=2)),
    (True, dict(kernel_size=(1, 3, 5))),
    (False, dict(kernel_size=3, stride=2, padding=1)),
    (False, dict(kernel_size=3, stride=2, padding=(1, 1, 0))),
    (False, dict(kernel_size=(1, 1, 3), stride=(1, 1, 2))),
    (False, dict(kernel_size=(3, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0))),
    (False, dict(kernel_size=3, stride=1, dilation=2)),
    (False, dict(kernel_size=1, stride=2)),
]


def _pair(subm: bool, kw: dict, bias: bool = True):
    ref = (spconv.SubMConv3d if subm else spconv.SparseConv3d)(4, 5, bias=bias, **kw)
    ours = (ts.SubMConv3d if subm else ts.SparseConv3d)(4, 5, bias=bias, **kw)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


@needs_spconv
@pytest.mark.parametrize("subm,kw", CASES)
def test_matches_spconv(subm: bool, kw: dict, sites: torch.Tensor, feats: torch.Tensor) -> None:
    ref, ours = _pair(subm, kw)
    with single_thread(), torch.no_grad():
        want = ref(spconv.SparseConvTensor(feats, sites, SHAPE, BATCH))
    got = ours(ts.SparseConvTensor(feats, sites, SHAPE, BATCH))
    assert got.spatial_shape == want.spatial_shape
    assert torch.equal(got.indices, want.indices)  # same sites in the same (spconv CPU) order
    assert got.features.shape[0] > 0
    torch.testing.assert_close(got.features, want.features, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.dense(), want.dense(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("subm,kw", [*CASES, (False, dict(kernel_size=1)), (True, dict(kernel_size=1))])
def test_matches_dense_conv3d(subm: bool, kw: dict, sites: torch.Tensor, feats: torch.Tensor) -> None:
    """Regular conv = dense conv3d (bias-free, so unreached cells are 0); submanifold = dense
    conv3d read at the input sites. Covers kernel 1, where spconv 2.3 reads the weight as
    [in, out] memory (a different convention) and is not compared."""
    conv = (ts.SubMConv3d if subm else ts.SparseConv3d)(4, 5, bias=False, **kw)
    x = ts.SparseConvTensor(feats, sites, SHAPE, BATCH)
    dense_in = x.dense()
    w = conv.weight.permute(0, 4, 1, 2, 3)
    k = conv.kernel_size
    pad = [(kk // 2) * d for kk, d in zip(k, conv.dilation, strict=True)] if subm else list(conv.padding)
    want = F.conv3d(dense_in, w, stride=conv.stride, padding=pad, dilation=conv.dilation)
    got = conv(x).dense()
    if subm:
        want = want * (dense_in.abs().sum(1, keepdim=True) != 0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_gradients_match_dense(sites: torch.Tensor, feats: torch.Tensor) -> None:
    """Autograd through gather/GEMM equals the dense conv's gradients for features and weight."""
    conv = ts.SparseConv3d(4, 5, 3, stride=2, padding=1, bias=True)
    f = feats.clone().requires_grad_(True)
    out = conv(ts.SparseConvTensor(f, sites, SHAPE, BATCH))
    (out.features**2).sum().backward()
    g_f, g_w, g_b = f.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()

    f2 = feats.clone().requires_grad_(True)
    w2 = conv.weight.detach().clone().requires_grad_(True)
    b2 = conv.bias.detach().clone().requires_grad_(True)
    dense = ts.SparseConvTensor(f2, sites, SHAPE, BATCH).dense()
    y = F.conv3d(dense, w2.permute(0, 4, 1, 2, 3), stride=2, padding=1)
    mask = (out.dense().detach().abs().sum(1, keepdim=True) != 0) | (
        F.conv3d((dense != 0).any(1, keepdim=True).float(), torch.ones(1, 1, 3, 3, 3), stride=2, padding=1)
        > 0
    )
    (((y + b2.view(1, -1, 1, 1, 1)) * mask) ** 2).sum().backward()
    torch.testing.assert_close(g_f, f2.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g_w, w2.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g_b, b2.grad, atol=1e-4, rtol=1e-4)


def test_deterministic_on_cpu(feats: torch.Tensor) -> None:
    sites = random_sites(300, seed=3)
    f = torch.randn(300, 4)
    conv = ts.SparseConv3d(4, 8, 3, stride=2, padding=1)
    runs = [conv(ts.SparseConvTensor(f, sites, SHAPE, BATCH)).features for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])


def test_submanifold_rulebook_shared_per_key(sites: torch.Tensor, feats: torch.Tensor) -> None:
    a = ts.SubMConv3d(4, 4, 3, padding=1, indice_key="subm1")
    b = ts.SubMConv3d(4, 4, 3, padding=1, indice_key="subm1")
    y = a(ts.SparseConvTensor(feats, sites, SHAPE, BATCH))
    cached = y.indice_dict["subm1"]
    z = b(y.replace_feature(y.features.relu()))
    assert z.indice_dict["subm1"] is cached
    assert torch.equal(z.indices, sites)
    with pytest.raises(ValueError, match="indice_key"):
        ts.SubMConv3d(4, 4, 5, padding=2, indice_key="subm1")(z)


def test_empty_input() -> None:
    sites = torch.zeros((0, 4), dtype=torch.int32)
    f = torch.zeros((0, 4), requires_grad=True)
    net = ts.SparseSequential(
        ts.SubMConv3d(4, 6, 3, padding=1, indice_key="a"),
        torch.nn.BatchNorm1d(6),
        torch.nn.ReLU(),
        ts.SparseConv3d(6, 8, 3, stride=2, padding=1),
    ).train()
    out = net(ts.SparseConvTensor(f, sites, SHAPE, BATCH))
    assert out.features.shape == (0, 8) and out.indices.shape == (0, 4)
    assert out.spatial_shape == [5, 4, 4]
    dense = out.dense()
    assert dense.shape == (BATCH, 8, 5, 4, 4) and not dense.any()
    dense.sum().backward()
    assert f.grad is not None and f.grad.shape == (0, 4)


@needs_spconv
def test_fake_quant_wrapper_accepts_our_conv(sites: torch.Tensor, feats: torch.Tensor) -> None:
    """core.quant's sparse fake-quant class swap works on our conv as on spconv's (it calls
    ``_conv_forward`` with a quantized weight), with the same result."""
    pytest.importorskip("pytorch_quantization")
    from bevdeploy.quant.modules import set_amax
    from bevdeploy.quant.sparse import quantize_sparse_conv
    from pytorch_quantization.tensor_quant import QuantDescriptor

    ref, ours = _pair(False, dict(kernel_size=3, stride=2, padding=1))
    for m in (ref, ours):
        quantize_sparse_conv(m, QuantDescriptor(num_bits=8), QuantDescriptor(num_bits=8, axis=(0,)))
        set_amax(m._input_quantizer, 2.0)
        set_amax(m._weight_quantizer, m.weight.detach().abs().amax(dim=(1, 2, 3, 4), keepdim=True))
    with single_thread(), torch.no_grad():
        want = ref(spconv.SparseConvTensor(feats, sites, SHAPE, BATCH))
        plain = ts.SparseConv3d(4, 5, 3, stride=2, padding=1)
        plain.load_state_dict(ours.state_dict(), strict=False)
        unquantized = plain(ts.SparseConvTensor(feats, sites, SHAPE, BATCH))
        got = ours(ts.SparseConvTensor(feats, sites, SHAPE, BATCH))
    torch.testing.assert_close(got.features, want.features, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got.features, unquantized.features, atol=1e-6)  # quantization did act


def test_unknown_impl_is_a_user_error() -> None:
    from bevdeploy.errors import BevDeployError

    with pytest.raises(BevDeployError, match="unknown sparse implementation"):
        ts.sparse_impl("cuda-magic")
    assert ts.sparse_impl("torch") is ts
    assert ts.resolve_impl("auto") == ("torch" if spconv is None else "spconv")


@pytest.mark.parametrize("subm", [True, False])
def test_both_kernels_agree(subm: bool, sites: torch.Tensor, feats: torch.Tensor) -> None:
    """The neighbour-map kernel (used on CUDA) and the pair-list kernel (used on CPU) give the
    same features and gradients."""
    x = ts.SparseConvTensor(feats, sites, SHAPE, BATCH)
    conv = ts.SubMConv3d(4, 5, 3) if subm else ts.SparseConv3d(4, 5, 3, stride=2, padding=1)
    rb = conv.rulebook(x)
    results = []
    for kernel in (ts.gather_gemm, ts.gather_gemm_scatter):
        f = feats.clone().requires_grad_(True)
        w = conv.weight.detach().clone().requires_grad_(True)
        out = kernel(f, w, rb)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), f.grad, w.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
