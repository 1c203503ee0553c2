"""rotate's channels-last staged kernel (rotate/kernels.py _rotate_hwc_kernel, trt_ops/hwc_stage.py) against the
reference on a CUDA GPU of sm_90 or newer: angles up to whole turns (the matrix loads' lanes and the staged rows'
swizzle at every direction), off-centre centres, plane counts that leave a partial block of 8, maps smaller than a
box, and the fallbacks (rows not of whole 8-pixel chunks, a misaligned view)."""

import types

import pytest
import torch
from gpu_staged import MARKS, TOL, record_launches, stored

pytestmark = [*MARKS, pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() < (9, 0),
                                         reason="stmatrix needs sm_90")]
HALF = ("fp16", "fp16x2")


@pytest.fixture
def kernels(monkeypatch):
    pytest.importorskip("triton")
    from bevdeploy.plugins.trt_ops.rotate import kernels as k

    launches = record_launches(monkeypatch, k, "_rotate_hwc_kernel")
    for precision in HALF:
        monkeypatch.setitem(k.TUNING["per_precision"][precision], "stage_hwc", True)
    return types.SimpleNamespace(rotate_cuda=k.rotate_cuda, launches=launches)


def _check(kernels, x, xf, precision, angle, center):
    from bevdeploy.plugins.trt_ops.rotate.reference import rotate_reference

    ang = torch.tensor([angle], device="cuda")
    ctr = torch.tensor(center, device="cuda") if center is not None else None
    out = kernels.rotate_cuda(x, ang, ctr, 0, precision)
    full = torch.tensor([x.shape[-1] * 0.5, x.shape[-2] * 0.5], device="cuda") if ctr is None else ctr
    ref = rotate_reference(xf, ang, full, 0)
    assert ref.abs().max() > 0
    err = float((out.float() - ref).norm() / ref.norm())
    assert err <= TOL[precision], f"{precision} {tuple(x.shape)} {angle}: relative error {err:.2e}"


@pytest.mark.parametrize("precision", HALF)
@pytest.mark.parametrize("shape,angle,center", [
    ((19, 200, 200), 7.3, None),
    ((8, 200, 200), -2.0, (90.5, 110.25)),
    ((3, 40, 56), 45.0, (10.3, 30.7)),
    ((2, 48, 72), 90.0, (30.0, 20.0)),
    ((9, 33, 40), 180.0, (17.5, 11.25)),
    ((4, 1, 64), 233.7, None),
    ((7, 96, 64), 1000.0, (40.0, 60.0)),
    ((17, 24, 8), 20.0, None),
])
def test_hwc_matches_reference(kernels, precision, shape, angle, center):
    x, xf, _ = stored(shape, precision, "img")
    _check(kernels, x, xf, precision, angle, center)
    assert kernels.launches, "the channels-last kernel did not run"


def test_hwc_falls_back(kernels):
    odd = stored((3, 40, 60), "fp16", "img")  # 120-byte rows: not whole 16-byte chunks
    _check(kernels, *odd[:2], "fp16", 12.0, None)
    base = torch.randn(3 * 40 * 64 + 8, device="cuda").half()
    view = base[8:].view(3, 40, 64)  # 16 bytes past an aligned address would do; 2 bytes past it would not
    _check(kernels, view, view.float(), "fp16", 12.0, None)
    assert len(kernels.launches) == 1
    shifted = base[1:1 + 3 * 40 * 64].view(3, 40, 64)
    _check(kernels, shifted, shifted.float(), "fp16", 12.0, None)
    assert len(kernels.launches) == 1
