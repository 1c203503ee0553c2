"""multi_head_attention: reference vs torch SDPA, large logits, ONNX round trips (ours and QKVTRT)."""

import pytest
import torch
import torch.nn.functional as F
from bevdeploy.plugins.trt_ops.multi_head_attention import multi_head_attention_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _qkv(b=2, heads=3, lq=5, lk=7, d=8, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, heads, n, d, generator=g) * scale for n in (lq, lk, lk))


@pytest.mark.parametrize("d", [8, 5])
def test_reference_matches_sdpa(d):
    q, k, v = _qkv(d=d, seed=d)
    torch.testing.assert_close(multi_head_attention_reference(q, k, v), F.scaled_dot_product_attention(q, k, v),
                               rtol=1e-5, atol=1e-5)


def test_large_logits_stay_finite():
    q, k, v = _qkv(seed=1, scale=40.0)
    out = torch.ops.bevdeploy.multi_head_attention(q, k, v)
    assert torch.all(torch.isfinite(out))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q.double(), k.double(), v.double()).float(),
                               rtol=1e-4, atol=1e-3)


def test_non_contiguous():
    q, k, v = _qkv(seed=2)
    k_nc = k.transpose(2, 3).contiguous().transpose(2, 3)
    torch.testing.assert_close(torch.ops.bevdeploy.multi_head_attention(q, k_nc, v), F.scaled_dot_product_attention(q, k, v),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme,half2,op_type", [
    ("bevdeploy", False, "MultiHeadAttention"), ("bevformer_tensorrt", False, "QKVTRT"), ("bevformer_tensorrt", True, "QKVTRT2"),
])
def test_onnx_round_trip(scheme, half2, op_type):
    inputs = _qkv(seed=3)
    model = export_one_op(lambda q, k, v: torch.ops.bevdeploy.multi_head_attention(q, k, v), inputs, scheme, half2)
    assert [n.op_type for n in custom_nodes(model)] == [op_type]
    (out,) = run_onnx(model, inputs)
    torch.testing.assert_close(torch.from_numpy(out), F.scaled_dot_product_attention(*inputs), rtol=1e-5, atol=1e-5)
