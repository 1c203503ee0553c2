"""ONNX export of inverse and its ORT / TensorRT bindings (fp32 only).

- ``bevdeploy::Inverse`` (matrices (..., 4, 4)), no attributes.
- ``InverseTRT`` (BEVFormer_tensorrt; it has no half2 variant).
- mmdeploy has no inverse op: exporting under that scheme is refused.
"""

from __future__ import annotations

import torch

from .. import ort
from ..naming import OpNames, emit, tensor_sizes
from .reference import inverse_reference

NAMES = OpNames("inverse", {"bevdeploy": "bevdeploy::Inverse", "bevformer_tensorrt": "InverseTRT"})


def symbolic(g, matrices):
    return emit(g, NAMES, matrices, out_like=matrices, out_sizes=tensor_sizes(matrices))


torch.onnx.register_custom_op_symbolic("bevdeploy::inverse", symbolic, 13)


def define_ort() -> None:
    """Define every exported name of inverse for onnxruntime-extensions (fp32)."""
    for name in NAMES.all_qualified():
        ort.define(name, ["float"], ["float"], {}, inverse_reference)


def define_trt() -> None:
    """Register every exported name of inverse as a TensorRT Python plugin."""
    from .. import trt

    for name in NAMES.all_qualified():
        trt.register(name, ["matrices"], {}, lambda d, a: (tuple(d["matrices"].shape_expr), d["matrices"].dtype),
                     lambda t, a: torch.ops.bevdeploy.inverse(t["matrices"]))
