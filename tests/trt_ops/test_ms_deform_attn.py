"""ms_deform_attn: reference vs the grid_sample formulation, custom op, autograd, ONNX round trips."""

import pytest
import torch
import torch.nn.functional as F
from bevdeploy.plugins.trt_ops.ms_deform_attn import ms_deform_attn_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _case(b=2, heads=2, c=5, q=6, points=3, shapes=((6, 8), (3, 4)), seed=0, dtype=torch.float32, spread=1.4):
    g = torch.Generator().manual_seed(seed)
    spatial = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial[:, 0] * spatial[:, 1]
    starts = torch.cumsum(sizes, 0) - sizes
    value = torch.randn(b, int(sizes.sum()), heads, c, generator=g, dtype=dtype)
    # locations spread beyond [0, 1] so that some samples fall (partly) outside the maps
    loc = torch.rand(b, q, heads, len(shapes), points, 2, generator=g, dtype=dtype) * spread - (spread - 1) / 2
    weights = torch.rand(b, q, heads, len(shapes), points, generator=g, dtype=dtype)
    return value, spatial, starts, loc, weights


def _grid_sample_formulation(value, spatial, starts, loc, weights):
    """Independent formulation (Deformable DETR's PyTorch path): F.grid_sample per level."""
    b, _, heads, c = value.shape
    _, q, _, levels, points, _ = loc.shape
    outs = []
    for lvl, (h, w) in enumerate(spatial.tolist()):
        v = value[:, starts[lvl] : starts[lvl] + h * w].flatten(2).transpose(1, 2).reshape(b * heads, c, h, w)
        grid = (2 * loc[:, :, :, lvl] - 1).transpose(1, 2).flatten(0, 1)
        outs.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    attn = weights.transpose(1, 2).reshape(b * heads, 1, q, levels * points)
    out = (torch.stack(outs, -2).flatten(-2) * attn).sum(-1).view(b, heads * c, q)
    return out.transpose(1, 2)


@pytest.mark.parametrize("c", [4, 5])
def test_reference_matches_grid_sample(c):
    inputs = _case(c=c, seed=c)
    out = ms_deform_attn_reference(*inputs)
    assert out.shape == (2, 6, 2 * c) and out.abs().sum() > 0
    torch.testing.assert_close(out, _grid_sample_formulation(*inputs), rtol=1e-5, atol=1e-5)


def test_points_entirely_outside_give_zero():
    value, spatial, starts, loc, weights = _case(seed=1)
    loc = torch.full_like(loc, 1.5)
    assert torch.all(torch.ops.bevdeploy.ms_deform_attn(value, spatial, starts, loc, weights) == 0)


def test_custom_op_non_contiguous():
    value, spatial, starts, loc, weights = _case(seed=2)
    value_nc = value.transpose(2, 3).contiguous().transpose(2, 3)
    assert not value_nc.is_contiguous()
    out = torch.ops.bevdeploy.ms_deform_attn(value_nc, spatial, starts, loc, weights)
    torch.testing.assert_close(out, ms_deform_attn_reference(value, spatial, starts, loc, weights))


def test_gradcheck_float64():
    value, spatial, starts, loc, weights = _case(b=1, heads=1, c=2, q=2, points=2, shapes=((3, 4), (2, 2)),
                                                  seed=3, dtype=torch.float64, spread=1.0)
    for t in (value, loc, weights):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v, lo, w: torch.ops.bevdeploy.ms_deform_attn(v, spatial, starts, lo, w), (value, loc, weights)
    )


@pytest.mark.parametrize("scheme,half2,op_type", [
    ("bevdeploy", False, "MultiScaleDeformableAttn"),
    ("mmdeploy", False, "MMCVMultiScaleDeformableAttention"),
    ("bevformer_tensorrt", False, "MultiScaleDeformableAttnTRT"),
    ("bevformer_tensorrt", True, "MultiScaleDeformableAttnTRT2"),
])
def test_onnx_round_trip(scheme, half2, op_type):
    inputs = _case(seed=4)
    model = export_one_op(lambda *t: torch.ops.bevdeploy.ms_deform_attn(*t), inputs, scheme, half2)
    assert [n.op_type for n in custom_nodes(model)] == [op_type]
    (out,) = run_onnx(model, inputs)
    torch.testing.assert_close(torch.from_numpy(out), ms_deform_attn_reference(*inputs), rtol=1e-5, atol=1e-5)
