"""ONNX export of rotate and its ORT / TensorRT bindings.

- ``bevdeploy::Rotate`` (img (C,H,W), angle (scalar, degrees), center (2,) (x, y) pixels),
  attribute ``interpolation`` (0 bilinear, 1 nearest).
- ``RotateTRT`` / ``RotateTRT2`` (BEVFormer_tensorrt): the same inputs and attribute.
- mmdeploy has no rotate op: exporting under that scheme is refused.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, emit
from .reference import rotate_reference

NAMES = OpNames("rotate", {"bevdeploy": "bevdeploy::Rotate", "bevformer_tensorrt": "RotateTRT"}, half2="RotateTRT2")


@symbolic_helper.parse_args("v", "v", "v", "i")
def symbolic(g, img, angle, center, interpolation):
    return emit(g, NAMES, img, angle, center, interpolation_i=interpolation)


torch.onnx.register_custom_op_symbolic("bevdeploy::rotate", symbolic, 13)


def define_ort() -> None:
    """Define every exported name of rotate for onnxruntime-extensions (fp32)."""
    for name in NAMES.all_qualified():
        ort.define(name, ["float", "float", "float"], ["float"], {"interpolation": "int"}, rotate_reference)


def define_trt() -> None:
    """Register every exported name of rotate as a TensorRT Python plugin."""
    from .. import trt

    for name in NAMES.all_qualified():
        trt.register(
            name, ["img", "angle", "center"], {"interpolation": int},
            lambda d, a: (tuple(d["img"].shape_expr), d["img"].dtype),
            lambda t, a: torch.ops.bevdeploy.rotate(t["img"], t["angle"], t["center"], a["interpolation"]),
        )
