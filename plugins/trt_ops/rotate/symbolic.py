"""ONNX export of rotate and its ORT / TensorRT bindings.

- ``bevdeploy::Rotate`` (img (C,H,W), angle (scalar, degrees), center (2,) (x, y) pixels),
  attribute ``interpolation`` (0 bilinear, 1 nearest).
- ``RotateTRT`` / ``RotateTRT2`` (BEVFormer_tensorrt): the same inputs and attribute.
- mmdeploy has no rotate op: exporting under that scheme is refused.

TensorRT (:data:`TRT_FORMATS`, see ``..trt``): fp32 LINEAR; fp16 LINEAR, kCHW2 and kCHW32; int8 LINEAR, kCHW4 and
kCHW32 (img and output; angle and center stay LINEAR fp32 / fp16; int8 writes fp16). kCHW2 is offered since its
gathers read int32 words of several vectors per pixel (H200 run 21 in benchmarks/results/ops.md: fp16 0.0158 vs
0.0242 ms LINEAR, fp16x2 0.0153 vs 0.0262; with element loads it was slower than LINEAR). The int8 scale comes
from TensorRT or the ``img_scale`` attribute that ``trt.fold_dequantize`` writes (0 = none); our scheme's nodes
carry it from export.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort, trt
from ..naming import OpNames, current_naming, emit, tensor_sizes
from .reference import rotate_reference

NAMES = OpNames("rotate", {"bevdeploy": "bevdeploy::Rotate", "bevformer_tensorrt": "RotateTRT"}, half2="RotateTRT2")
_LINEAR = (("FLOAT", "LINEAR"), ("HALF", "LINEAR"), ("INT8", "LINEAR"))
_VECTOR = (*_LINEAR, ("HALF", "CHW2"), ("HALF", "CHW32"), ("INT8", "CHW4"), ("INT8", "CHW32"))
_BY_RANK = {2: _LINEAR, 3: _VECTOR, 4: _VECTOR}
# every exported name -> the type/format combinations its TensorRT plugin offers (RotateTRT2: half arithmetic)
TRT_FORMATS = {name: trt.PluginFormats(("img", "angle", "center"), "img", _BY_RANK,
                                       half="fp16x2" if name == NAMES.half2 else "fp16")
               for name in NAMES.all_qualified()}
for _name, _f in TRT_FORMATS.items():
    trt.declare(_name, _f)


@symbolic_helper.parse_args("v", "v", "v", "i")
def symbolic(g, img, angle, center, interpolation):
    # our plugin's int8 scale (0: none), see trt.fold_dequantize
    extra = {"img_scale_f": 0.0} if current_naming().scheme == "bevdeploy" else {}
    return emit(g, NAMES, img, angle, center, interpolation_i=interpolation, out_like=img,
                out_sizes=tensor_sizes(img), **extra)


torch.onnx.register_custom_op_symbolic("bevdeploy::rotate", symbolic, 13)


def define_ort() -> None:
    """Define every exported name of rotate for onnxruntime-extensions (fp32)."""
    for name in NAMES.all_qualified():
        ort.define(name, ["float", "float", "float"], ["float"], {"interpolation": "int"}, rotate_reference)


def run_kernel(t: dict[str, torch.Tensor], a: dict, launch: trt.Launch) -> torch.Tensor:
    """What the TensorRT plugin runs: the Triton kernel of ``launch``; for a vectorized layout ``t["img"]`` is the
    physical (*lead, groups, H, W, vec) buffer, whose planes all turn alike, so it runs as (lead * groups, H, W,
    vec) and returns that (the plugin reshapes it to its output buffer)."""
    from .kernels import rotate_cuda

    img = t["img"] if launch.layout == "linear" else t["img"].reshape(-1, *t["img"].shape[-3:])
    scales = None if launch.scale is None else {"img": launch.scale}
    return rotate_cuda(img, t["angle"], t["center"], a["interpolation"], precision=launch.precision, scales=scales,
                       layout=launch.layout)


def define_trt() -> None:
    """Register every exported name of rotate as a TensorRT Python plugin (formats: TRT_FORMATS)."""
    for name, formats in TRT_FORMATS.items():
        trt.register(name, ["img", "angle", "center"], {"interpolation": int, "img_scale": float},
                     lambda d, a: (tuple(d["img"].shape_expr), d["img"].dtype), run_kernel, formats)
