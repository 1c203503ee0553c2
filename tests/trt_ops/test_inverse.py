"""inverse: reference vs torch.linalg.inv, ill-conditioned and singular input, ONNX round trips.

Tolerance: fp32, |A^-1_ref - A^-1_linalg| <= 1e-5 * cond(A) relative to |A^-1| (both are backward
stable; their difference grows with the condition number). Exactly singular input gives inf/nan,
as the TensorRT plugin's closed form would; callers must not feed singular matrices.
"""

import pytest
import torch
from bevdeploy.plugins.trt_ops.inverse import inverse_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _matrices(n=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 4, generator=g, dtype=dtype) + 2 * torch.eye(4, dtype=dtype)


def _lidar2img_like(seed=0):
    """Projection-like matrices (intrinsics @ extrinsics): entries from ~1e-3 to ~1e3."""
    g = torch.Generator().manual_seed(seed)
    k = torch.tensor([[1260.0, 0, 800, 0], [0, 1260.0, 450, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    r, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    ext = torch.eye(4)
    ext[:3, :3] = r
    ext[:3, 3] = torch.randn(3, generator=g)
    return (k @ ext).unsqueeze(0)


def test_matches_linalg_inv_and_batches():
    m = _matrices(seed=1).reshape(2, 3, 4, 4)
    out = torch.ops.bevdeploy.inverse(m)
    torch.testing.assert_close(out, torch.linalg.inv(m), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out @ m, torch.eye(4).expand_as(m), rtol=0, atol=1e-5)


def test_lidar2img_like_matrices():
    m = _lidar2img_like(seed=2)
    out = inverse_reference(m)
    torch.testing.assert_close(out, torch.linalg.inv(m.double()).float(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("eps", [1e-2, 1e-4])
def test_ill_conditioned_error_bounded_by_condition_number(eps):
    m = _matrices(n=4, seed=3).double()
    m[:, 3] = m[:, 2] + eps * m[:, 3]  # nearly dependent rows
    cond = torch.linalg.cond(m)
    exact = torch.linalg.inv(m)
    out = inverse_reference(m.float()).double()
    rel = (out - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1)
    assert torch.all(torch.isfinite(out))
    assert torch.all(rel <= 1e-6 * cond + 1e-6)


def test_singular_gives_non_finite():
    m = _matrices(n=1, seed=4)
    m[:, 3] = m[:, 2]
    assert not torch.all(torch.isfinite(inverse_reference(m)))


def test_non_contiguous():
    m = _matrices(seed=5)
    m_t = m.transpose(1, 2)
    assert not m_t.is_contiguous()
    torch.testing.assert_close(torch.ops.bevdeploy.inverse(m_t), torch.linalg.inv(m_t), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme,op_type", [("bevdeploy", "Inverse"), ("bevformer_tensorrt", "InverseTRT")])
def test_onnx_round_trip(scheme, op_type):
    m = _matrices(seed=6).reshape(1, 6, 4, 4)
    model = export_one_op(lambda x: torch.ops.bevdeploy.inverse(x), (m,), scheme)
    assert [n.op_type for n in custom_nodes(model)] == [op_type]
    (out,) = run_onnx(model, (m,))
    torch.testing.assert_close(torch.from_numpy(out), torch.linalg.inv(m), rtol=1e-5, atol=1e-5)


def test_half_input_is_inverted_in_fp32():
    m = _matrices(seed=7)
    out = torch.ops.bevdeploy.inverse(m.half())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.linalg.inv(m.half().float()), rtol=1e-5, atol=1e-5)
