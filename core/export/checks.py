"""Static checks of an ONNX graph against what TensorRT 10's ONNX parser accepts.

Runs everywhere (no TensorRT needed), so every exported graph is checked here even though no
TensorRT runtime exists on our machines. Rules (TensorRT 10 explicit quantization):

* every node is a standard op the parser implements, or a custom op whose type names a plugin
  (the parser looks plugins up by op type);
* Q/DQ are int8 with zero point 0 (uint8 Q/DQ is rejected);
* scales are build-time constants; activation scales are per tensor; weight scales may be per
  channel on the output-channel axis (0 for Conv/MatMul-style weights, 1 for ConvTranspose).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

# Operators TensorRT 10's ONNX parser implements (onnx-tensorrt docs/operators.md).
TRT10_OPS = frozenset("""
Abs Acos Acosh Add AffineGrid And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LpNormalization LpPool LRN LSTM MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike
Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter
ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign
SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze
Upsample Where Xor
""".split())

_QDQ = ("QuantizeLinear", "DequantizeLinear")
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "Gemm": None, "MatMul": None}


def graph_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Every initializer and Constant node output of ``graph`` by name, as numpy arrays."""
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    return values


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def _is_weight(node: onnx.NodeProto, consts: dict[str, np.ndarray], producers: dict) -> bool:
    """A Q/DQ on a constant (directly, or DQ fed by a Q of a constant)."""
    src = node.input[0]
    if src in consts:
        return True
    prev = producers.get(src)
    return node.op_type == "DequantizeLinear" and prev is not None and prev.op_type == "QuantizeLinear" \
        and prev.input[0] in consts


def _check_qdq(node, consts, producers, consumers, where) -> list[str]:
    problems: list[str] = []
    scale = consts.get(node.input[1]) if len(node.input) > 1 else None
    zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scale is None:
        problems.append(f"{where}: scale is not a build-time constant")
    if zp is not None:
        if zp.dtype == np.uint8:
            problems.append(f"{where}: uint8 Q/DQ (TensorRT accepts only int8 with zero point 0)")
        elif np.any(zp != 0):
            problems.append(f"{where}: non-zero zero point")
    if scale is None or scale.size == 1:
        return problems
    if not _is_weight(node, consts, producers):
        problems.append(f"{where}: per-channel scale on an activation (TensorRT wants one scale per tensor)")
        return problems
    out = node.output[0]
    for user in consumers.get(out, []):
        if user.op_type == "QuantizeLinear" or user.op_type == "DequantizeLinear":
            continue
        want = _WEIGHT_AXIS.get(user.op_type, "other")
        if want is not None and want != "other" and _axis(node) % scale.ndim != want and _axis(node) != want:
            problems.append(f"{where}: per-channel axis {_axis(node)} on a {user.op_type} weight (TensorRT wants {want})")
    return problems


def check_tensorrt(model: onnx.ModelProto, plugin_ops: Iterable[str] = ()) -> list[str]:
    """Problems TensorRT 10's parser/builder would have with ``model`` (empty list = none found).

    ``plugin_ops`` are op types that have a registered TensorRT plugin (e.g. ``"BEVPoolV2TRT"``
    or ``"domain::Name"``); custom-domain nodes not named there are reported.
    """
    graph = model.graph
    plugins = {p.split("::")[-1] for p in plugin_ops}
    consts = graph_constants(graph)
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    problems: list[str] = []
    for node in graph.node:
        where = f"{node.op_type} {node.name or node.output[0]}"
        custom = node.domain not in ("", "ai.onnx")
        if node.op_type in plugins:
            continue
        if custom or node.op_type not in TRT10_OPS:
            what = f"custom op {node.domain}::{node.op_type} has no registered plugin" if custom \
                else f"op {node.op_type} is not supported by TensorRT's ONNX parser"
            problems.append(f"{where}: {what}")
            continue
        if node.op_type in _QDQ:
            problems.extend(_check_qdq(node, consts, producers, consumers, where))
    return problems
