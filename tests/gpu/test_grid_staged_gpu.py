"""The grid sampler's shared-memory staged kernel (grid_sampler/kernels.py _grid_sampler_staged_kernel) against the
reference on a CUDA GPU. Smooth warps (rotations, shifts, small jitter) keep each program's corners inside the
staged box; a zoomed-out or random grid does not, and those programs gather from global memory instead; grids
that reach past the map read the zeros the copy writes there. 2D and 3D, every padding mode, both align_corners,
channel counts that leave partial blocks; plus the launcher's fallbacks (a misaligned view, rows of an odd byte
count)."""

import math
import types

import pytest
import torch
from gpu_staged import MARKS, TOL, record_launches, stored

pytestmark = MARKS


@pytest.fixture
def kernels(monkeypatch):
    pytest.importorskip("triton")
    from bevdeploy.plugins.trt_ops.grid_sampler import kernels as k

    launches = record_launches(monkeypatch, k, "_grid_sampler_staged_kernel")
    for precision in TOL:
        for key in (precision, f"{precision}:2d", f"{precision}:3d"):
            monkeypatch.setitem(k.TUNING["per_precision"], key, {**k.TUNING["per_precision"].get(key, {}),
                                                                  "staged": True})
    return types.SimpleNamespace(grid_sampler_cuda=k.grid_sampler_cuda, launches=launches)


def _warp(n, out_sp, yaw_deg, shift, scale=1.0, jitter=0.002, seed=0):
    """An affine BEV warp (yaw about z, a shift, a zoom) with a little noise, as temporal alignment applies it."""
    import torch.nn.functional as F

    dims = len(out_sp)
    theta = torch.eye(dims, dims + 1).repeat(n, 1, 1) * scale
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = c * scale, -s * scale, s * scale, c * scale
    theta[:, 0, dims], theta[:, 1, dims] = shift
    grid = F.affine_grid(theta, [n, 1, *out_sp], align_corners=False)
    return grid + torch.randn(grid.shape, generator=torch.Generator().manual_seed(seed)) * jitter


def _inputs(shape, precision, seed=1):
    return stored(shape, precision, "input", seed)


def _check(kernels, precision, x, xf, grid, scales, pad=0, align=False, staged=True):
    from bevdeploy.plugins.trt_ops.grid_sampler.reference import grid_sampler_reference

    g = grid.cuda()
    if precision != "fp32":
        g = g.half()  # the kernels read an fp16 grid: the reference samples at the same positions
    out = kernels.grid_sampler_cuda(x, g, 0, pad, align, precision, scales)
    ref = grid_sampler_reference(xf, g.float(), 0, pad, align)
    assert bool(kernels.launches) == staged
    assert ref.abs().max() > 0
    err = float((out.float() - ref.float()).norm() / ref.float().norm())
    assert err <= TOL[precision], f"{precision}: relative error {err:.2e}"


@pytest.mark.parametrize("precision", list(TOL))
@pytest.mark.parametrize("shape,out_sp,yaw,shift,scale,pad,align", [
    ((2, 19, 64, 80), (48, 72), 3.0, (0.04, -0.03), 1.0, 0, False),  # smooth: staged boxes
    ((1, 8, 200, 200), (200, 200), 7.3, (0.0, 0.0), 1.0, 0, False),
    ((1, 5, 40, 48), (40, 48), 0.0, (0.3, -0.4), 1.0, 0, True),  # a shift past two edges: zero-filled chunks
    ((1, 6, 37, 64), (30, 50), 20.0, (0.1, 0.2), 1.0, 1, False),  # border padding; tilted boxes: some fall back
    ((1, 6, 37, 64), (30, 50), -5.0, (0.9, 0.0), 1.3, 2, True),  # reflection past the edge, zoomed out
    ((1, 4, 32, 40), (64, 80), 2.0, (0.0, 0.0), 0.5, 0, False),  # zoomed in: small footprints
    ((1, 4, 64, 64), (16, 16), 0.0, (0.0, 0.0), 4.0, 0, False),  # zoomed out 4x: every program falls back
])
def test_staged_2d_matches_reference(kernels, precision, shape, out_sp, yaw, shift, scale, pad, align):
    x, xf, scales = _inputs(shape, precision)
    _check(kernels, precision, x, xf, _warp(shape[0], out_sp, yaw, shift, scale), scales, pad, align)


@pytest.mark.parametrize("precision", list(TOL))
@pytest.mark.parametrize("shape,out_sp,yaw,scale,pad", [
    ((1, 9, 8, 48, 64), (8, 40, 56), 3.0, 1.0, 0),  # z near whole slices: the box spans 3 of them
    ((2, 20, 5, 30, 40), (4, 30, 40), 10.0, 1.0, 1),
    ((1, 3, 1, 24, 32), (2, 24, 32), 0.0, 1.0, 0),  # one input slice: the others zero-filled
    ((1, 4, 6, 32, 48), (3, 16, 24), 0.0, 2.0, 2),  # zoomed out 2x: fallback
])
def test_staged_3d_matches_reference(kernels, precision, shape, out_sp, yaw, scale, pad):
    x, xf, scales = _inputs(shape, precision)
    _check(kernels, precision, x, xf, _warp(shape[0], out_sp, yaw, (0.04, -0.03), scale), scales, pad)


@pytest.mark.parametrize("precision", list(TOL))
@pytest.mark.parametrize("box", [(2, 8, 32), (4, 4, 32), (2, 4, 16)])
def test_staged_3d_boxes_of_several_slices(kernels, monkeypatch, precision, box):
    """Boxes of TZ > 1 output slices stage TZ + 2 input slices per channel (FD; with the 3 staged before, no program of
    such a box fitted and all gathered from global memory); at 4 slices, 6 planes per channel are not a power of two
    (NPLP pads them)."""
    from bevdeploy.plugins.trt_ops.grid_sampler import kernels as k

    key = f"{precision}:3d"
    monkeypatch.setitem(k.TUNING["per_precision"], key, {**k.TUNING["per_precision"][key], "stage_box_3d": box,
                                                         "stage_block_c": 2})
    shape, out_sp = (1, 9, 8, 48, 64), (8, 40, 56)
    x, xf, scales = _inputs(shape, precision)
    _check(kernels, precision, x, xf, _warp(shape[0], out_sp, 3.0, (0.04, -0.03)), scales)
    assert kernels.launches[0]["FD"] == box[0] + 2
    planes, nplp = 2 * (box[0] + 2), kernels.launches[0]["NPLP"]  # 2 channels a block, FD slices each
    assert nplp >= planes and nplp & (nplp - 1) == 0 and nplp < 2 * planes  # the next power of two


@pytest.mark.parametrize("precision", list(TOL))
@pytest.mark.parametrize("dims", [2, 3])
def test_random_grid_falls_back_in_kernel(kernels, precision, dims):
    """Uniform random points (a margin of them off the map): no program's corners fit, all gather from global."""
    shape, out_sp = ((2, 10, 30, 40), (20, 24)) if dims == 2 else ((1, 7, 6, 20, 24), (5, 10, 12))
    grid = torch.rand((shape[0], *out_sp, dims), generator=torch.Generator().manual_seed(3)) * 2.2 - 1.1
    x, xf, scales = _inputs(shape, precision)
    _check(kernels, precision, x, xf, grid, scales)


def test_misaligned_and_odd_rows_use_the_unstaged_kernel(kernels):
    base = torch.randn(3 * 40 * 64 + 1, device="cuda").half()
    view = base[1:].view(1, 3, 40, 64)  # 2 bytes past an aligned address: no cp.async of it
    grid = _warp(1, (40, 64), 3.0, (0.0, 0.0))
    _check(kernels, "fp16", view, view.float(), grid, None, staged=False)
    odd = torch.randn(1, 2, 20, 33, device="cuda").half()  # 66-byte rows: no 4-byte copies
    _check(kernels, "fp16", odd, odd.float(), _warp(1, (20, 33), 3.0, (0.0, 0.0)), None, staged=False)
