"""The fused sparse-conv kernel (bevdeploy.sparse.kernels) on the CPU, in Triton's interpreter, against torch's
gather + GEMM at small sizes: both reduction layouts (channel counts that are and are not a multiple of the chunk),
submanifold and strided rulebooks, fp32 and fp16, with and without bias and with blocks of sites that have no
neighbour at all (the skipped products). tests/gpu/test_sparse_kernel_gpu.py checks the compiled kernel."""

from __future__ import annotations

import pytest
import torch
from sparse_inputs import random_sites
from triton_interpreter import reason

WHY = reason()  # before anything imports Triton
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "-")

from bevdeploy import sparse as ts  # noqa: E402
from bevdeploy.sparse import conv as sparse_conv  # noqa: E402

SHAPE = [9, 8, 7]
TOL = {torch.float32: 1e-5, torch.float16: 3e-3}


def _kernels():
    from bevdeploy.sparse import kernels

    return kernels


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _case(c_in: int, c_out: int, subm: bool, seed: int = 0):
    sites = random_sites(200, SHAPE, 2, seed=seed)
    torch.manual_seed(seed)
    x = ts.SparseConvTensor(torch.randn(200, c_in), sites, SHAPE, 2)
    conv = ts.SubMConv3d(c_in, c_out, 3) if subm else ts.SparseConv3d(c_in, c_out, 3, stride=2, padding=1)
    return x, conv, conv.rulebook(x)


@pytest.mark.parametrize("c_in,c_out", [(5, 8), (8, 16), (16, 16), (32, 24), (3, 3), (64, 32)])
@pytest.mark.parametrize("subm", [True, False], ids=["subm", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_fused_matches_gather_gemm(c_in: int, c_out: int, subm: bool, dtype: torch.dtype) -> None:
    x, conv, rb = _case(c_in, c_out, subm, seed=c_in * 7 + c_out)
    f, w, b = x.features.to(dtype), conv.weight.detach().to(dtype), torch.randn(c_out).to(dtype)
    ref = sparse_conv.gather_gemm(f.float(), w.float(), rb) + b.float()  # on the same rounded inputs
    out = _kernels().implicit_gemm(f, sparse_conv.offset_major_weight(w, rb.offsets), rb.neighbors, b)
    assert out.dtype == dtype and out.shape == (rb.neighbors.shape[0], c_out)
    assert ref.abs().max() > 0
    assert _rel(out, ref) <= TOL[dtype]


def test_launch_shapes_cover_both_reduction_layouts() -> None:
    """The channel counts above take both branches of the kernel: whole row chunks and per-element offsets."""
    kernels = _kernels()
    assert kernels.launch_shape(16, 16, half=False)["ROW_CHUNKS"]
    assert kernels.launch_shape(64, 32, half=True)["ROW_CHUNKS"]
    assert not kernels.launch_shape(5, 8, half=False)["ROW_CHUNKS"]
    assert not kernels.launch_shape(8, 16, half=True)["ROW_CHUNKS"]


def test_blocks_without_neighbours_are_skipped_exactly() -> None:
    """64 isolated sites (two cells apart on every axis) fill the first block: its products are skipped, its rows
    are the bias alone, and skipping changes no bit anywhere."""
    lone = torch.stack(torch.meshgrid(*(torch.arange(0, 8, 2),) * 3, indexing="ij"), -1).reshape(-1, 3)
    dense = torch.stack(torch.meshgrid(torch.arange(20, 25), torch.arange(0, 6), torch.arange(0, 4),
                                       indexing="ij"), -1).reshape(-1, 3)  # fmt: skip
    sites = torch.cat([lone, dense])
    idx = torch.cat([torch.zeros(len(sites), 1, dtype=torch.long), sites], 1).int()
    torch.manual_seed(0)
    x = ts.SparseConvTensor(torch.randn(len(sites), 16), idx, [26, 8, 8], 1)
    conv = ts.SubMConv3d(16, 16, 3)
    rb = conv.rulebook(x)
    assert (rb.neighbors[:64] < rb.num_inputs).sum() == 64  # only the centre offset: each lone site itself
    w = sparse_conv.offset_major_weight(conv.weight.detach(), rb.offsets)
    b = torch.randn(16)
    kernels = _kernels()
    skipped = kernels.implicit_gemm(x.features, w, rb.neighbors, b, skip_empty=True)
    full = kernels.implicit_gemm(x.features, w, rb.neighbors, b, skip_empty=False)
    assert torch.equal(skipped, full)
    ref = sparse_conv.gather_gemm(x.features, conv.weight.detach(), rb) + b
    assert _rel(skipped, ref) <= 1e-5


def test_edge_cases() -> None:
    kernels = _kernels()
    x, conv, rb = _case(16, 8, subm=True)
    w = sparse_conv.offset_major_weight(conv.weight.detach(), rb.offsets)
    # no output sites
    none = kernels.implicit_gemm(x.features, w, rb.neighbors[:0], None)
    assert none.shape == (0, 8)
    # no neighbour anywhere: the bias alone; no bias: exact zeros
    b = torch.randn(8)
    empty = torch.full_like(rb.neighbors[:70], rb.num_inputs)
    assert torch.equal(kernels.implicit_gemm(x.features, w, empty, b), b.expand(70, 8))
    assert torch.equal(kernels.implicit_gemm(x.features, w, empty, None), torch.zeros(70, 8))
    # non-contiguous features (a column slice of a wider tensor)
    wide = torch.randn(x.features.shape[0], 32)
    f = wide[:, 8:24]
    assert not f.is_contiguous()
    ref = sparse_conv.gather_gemm(f.contiguous(), conv.weight.detach(), rb)
    assert _rel(kernels.implicit_gemm(f, w, rb.neighbors, None), ref) <= 1e-5
    with pytest.raises(ValueError, match="offsets x 16 channels"):
        kernels.implicit_gemm(x.features, w[:-1], rb.neighbors, None)


def test_the_conv_module_keeps_the_cpu_kernel_on_the_cpu() -> None:
    """The fused path is for CUDA tensors: a CPU forward stays on gather_gemm_scatter, with or without grad."""
    x, conv, _ = _case(16, 8, subm=True)
    assert not sparse_conv._fused_applies(x.features, conv.weight)
    with torch.no_grad():
        assert not sparse_conv._fused_applies(x.features, conv.weight)
