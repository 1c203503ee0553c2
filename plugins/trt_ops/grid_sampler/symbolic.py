"""ONNX export of grid_sampler (TorchScript exporter, opset 13-17) and its ORT / TensorRT bindings.

Attributes in every scheme: ``interpolation_mode`` (0 bilinear, 1 nearest), ``padding_mode``
(0 zeros, 1 border, 2 reflection), ``align_corners`` (0/1).

- ``bevdeploy::GridSampler`` (input, grid) for 2D and 3D; grid (N, [Do,] Ho, Wo, 2|3) as torch's.
- ``mmdeploy::grid_sampler`` (input, grid), the same layout.
- ``GridSampler2DTRT`` / ``GridSampler3DTRT`` (``...TRT2`` for half2), BEVFormer_tensorrt: the grid
  arrives channel-first, (N, 2|3, [Do,] Ho, Wo), and scaled by 10 (their plugin divides by 10), so
  the export adds a Transpose and a Mul before the node.

TensorRT (:data:`TRT_FORMATS`, see ``..trt``): fp32 LINEAR; fp16 LINEAR and kCHW2 (2D, H200 run 21 in
benchmarks/results/ops.md: fp16 0.0150 vs 0.0217 ms linear, fp16x2 0.0143 vs 0.0220); int8 LINEAR, kCHW4 and kCHW32
(0.0108 / 0.0101 vs 0.0226 ms linear), kCDHW32 in 3D; the grid stays a LINEAR fp32 /
fp16 tensor; int8 writes fp16. kHWC8 is not offered: no measurement shows it faster, and its one vector of all
(padded) channels per pixel is wider than the 32 bytes a lane loads coalesced once C > 16 (layouts.vector_block),
as for BEV features (C 64-256). The int8 scale comes from TensorRT or the ``input_scale`` attribute that
``trt.fold_dequantize`` writes (0 = none); our scheme's nodes carry it from export.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort, trt
from ..naming import OpNames, current_naming, emit, tensor_sizes
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
_COMMON = (("FLOAT", "LINEAR"), ("HALF", "LINEAR"), ("INT8", "LINEAR"))
_BY_RANK = {4: (*_COMMON, ("HALF", "CHW2"), ("HALF", "CHW32"), ("INT8", "CHW4"), ("INT8", "CHW32")),
            5: (*_COMMON, ("HALF", "CDHW32"), ("INT8", "CDHW32"))}


def _formats(half: str = "fp16") -> trt.PluginFormats:
    return trt.PluginFormats(("input", "grid"), "input", _BY_RANK, half=half)


# every exported name -> the type/format combinations its TensorRT plugin offers (half2 names: half arithmetic)
TRT_FORMATS = {name: _formats() for name in (NAMES.names["bevdeploy"], NAMES.names["mmdeploy"],
                                              NAMES.names["bevformer_tensorrt"], NAMES_3D.names["bevformer_tensorrt"])}
TRT_FORMATS |= {NAMES.half2: _formats("fp16x2"), NAMES_3D.half2: _formats("fp16x2")}
for _name, _f in TRT_FORMATS.items():
    trt.declare(_name, _f)


@symbolic_helper.parse_args("v", "v", "i", "i", "b")
def symbolic(g, input, grid, interpolation_mode, padding_mode, align_corners):
    dims = symbolic_helper._get_tensor_rank(input) - 2
    names = NAMES if dims == 2 else NAMES_3D
    names.qualified()
    attrs = {"interpolation_mode_i": interpolation_mode, "padding_mode_i": padding_mode, "align_corners_i": int(align_corners)}
    if current_naming().scheme == "bevdeploy":  # our plugin's int8 scale (0: none), see trt.fold_dequantize
        attrs["input_scale_f"] = 0.0
    n, c, *_ = tensor_sizes(input, dims + 2)
    out_sizes = [n, c, *tensor_sizes(grid, dims + 2)[1:-1]]  # the grid's torch layout, before any Transpose
    if current_naming().scheme == "bevformer_tensorrt":
        perm = [0, 3, 1, 2] if dims == 2 else [0, 4, 1, 2, 3]
        scale = g.op("Constant", value_t=torch.tensor(_TRT_GRID_SCALE))
        grid = g.op("Mul", g.op("Transpose", grid, perm_i=perm), scale)
    return emit(g, names, input, grid, out_like=input, out_sizes=out_sizes, **attrs)


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


def trt_grid(grid: torch.Tensor) -> torch.Tensor:
    """BEVFormer_tensorrt's channel-first grid scaled by 10 -> torch's (N, [Do,] Ho, Wo, 2|3)."""
    return (torch.movedim(grid, 1, -1) / _TRT_GRID_SCALE).contiguous()


def run_kernel(t: dict[str, torch.Tensor], a: dict, launch: trt.Launch, foreign_grid: bool = False) -> torch.Tensor:
    """What the TensorRT plugin runs: the Triton kernel of ``launch`` on the input in ``launch.layout`` (its
    physical buffer), returning the output in that layout."""
    from .kernels import grid_sampler_cuda

    grid = trt_grid(t["grid"]) if foreign_grid else t["grid"]
    scales = None if launch.scale is None else {"input": launch.scale}
    return grid_sampler_cuda(t["input"], grid, a["interpolation_mode"], a["padding_mode"], bool(a["align_corners"]),
                             precision=launch.precision, scales=scales, layout=launch.layout)


def define_trt() -> None:
    """Register every exported name of grid_sampler as a TensorRT Python plugin (formats: TRT_FORMATS)."""
    attrs = {"interpolation_mode": int, "padding_mode": int, "align_corners": int, "input_scale": float}

    def out_ours(d, a):
        i, gr = d["input"].shape_expr, d["grid"].shape_expr
        return (i[0], i[1], *[gr[k] for k in range(1, len(gr) - 1)]), d["input"].dtype

    def out_trt(d, a):
        i, gr = d["input"].shape_expr, d["grid"].shape_expr
        return (i[0], i[1], *[gr[k] for k in range(2, len(gr))]), d["input"].dtype

    def run_foreign(t, a, launch):
        return run_kernel(t, a, launch, foreign_grid=True)

    for name, formats in TRT_FORMATS.items():
        ours = name in (NAMES.names["bevdeploy"], NAMES.names["mmdeploy"])
        trt.register(name, ["input", "grid"], attrs, out_ours if ours else out_trt,
                     run_kernel if ours else run_foreign, formats)
