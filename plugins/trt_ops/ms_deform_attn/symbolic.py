"""ONNX export of ms_deform_attn (TorchScript exporter, opset 13-17) and its ONNX Runtime /
TensorRT bindings. spatial_shapes and level_start_index are cast to int32 in every scheme.

- ``bevdeploy::MultiScaleDeformableAttn`` (value, spatial_shapes, level_start_index,
  sampling_locations, attention_weights) -> (B, Q, heads*C); no attributes.
- ``mmdeploy::MMCVMultiScaleDeformableAttention``: same inputs, attribute ``im2col_step`` (64).
- ``MultiScaleDeformableAttnTRT`` / ``...TRT2`` (BEVFormer_tensorrt): inputs value,
  value_spatial_shapes, reference_points, sampling_offsets, attention_weights, where sampling
  locations = reference_points + offsets / (W_l, H_l) and the output is (B, Q, heads, C). The
  export feeds zero reference points (B, Q, 2) and offsets = locations * (W_l, H_l) flattened to
  (B, Q, heads, L*P*2), weights flattened to (B, Q, heads, L*P), and reshapes the output.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, current_naming, emit, tensor_sizes
from .reference import ms_deform_attn_reference

NAMES = OpNames(
    "ms_deform_attn",
    {
        "bevdeploy": "bevdeploy::MultiScaleDeformableAttn",
        "bevformer_tensorrt": "MultiScaleDeformableAttnTRT",
        "mmdeploy": "mmdeploy::MMCVMultiScaleDeformableAttention",
    },
    half2="MultiScaleDeformableAttnTRT2",
)
_INT32 = 6  # onnx.TensorProto.INT32


def _const(g, values):
    return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))


def symbolic(g, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    NAMES.qualified()
    shapes = g.op("Cast", spatial_shapes, to_i=_INT32)
    scheme = current_naming().scheme
    vb, _, heads, c = tensor_sizes(value, 4)
    q = tensor_sizes(sampling_locations, 6)[1]
    if scheme in ("bevdeploy", "mmdeploy"):
        starts = g.op("Cast", level_start_index, to_i=_INT32)
        extra = {"im2col_step_i": 64} if scheme == "mmdeploy" else {}
        out_sizes = [vb, q, None if None in (heads, c) else heads * c]
        return emit(g, NAMES, value, shapes, starts, sampling_locations, attention_weights, out_like=value,
                    out_sizes=out_sizes, **extra)
    b, q, *_ = symbolic_helper._get_tensor_sizes(sampling_locations)
    levels = symbolic_helper._get_tensor_sizes(spatial_shapes)[0]
    wh = g.op("Cast", g.op("Gather", spatial_shapes, _const(g, [1, 0]), axis_i=1), to_i=1)
    wh = g.op("Reshape", wh, _const(g, [1, 1, 1, levels, 1, 2]))
    offsets = g.op("Reshape", g.op("Mul", sampling_locations, wh), _const(g, [0, 0, 0, -1]))
    weights = g.op("Reshape", attention_weights, _const(g, [0, 0, 0, -1]))
    reference_points = g.op("Constant", value_t=torch.zeros(b, q, 2))
    out = emit(g, NAMES, value, shapes, reference_points, offsets, weights, out_like=value,
               out_sizes=[vb, q, heads, c])
    return g.op("Reshape", out, _const(g, [0, 0, -1]))


torch.onnx.register_custom_op_symbolic("bevdeploy::ms_deform_attn", symbolic, 13)


def _level_starts(spatial_shapes: torch.Tensor) -> torch.Tensor:
    sizes = spatial_shapes[:, 0] * spatial_shapes[:, 1]
    return torch.cumsum(sizes, 0) - sizes


def bevformer_trt_semantics(value, spatial_shapes, reference_points, sampling_offsets, attention_weights):
    """MultiScaleDeformableAttnTRT's inputs -> (B, Q, heads, C), through the reference."""
    b, q, heads, dim = sampling_offsets.shape
    levels = spatial_shapes.shape[0]
    per_group = reference_points.shape[-1] // 2
    points = dim // (levels * 2 * per_group)
    off = sampling_offsets.reshape(b, q, heads, levels, points, per_group, 2)
    norm = torch.stack([spatial_shapes[:, 1], spatial_shapes[:, 0]], -1).to(off.dtype)
    loc = reference_points.reshape(b, q, 1, 1, 1, per_group, 2) + off / norm.reshape(1, 1, 1, levels, 1, 1, 2)
    loc = loc.reshape(b, q, heads, levels, points * per_group, 2)
    weights = attention_weights.reshape(b, q, heads, levels, points * per_group)
    out = ms_deform_attn_reference(value, spatial_shapes, _level_starts(spatial_shapes), loc, weights)
    return out.reshape(b, q, heads, -1)


def define_ort() -> None:
    """Define every exported name of ms_deform_attn for onnxruntime-extensions (fp32)."""
    ours = ["float", "int32", "int32", "float", "float"]
    ort.define(NAMES.names["bevdeploy"], ours, ["float"], {}, ms_deform_attn_reference)
    ort.define(NAMES.names["mmdeploy"], ours, ["float"], {"im2col_step": "int"},
               lambda *t, im2col_step: ms_deform_attn_reference(*t))
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2):
        ort.define(name, ["float", "int32", "float", "float", "float"], ["float"], {}, bevformer_trt_semantics)


def define_trt() -> None:
    """Register every exported name of ms_deform_attn as a TensorRT Python plugin."""
    from .. import trt

    ours = ["value", "spatial_shapes", "level_start_index", "sampling_locations", "attention_weights"]

    def out_ours(d, a):
        v, loc = d["value"].shape_expr, d["sampling_locations"].shape_expr
        return (v[0], loc[1], v[2] * v[3]), d["value"].dtype

    def run_ours(t, a):
        return torch.ops.bevdeploy.ms_deform_attn(*t.values())

    trt.register(NAMES.names["bevdeploy"], ours, {}, out_ours, run_ours)
    trt.register(NAMES.names["mmdeploy"], ours, {"im2col_step": int}, out_ours, run_ours)
    theirs = ["value", "value_spatial_shapes", "reference_points", "sampling_offsets", "attention_weights"]

    def out_theirs(d, a):
        v, off = d["value"].shape_expr, d["sampling_offsets"].shape_expr
        return (v[0], off[1], v[2], v[3]), d["value"].dtype

    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2):
        trt.register(name, theirs, {}, out_theirs, lambda t, a: bevformer_trt_semantics(*t.values()))
