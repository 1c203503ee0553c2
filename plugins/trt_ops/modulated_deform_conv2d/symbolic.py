"""ONNX export of modulated_deform_conv2d and its ORT / TensorRT bindings.

Inputs in every scheme: input, offset, mask, weight, bias (a zero bias is exported when the
call has none, so every node has five inputs).

- ``bevdeploy::ModulatedDeformConv2d``: scalar attributes ``stride_h``, ``stride_w``, ``pad_h``,
  ``pad_w``, ``dilation_h``, ``dilation_w``, ``groups``, ``deform_groups`` (scalars so that
  ONNX Runtime's Python ops read them directly).
- ``ModulatedDeformableConv2dTRT`` / ``...TRT2`` (BEVFormer_tensorrt) and
  ``mmdeploy::MMCVModulatedDeformConv2d``: list attributes ``stride``, ``padding``, ``dilation``
  ([h, w]) plus ``groups``, ``deform_groups``; ONNX Runtime runs them after ``ort.adapt_model``.
"""

from __future__ import annotations

import torch
from torch.onnx import symbolic_helper

from .. import ort
from ..naming import OpNames, current_naming, emit, tensor_sizes
from .reference import modulated_deform_conv2d_reference

NAMES = OpNames(
    "modulated_deform_conv2d",
    {
        "bevdeploy": "bevdeploy::ModulatedDeformConv2d",
        "bevformer_tensorrt": "ModulatedDeformableConv2dTRT",
        "mmdeploy": "mmdeploy::MMCVModulatedDeformConv2d",
    },
    half2="ModulatedDeformableConv2dTRT2",
)
_INPUTS = ["float"] * 5


def _out_sizes(input, weight, stride, padding, dilation) -> list[int | None]:
    """(N, C_out, Ho, Wo), Ho = (H + 2 pad - dil (k - 1) - 1) // stride + 1; None where an input dim is dynamic."""
    n, _, h, w = tensor_sizes(input, 4)
    cout, _, kh, kw = tensor_sizes(weight, 4)
    spatial = [None if None in (size, k) else (size + 2 * p - d * (k - 1) - 1) // s + 1
               for size, k, s, p, d in zip((h, w), (kh, kw), stride, padding, dilation, strict=True)]
    return [n, cout, *spatial]


@symbolic_helper.parse_args("v", "v", "v", "v", "v", "is", "is", "is", "i", "i")
def symbolic(g, input, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    NAMES.qualified()
    if symbolic_helper._is_none(bias):
        cout = symbolic_helper._get_tensor_sizes(weight)[0]
        bias = g.op("Constant", value_t=torch.zeros(cout))
    tensors = (input, offset, mask, weight, bias)
    typing = {"out_like": input, "out_sizes": _out_sizes(input, weight, stride, padding, dilation)}
    if current_naming().scheme == "bevdeploy":
        return emit(g, NAMES, *tensors, **typing, stride_h_i=stride[0], stride_w_i=stride[1], pad_h_i=padding[0],
                    pad_w_i=padding[1], dilation_h_i=dilation[0], dilation_w_i=dilation[1], groups_i=groups,
                    deform_groups_i=deform_groups)
    return emit(g, NAMES, *tensors, **typing, stride_i=stride, padding_i=padding, dilation_i=dilation, groups_i=groups,
                deform_groups_i=deform_groups)


torch.onnx.register_custom_op_symbolic("bevdeploy::modulated_deform_conv2d", symbolic, 13)


def _ours(*t, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, deform_groups):
    return modulated_deform_conv2d_reference(
        *t, (stride_h, stride_w), (pad_h, pad_w), (dilation_h, dilation_w), groups, deform_groups
    )


def _lists(*t, stride, padding, dilation, groups, deform_groups):
    return modulated_deform_conv2d_reference(*t, stride, padding, dilation, groups, deform_groups)


def define_ort() -> None:
    """Define every exported name of modulated_deform_conv2d for onnxruntime-extensions (fp32)."""
    scalar = dict.fromkeys(("stride_h", "stride_w", "pad_h", "pad_w", "dilation_h", "dilation_w", "groups",
                            "deform_groups"), "int")
    ort.define(NAMES.names["bevdeploy"], _INPUTS, ["float"], scalar, _ours)
    lists = {"stride": "ints", "padding": "ints", "dilation": "ints", "groups": "int", "deform_groups": "int"}
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2, NAMES.names["mmdeploy"]):
        ort.define(name, _INPUTS, ["float"], lists, _lists)


def define_trt() -> None:
    """Register every exported name of modulated_deform_conv2d as a TensorRT Python plugin.

    The output size depends on the attributes: (N, C_out, Ho, Wo) with
    Ho = (H + 2 pad - dil (k - 1) - 1) // stride + 1, expressed on TensorRT shape expressions.
    """
    import numpy as np
    import numpy.typing as npt

    from .. import trt

    tensors = ["input", "offset", "mask", "weight", "bias"]

    def out_shape(d, a, stride, padding, dilation):
        i, w = d["input"].shape_expr, d["weight"].shape_expr
        ho = (i[2] + 2 * padding[0] - dilation[0] * (w[2] - 1) - 1) // stride[0] + 1
        wo = (i[3] + 2 * padding[1] - dilation[1] * (w[3] - 1) - 1) // stride[1] + 1
        return (i[0], w[0], ho, wo), d["input"].dtype

    def run(t, stride, padding, dilation, groups, deform_groups):
        return torch.ops.bevdeploy.modulated_deform_conv2d(
            *t.values(), list(stride), list(padding), list(dilation), groups, deform_groups)

    scalar = {k: int for k in ("stride_h", "stride_w", "pad_h", "pad_w", "dilation_h", "dilation_w", "groups",
                               "deform_groups")}
    trt.register(
        NAMES.names["bevdeploy"], tensors, scalar,
        lambda d, a: out_shape(d, a, (a["stride_h"], a["stride_w"]), (a["pad_h"], a["pad_w"]),
                               (a["dilation_h"], a["dilation_w"])),
        lambda t, a: run(t, (a["stride_h"], a["stride_w"]), (a["pad_h"], a["pad_w"]),
                         (a["dilation_h"], a["dilation_w"]), a["groups"], a["deform_groups"]),
    )
    pair = npt.NDArray[np.int32]  # the ONNX parser hands INTS attributes to plugins as int32 fields
    lists = {"stride": pair, "padding": pair, "dilation": pair, "groups": int, "deform_groups": int}
    for name in (NAMES.names["bevformer_tensorrt"], NAMES.half2, NAMES.names["mmdeploy"]):
        trt.register(
            name, tensors, lists,
            lambda d, a: out_shape(d, a, [int(v) for v in a["stride"]], [int(v) for v in a["padding"]],
                                   [int(v) for v in a["dilation"]]),
            lambda t, a: run(t, [int(v) for v in a["stride"]], [int(v) for v in a["padding"]],
                             [int(v) for v in a["dilation"]], a["groups"], a["deform_groups"]),
        )
