"""ONNX export of bev_pool_columns (TorchScript exporter, ``dynamo=False``, opset 13-17) and its ONNX Runtime
and TensorRT bindings.

One node, ``bevdeploy::BEVPoolColumns``: inputs depth (B,N,D,H,W), feat (B,N,H,W,C), runs (4,R) int32,
fill (F,) int32 (the plan of ``bev_pool_columns_prepare``, graph inputs like BEVDet's ranks) -> (B,C,Z,Y,X);
attributes ``out_z``, ``out_height`` (Y), ``out_width`` (X) (ints). The op is ours: neither
BEVFormer_tensorrt nor mmdeploy has it, so exporting under their schemes is refused (export bev_pool_v2
for their plugin libraries).
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, emit, tensor_sizes
from .reference import bev_pool_columns_reference

NAMES = OpNames("bev_pool_columns", {"bevdeploy": "bevdeploy::BEVPoolColumns"})
_TENSORS = ["depth", "feat", "runs", "fill"]
_ATTRS = {"out_z": int, "out_height": int, "out_width": int}


@symbolic_helper.parse_args("v", "v", "v", "v", "is")
def symbolic(g, depth, feat, runs, fill, out_shape):
    _, z, y, x, _ = out_shape
    b, c = tensor_sizes(depth, 5)[0], tensor_sizes(feat, 5)[4]
    return emit(g, NAMES, depth, feat, runs, fill, out_z_i=z, out_height_i=y, out_width_i=x,
                out_like=feat, out_sizes=[b, c, z, y, x])


torch.onnx.register_custom_op_symbolic("bevdeploy::bev_pool_columns", symbolic, 13)


def _ours(depth, feat, runs, fill, *, out_z, out_height, out_width):
    shape = [depth.shape[0], out_z, out_height, out_width, feat.shape[-1]]
    return bev_pool_columns_reference(depth, feat, runs, fill, shape)


def define_ort() -> None:
    """Define bev_pool_columns' node for onnxruntime-extensions (fp32)."""
    ort.define(NAMES.names["bevdeploy"], ["float", "float", "int32", "int32"], ["float"],
               {name: "int" for name in _ATTRS}, _ours)


def _trt_run(t, a):
    shape = [t["depth"].shape[0], a["out_z"], a["out_height"], a["out_width"], t["feat"].shape[-1]]
    return torch.ops.bevdeploy.bev_pool_columns(*t.values(), shape)


def define_trt() -> None:
    """Register bev_pool_columns' node as a TensorRT Python plugin."""
    from .. import trt

    trt.register(
        NAMES.names["bevdeploy"], _TENSORS, _ATTRS,
        lambda d, a: ((d["depth"].shape_expr[0], d["feat"].shape_expr[4], a["out_z"], a["out_height"], a["out_width"]),
                      d["feat"].dtype),
        _trt_run,
    )
