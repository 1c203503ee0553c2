"""ONNX export of grid_sampler (TorchScript exporter, opset 13-17) and its ORT / TensorRT bindings.

Attributes in every scheme: ``interpolation_mode`` (0 bilinear, 1 nearest), ``padding_mode``
(0 zeros, 1 border, 2 reflection), ``align_corners`` (0/1).

- ``bevdeploy::GridSampler`` (input, grid) for 2D and 3D; grid (N, [Do,] Ho, Wo, 2|3) as torch's.
- ``mmdeploy::grid_sampler`` (input, grid), the same layout.
- ``GridSampler2DTRT`` / ``GridSampler3DTRT`` (``...TRT2`` for half2), BEVFormer_tensorrt: the grid
  arrives channel-first, (N, 2|3, [Do,] Ho, Wo), and scaled by 10 (their plugin divides by 10), so
  the export adds a Transpose and a Mul before the node.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, current_naming, emit
from .reference import grid_sampler_reference

NAMES = OpNames(
    "grid_sampler",
    {"bevdeploy": "bevdeploy::GridSampler", "bevformer_tensorrt": "GridSampler2DTRT", "mmdeploy": "mmdeploy::grid_sampler"},
    half2="GridSampler2DTRT2",
)
NAMES_3D = OpNames(
    "grid_sampler",
    {"bevdeploy": "bevdeploy::GridSampler", "bevformer_tensorrt": "GridSampler3DTRT", "mmdeploy": "mmdeploy::grid_sampler"},
    half2="GridSampler3DTRT2",
)
ONNX_NAMES = {
    **NAMES.scheme_names(),
    "bevformer_tensorrt_3d": NAMES_3D.names["bevformer_tensorrt"],
    "bevformer_tensorrt_3d_half2": NAMES_3D.half2,
}
_TRT_GRID_SCALE = 10.0
_ATTRS = {"interpolation_mode": "int", "padding_mode": "int", "align_corners": "int"}


@symbolic_helper.parse_args("v", "v", "i", "i", "b")
def symbolic(g, input, grid, interpolation_mode, padding_mode, align_corners):
    dims = symbolic_helper._get_tensor_rank(input) - 2
    names = NAMES if dims == 2 else NAMES_3D
    names.qualified()
    attrs = {"interpolation_mode_i": interpolation_mode, "padding_mode_i": padding_mode, "align_corners_i": int(align_corners)}
    if current_naming().scheme == "bevformer_tensorrt":
        perm = [0, 3, 1, 2] if dims == 2 else [0, 4, 1, 2, 3]
        scale = g.op("Constant", value_t=torch.tensor(_TRT_GRID_SCALE))
        grid = g.op("Mul", g.op("Transpose", grid, perm_i=perm), scale)
    return emit(g, names, input, grid, **attrs)


torch.onnx.register_custom_op_symbolic("bevdeploy::grid_sampler", symbolic, 13)


def _ours(input, grid, interpolation_mode, padding_mode, align_corners):
    return grid_sampler_reference(input, grid, interpolation_mode, padding_mode, bool(align_corners))


def _trt(input, grid, interpolation_mode, padding_mode, align_corners):
    grid = torch.movedim(grid, 1, -1) / _TRT_GRID_SCALE
    return _ours(input, grid, interpolation_mode, padding_mode, align_corners)


def define_ort() -> None:
    """Define every exported name of grid_sampler for onnxruntime-extensions (fp32)."""
    for name in (NAMES.names["bevdeploy"], NAMES.names["mmdeploy"]):
        ort.define(name, ["float", "float"], ["float"], _ATTRS, _ours)
    for names in (NAMES, NAMES_3D):
        for name in (names.names["bevformer_tensorrt"], names.half2):
            ort.define(name, ["float", "float"], ["float"], _ATTRS, _trt)


def define_trt() -> None:
    """Register every exported name of grid_sampler as a TensorRT Python plugin."""
    from .. import trt

    attrs = {"interpolation_mode": int, "padding_mode": int, "align_corners": int}

    def run_ours(t, a):
        return torch.ops.bevdeploy.grid_sampler(t["input"], t["grid"], a["interpolation_mode"],
                                                a["padding_mode"], bool(a["align_corners"]))

    def run_trt(t, a):
        grid = (torch.movedim(t["grid"], 1, -1) / _TRT_GRID_SCALE).contiguous()
        return run_ours({"input": t["input"], "grid": grid}, a)

    def out_ours(d, a):
        i, gr = d["input"].shape_expr, d["grid"].shape_expr
        return (i[0], i[1], *[gr[k] for k in range(1, len(gr) - 1)]), d["input"].dtype

    def out_trt(d, a):
        i, gr = d["input"].shape_expr, d["grid"].shape_expr
        return (i[0], i[1], *[gr[k] for k in range(2, len(gr))]), d["input"].dtype

    for name in (NAMES.names["bevdeploy"], NAMES.names["mmdeploy"]):
        trt.register(name, ["input", "grid"], attrs, out_ours, run_ours)
    for names in (NAMES, NAMES_3D):
        for name in (names.names["bevformer_tensorrt"], names.half2):
            trt.register(name, ["input", "grid"], attrs, out_trt, run_trt)
