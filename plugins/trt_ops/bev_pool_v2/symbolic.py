"""ONNX export of bev_pool_v2 (TorchScript exporter, ``dynamo=False``, opset 13-17) and its
ONNX Runtime binding.

Nodes, by scheme (inputs always: depth, feat, ranks_depth, ranks_feat, ranks_bev,
interval_starts, interval_lengths; ranks/intervals are graph inputs, int32, as in BEVDet's
TensorRT deployment):

- ``bevdeploy::BEVPoolV2`` — depth (B,N,D,H,W), feat (B,N,H,W,C) -> (B,C,Z,Y,X);
  attributes ``out_z``, ``out_height`` (Y), ``out_width`` (X) (ints).
- ``BEVPoolV2TRT`` / ``BEVPoolV2TRT2`` (BEVDet / BEVFormer_tensorrt plugin, default domain) —
  depth (N,D,H,W), feat (N,H,W,C) -> (1,Y,X,C); attributes ``out_height``, ``out_width``. It only
  knows batch 1 and one z slice, so the export refuses other shapes and adds the Squeeze /
  Transpose / Unsqueeze around the node that map our layout onto it.
- mmdeploy has no bev_pool_v2 TensorRT op upstream: exporting under that scheme is refused.
"""

from __future__ import annotations

import torch
from bevdeploy import BevDeployError
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, current_naming, emit, tensor_sizes
from .reference import bev_pool_v2_reference

NAMES = OpNames(
    "bev_pool_v2",
    {"bevdeploy": "bevdeploy::BEVPoolV2", "bevformer_tensorrt": "BEVPoolV2TRT"},
    half2="BEVPoolV2TRT2",
)


def _axes(g, *axes: int):
    return g.op("Constant", value_t=torch.tensor(list(axes), dtype=torch.int64))


@symbolic_helper.parse_args("v", "v", "v", "v", "v", "v", "v", "is")
def symbolic(g, depth, feat, ranks_depth, ranks_feat, ranks_bev, starts, lengths, out_shape):
    b, z, y, x, _ = out_shape
    ranks = (ranks_depth, ranks_feat, ranks_bev, starts, lengths)
    NAMES.qualified()  # refuses a scheme without this op before any shape check
    c = tensor_sizes(feat, 5)[4]
    if current_naming().scheme == "bevdeploy":
        return emit(g, NAMES, depth, feat, *ranks, out_z_i=z, out_height_i=y, out_width_i=x,
                    out_like=feat, out_sizes=[tensor_sizes(depth, 5)[0], c, z, y, x])
    if b != 1 or z != 1:
        raise BevDeployError(
            f"BEVPoolV2TRT supports batch 1 and one z slice only (got B={b}, Z={z}); export under 'bevdeploy'"
        )
    depth4 = g.op("Squeeze", depth, _axes(g, 0))
    feat4 = g.op("Squeeze", feat, _axes(g, 0))
    nhwc = emit(g, NAMES, depth4, feat4, *ranks, out_height_i=y, out_width_i=x, out_like=feat, out_sizes=[1, y, x, c])
    nchw = g.op("Transpose", nhwc, perm_i=[0, 3, 1, 2])
    return g.op("Unsqueeze", nchw, _axes(g, 2))


torch.onnx.register_custom_op_symbolic("bevdeploy::bev_pool_v2", symbolic, 13)

_INPUTS = ["float", "float"] + ["int32"] * 5


def _ours(depth, feat, *ranks, out_z, out_height, out_width):
    shape = [depth.shape[0], out_z, out_height, out_width, feat.shape[-1]]
    return bev_pool_v2_reference(depth, feat, *ranks, shape)


def _bevdet(depth, feat, *ranks, out_height, out_width):
    shape = [1, 1, out_height, out_width, feat.shape[-1]]
    out = bev_pool_v2_reference(depth.unsqueeze(0), feat.unsqueeze(0), *ranks, shape)
    return out[:, :, 0].permute(0, 2, 3, 1)


def define_ort() -> None:
    """Define every exported name of bev_pool_v2 for onnxruntime-extensions (fp32)."""
    ort.define(NAMES.names["bevdeploy"], _INPUTS, ["float"], {"out_z": "int", "out_height": "int", "out_width": "int"}, _ours)
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2):
        ort.define(name, _INPUTS, ["float"], {"out_height": "int", "out_width": "int"}, _bevdet)


def _trt_run_ours(t, a):
    shape = [t["depth"].shape[0], a["out_z"], a["out_height"], a["out_width"], t["feat"].shape[-1]]
    return torch.ops.bevdeploy.bev_pool_v2(*t.values(), shape)


def _trt_run_bevdet(t, a):
    shape = [1, 1, a["out_height"], a["out_width"], t["feat"].shape[-1]]
    rest = list(t.values())[2:]
    out = torch.ops.bevdeploy.bev_pool_v2(t["depth"].unsqueeze(0), t["feat"].unsqueeze(0), *rest, shape)
    return out[:, :, 0].permute(0, 2, 3, 1)


def define_trt() -> None:
    """Register every exported name of bev_pool_v2 as a TensorRT Python plugin."""
    from .. import trt

    tensors = ["depth", "feat", "ranks_depth", "ranks_feat", "ranks_bev", "interval_starts", "interval_lengths"]
    trt.register(
        NAMES.names["bevdeploy"], tensors, {"out_z": int, "out_height": int, "out_width": int},
        lambda d, a: ((d["depth"].shape_expr[0], d["feat"].shape_expr[4], a["out_z"], a["out_height"], a["out_width"]),
                      d["feat"].dtype),
        _trt_run_ours,
    )
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2):
        trt.register(
            name, tensors, {"out_height": int, "out_width": int},
            lambda d, a: ((1, a["out_height"], a["out_width"], d["feat"].shape_expr[3]), d["feat"].dtype),
            _trt_run_bevdet,
        )
