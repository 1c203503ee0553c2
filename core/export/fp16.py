"""FP32 -> FP16 conversion of an ONNX graph (FP16 compute and FP16 I/O, as CUDA-BEVFusion ships).

Converting the graph, not the torch module, keeps one export path for fp16 and for Q/DQ graphs
with FP16 elsewhere (pytorch-quantization cannot trace fake-quant in half). Float tensors that
the ONNX spec requires to stay float (Resize roi/scales) are left alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# (op_type, input index) that must stay tensor(float)
_KEEP_FLOAT = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}


def _blocked(model: onnx.ModelProto) -> set[str]:
    names: set[str] = set()
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if (node.op_type, i) in _KEEP_FLOAT:
                names.add(name)
    return names


def _half(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t).astype(np.float16)
    return numpy_helper.from_array(arr, t.name)


def _convert_nodes(model: onnx.ModelProto, blocked: set[str]) -> None:
    for node in model.graph.node:
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                if not (node.op_type == "Constant" and any(o in blocked for o in node.output)):
                    a.t.CopyFrom(_half(a.t))


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of ``model`` with float tensors, constants, casts and graph I/O in float16."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    blocked = _blocked(model)
    graph = model.graph
    inits = []
    for t in graph.initializer:
        inits.append(_half(t) if t.data_type == TensorProto.FLOAT and t.name not in blocked else t)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    _convert_nodes(model, blocked)
    for vi in [*graph.input, *graph.output]:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)

