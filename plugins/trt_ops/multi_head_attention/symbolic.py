"""ONNX export of multi_head_attention and its ORT / TensorRT bindings.

- ``bevdeploy::MultiHeadAttention`` (query, key, value), each (B, heads, L, d); no attributes.
- ``QKVTRT`` / ``QKVTRT2`` (BEVFormer_tensorrt) is single-head with query (N, Lq, d), key
  *transposed* (N, d, Lk) and value (N, Lk, d): the export folds heads into the batch
  (N = B*heads), transposes the key and restores (B, heads, Lq, d) after the node.
- mmdeploy has no counterpart under this name: exporting under that scheme is refused.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, current_naming, emit, tensor_sizes
from .reference import multi_head_attention_reference

NAMES = OpNames(
    "multi_head_attention", {"bevdeploy": "bevdeploy::MultiHeadAttention", "bevformer_tensorrt": "QKVTRT"}, half2="QKVTRT2"
)


def _shape(g, values):
    return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))


def symbolic(g, query, key, value):
    NAMES.qualified()
    b, heads, lq, d = tensor_sizes(query, 4)
    if current_naming().scheme == "bevdeploy":
        return emit(g, NAMES, query, key, value, out_like=query, out_sizes=[b, heads, lq, d])
    q3 = g.op("Reshape", query, _shape(g, [b * heads, lq, d]))
    lk = symbolic_helper._get_tensor_sizes(key)[2]
    k3 = g.op("Transpose", g.op("Reshape", key, _shape(g, [b * heads, lk, d])), perm_i=[0, 2, 1])
    v3 = g.op("Reshape", value, _shape(g, [b * heads, lk, d]))
    out = emit(g, NAMES, q3, k3, v3, out_like=query, out_sizes=[b * heads, lq, d])
    return g.op("Reshape", out, _shape(g, [b, heads, lq, d]))


torch.onnx.register_custom_op_symbolic("bevdeploy::multi_head_attention", symbolic, 13)


def qkvtrt_semantics(query: torch.Tensor, key_t: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """QKVTRT's inputs (N, Lq, d), (N, d, Lk), (N, Lk, d) -> (N, Lq, d), through the reference."""
    out = multi_head_attention_reference(query.unsqueeze(1), key_t.transpose(1, 2).unsqueeze(1), value.unsqueeze(1))
    return out.squeeze(1)


def define_ort() -> None:
    """Define every exported name of multi_head_attention for onnxruntime-extensions (fp32)."""
    ort.define(NAMES.names["bevdeploy"], ["float"] * 3, ["float"], {}, multi_head_attention_reference)
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2):
        ort.define(name, ["float"] * 3, ["float"], {}, qkvtrt_semantics)


def define_trt() -> None:
    """Register every exported name of multi_head_attention as a TensorRT Python plugin."""
    from .. import trt

    def out_shape(d, a):
        return tuple(d["query"].shape_expr), d["query"].dtype

    trt.register(NAMES.names["bevdeploy"], ["query", "key", "value"], {}, out_shape,
                 lambda t, a: torch.ops.bevdeploy.multi_head_attention(t["query"], t["key"], t["value"]))
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2):
        trt.register(name, ["query", "key", "value"], {}, out_shape,
                     lambda t, a: torch.ops.bevdeploy.multi_head_attention(
                         t["query"].unsqueeze(1), t["key"].transpose(1, 2).unsqueeze(1), t["value"].unsqueeze(1)
                     ).squeeze(1))
