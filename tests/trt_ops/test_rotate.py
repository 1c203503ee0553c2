"""rotate: reference vs exact quarter turns and an affine_grid + grid_sample formulation, ONNX round trips."""

import math

import pytest
import torch
import torch.nn.functional as F
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.rotate import rotate_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _img(c=3, h=6, w=6, seed=0, dtype=torch.float32):
    return torch.randn(c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("interpolation", [0, 1])
def test_quarter_turns_about_the_centre_are_exact(interpolation):
    img = _img(seed=1)
    centre = torch.tensor([3.0, 3.0])
    for k in (1, 2, -1):
        out = rotate_reference(img, torch.tensor(90.0 * k), centre, interpolation)
        torch.testing.assert_close(out, torch.rot90(img, k, (1, 2)), rtol=0, atol=1e-5)
    torch.testing.assert_close(rotate_reference(img, torch.tensor(0.0), centre, interpolation), img)


def test_matches_torchvision_style_affine_grid():
    """Independent formulation: torchvision builds theta and samples with grid_sample (align_corners=False)."""
    img = _img(c=2, h=5, w=8, seed=2)
    angle, (cx, cy) = 33.0, (3.2, 2.1)
    a = math.radians(angle)
    ccx, ccy = cx - 8 / 2, cy - 5 / 2  # centre relative to the image centre, in pixels
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    theta[0, 2] = ccx - theta[0, 0] * ccx - theta[0, 1] * ccy
    theta[1, 2] = ccy - theta[1, 0] * ccx - theta[1, 1] * ccy
    theta = theta / torch.tensor([[8 / 2], [5 / 2]]) * torch.tensor([[8 / 2, 5 / 2, 1.0]])
    grid = F.affine_grid(theta.unsqueeze(0), [1, 2, 5, 8], align_corners=False)
    expected = F.grid_sample(img.unsqueeze(0), grid, mode="bilinear", align_corners=False)[0]
    out = rotate_reference(img, torch.tensor(angle), torch.tensor([cx, cy]), 0)
    assert out.abs().sum() > 0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_custom_op_non_contiguous_and_corners_outside_are_zero():
    img = _img(c=4, h=7, w=7, seed=3)
    img_nc = img.transpose(1, 2).contiguous().transpose(1, 2)
    out = torch.ops.bevdeploy.rotate(img_nc, torch.tensor(45.0), torch.tensor([3.5, 3.5]), 1)
    torch.testing.assert_close(out, rotate_reference(img, torch.tensor(45.0), torch.tensor([3.5, 3.5]), 1))
    assert torch.all(out[:, 0, 0] == 0)  # the corner rotates in from outside the map


@pytest.mark.parametrize("scheme,half2,op_type", [
    ("bevdeploy", False, "Rotate"), ("bevformer_tensorrt", False, "RotateTRT"), ("bevformer_tensorrt", True, "RotateTRT2"),
])
def test_onnx_round_trip(scheme, half2, op_type):
    inputs = (_img(seed=4, h=8, w=10), torch.tensor(-27.0), torch.tensor([4.5, 3.0]))
    model = export_one_op(lambda i, a, c: torch.ops.bevdeploy.rotate(i, a, c, 0), inputs, scheme, half2)
    nodes = custom_nodes(model)
    assert [n.op_type for n in nodes] == [op_type] and "interpolation" in {a.name for a in nodes[0].attribute}
    (out,) = run_onnx(model, inputs)
    torch.testing.assert_close(torch.from_numpy(out), rotate_reference(*inputs, 0), rtol=1e-5, atol=1e-5)


def test_mmdeploy_has_no_rotate():
    inputs = (_img(), torch.tensor(10.0), torch.tensor([3.0, 3.0]))
    with pytest.raises(BevDeployError, match="no mmdeploy counterpart"):
        export_one_op(lambda i, a, c: torch.ops.bevdeploy.rotate(i, a, c, 0), inputs, "mmdeploy")
