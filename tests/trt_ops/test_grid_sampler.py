"""grid_sampler 2D/3D: reference vs F.grid_sample for every mode, custom op, autograd, ONNX round trips."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from bevdeploy.plugins.trt_ops.grid_sampler import MODES, PADDINGS, grid_sampler_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _case(dims=2, seed=0, dtype=torch.float32, c=3):
    g = torch.Generator().manual_seed(seed)
    spatial = (5, 7) if dims == 2 else (3, 4, 5)
    out = (4, 6) if dims == 2 else (2, 3, 4)
    x = torch.randn(2, c, *spatial, generator=g, dtype=dtype)
    # beyond [-1, 1] so that every padding mode matters
    grid = torch.rand(2, *out, dims, generator=g, dtype=dtype) * 3 - 1.5
    return x, grid


@pytest.mark.parametrize("dims,mode,padding,align", list(itertools.product(
    (2, 3), ("bilinear", "nearest"), ("zeros", "border", "reflection"), (False, True))))
def test_reference_matches_torch_grid_sample(dims, mode, padding, align):
    x, grid = _case(dims, seed=dims)
    out = grid_sampler_reference(x, grid, MODES[mode], PADDINGS[padding], align)
    expected = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=align)
    assert out.abs().sum() > 0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_custom_op_non_contiguous_and_odd_channels():
    x, grid = _case(seed=1, c=5)
    x_nc = x.transpose(2, 3).contiguous().transpose(2, 3)
    out = torch.ops.bevdeploy.grid_sampler(x_nc, grid, 0, 0, False)
    torch.testing.assert_close(out, F.grid_sample(x, grid, align_corners=False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_gradcheck_float64(dims):
    x, grid = _case(dims, seed=2, dtype=torch.float64, c=2)
    x.requires_grad_(True)
    grid.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: torch.ops.bevdeploy.grid_sampler(a, b, 0, 1, True), (x, grid))


@pytest.mark.parametrize("scheme,half2,dims,op_type", [
    ("bevdeploy", False, 2, "GridSampler"), ("bevdeploy", False, 3, "GridSampler"),
    ("mmdeploy", False, 2, "grid_sampler"), ("mmdeploy", False, 3, "grid_sampler"),
    ("bevformer_tensorrt", False, 2, "GridSampler2DTRT"), ("bevformer_tensorrt", True, 2, "GridSampler2DTRT2"),
    ("bevformer_tensorrt", False, 3, "GridSampler3DTRT"), ("bevformer_tensorrt", True, 3, "GridSampler3DTRT2"),
])
def test_onnx_round_trip(scheme, half2, dims, op_type):
    x, grid = _case(dims, seed=3)
    model = export_one_op(lambda a, b: torch.ops.bevdeploy.grid_sampler(a, b, 0, 2, False), (x, grid), scheme, half2)
    nodes = custom_nodes(model)
    assert [n.op_type for n in nodes] == [op_type]
    assert {a.name for a in nodes[0].attribute} >= {"interpolation_mode", "padding_mode", "align_corners"}
    (out,) = run_onnx(model, (x, grid))
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-5, atol=1e-5)
