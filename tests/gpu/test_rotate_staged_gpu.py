"""rotate's shared-memory staged kernel (rotate/kernels.py _rotate_staged_kernel) against the reference on a CUDA GPU:
angles up to whole turns, off-centre centres, row sizes that take 16-, 8- and 4-byte copies, plane counts that
leave partial blocks, and a one-row map; plus the fallbacks (a misaligned view, a row of an odd number of bytes)."""

import types

import pytest
import torch
from gpu_staged import MARKS, TOL, record_launches, stored

pytestmark = MARKS


@pytest.fixture(params=[False, True], ids=["planes", "words"])
def kernels(monkeypatch, request):
    """The kernels with staging on; "words": each staged word holding 2 (fp16) or 4 (int8) channels
    (stage_words_sync), "planes": each plane staged on its own by cp.async."""
    pytest.importorskip("triton")
    from bevdeploy.plugins.trt_ops.rotate import kernels as k

    launches = record_launches(monkeypatch, k, "_rotate_staged_kernel")
    for precision in TOL:
        monkeypatch.setitem(k.TUNING["per_precision"][precision], "staged", True)
        monkeypatch.setitem(k.TUNING["per_precision"][precision], "stage_words", request.param)
    return types.SimpleNamespace(rotate_cuda=k.rotate_cuda, launches=launches, words=request.param)


def _inputs(shape, precision, seed=0):
    return stored(shape, precision, "img", seed)


def _centre(shape, ctr):
    return torch.tensor([shape[-1] * 0.5, shape[-2] * 0.5], device="cuda") if ctr is None else ctr


@pytest.mark.parametrize("precision", list(TOL))
@pytest.mark.parametrize("shape,angle,center", [
    ((19, 200, 200), 7.3, None),
    ((3, 37, 56), 45.0, (10.3, 30.7)),
    ((5, 64, 130), -30.0, None),
    ((2, 48, 72), 90.0, (30.0, 20.0)),
    ((2, 33, 40), 180.0, (17.5, 11.25)),
    ((4, 1, 64), 233.7, None),
    ((7, 96, 64), 1000.0, (40.0, 60.0)),
])
def test_staged_matches_reference(kernels, precision, shape, angle, center):
    from bevdeploy.plugins.trt_ops.rotate.reference import rotate_reference

    x, xf, scales = _inputs(shape, precision)
    ang = torch.tensor([angle], device="cuda")
    ctr = None if center is None else torch.tensor(center, device="cuda")
    out = kernels.rotate_cuda(x, ang, ctr, 0, precision, scales)
    ref = rotate_reference(xf, ang, _centre(shape, ctr), 0)
    if (shape[-1] * x.element_size()) % 4 == 0:
        assert kernels.launches, "the staged kernel did not run"
        # words where the rows hold whole 4-pixel words, else each plane on its own
        assert kernels.launches[0]["IL"] == ({"int8": 4}.get(precision, 2) if kernels.words and shape[-1] % 4 == 0
                                             else 1)
    assert ref.abs().max() > 0
    err = float((out.float() - ref.float()).norm() / ref.float().norm())
    assert err <= TOL[precision], f"{precision} {shape} {angle}: relative error {err:.2e}"


def test_misaligned_and_odd_rows_fall_back(kernels):
    from bevdeploy.plugins.trt_ops.rotate.reference import rotate_reference

    base = torch.randn(3 * 40 * 64 + 1, device="cuda").half()
    view = base[1:].view(3, 40, 64)  # 2 bytes past an aligned address: no cp.async of it
    ang = torch.tensor([12.0], device="cuda")
    out = kernels.rotate_cuda(view, ang, None, 0, "fp16")
    assert not kernels.launches
    odd = torch.randn(2, 20, 33, device="cuda").half()  # 66-byte rows: no 4-byte copies
    out_odd = kernels.rotate_cuda(odd, ang, None, 0, "fp16")
    assert not kernels.launches
    for got, inp in ((out, view), (out_odd, odd)):
        ref = rotate_reference(inp.float(), ang, _centre(inp.shape, None), 0)
        assert float((got.float() - ref).norm() / ref.norm()) <= TOL["fp16"]
