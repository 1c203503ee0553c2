"""Graph rewrites that let ONNX Runtime's CPU provider run more of a graph as integer kernels.

ORT has no integer ConvTranspose on the CPU, and its FP32 ConvTranspose is slow. A
ConvTranspose whose kernel equals its stride (no padding, dilation 1, one group) is exactly a
1x1 Conv producing ``out * k * k`` channels followed by ``DepthToSpace`` (CRD), which ORT quantizes
to QLinearConv. SECOND-FPN's upsampling deblocks (BEVFusion's fuser) are of this kind.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _rewritable(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    if node.op_type != "ConvTranspose" or node.input[1] not in inits:
        return False
    a = _attrs(node)
    w = inits[node.input[1]]
    if len(w.dims) != 4 or a.get("group", 1) != 1 or "output_shape" in a:
        return False
    k = list(w.dims[2:])
    stride = list(a.get("strides", [1, 1]))
    zeros = [0] * 4
    return (k[0] == k[1] == stride[0] == stride[1] and list(a.get("pads", zeros)) == zeros
            and list(a.get("dilations", [1, 1])) == [1, 1] and list(a.get("output_padding", [0, 0])) == [0, 0]
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))


def convtranspose_to_depth_to_space(model: onnx.ModelProto) -> int:
    """Rewrite every kernel==stride ConvTranspose in place; return how many were rewritten.

    The new Conv keeps the ConvTranspose's name and input tensor, so exclusion lists and range
    overrides keyed on them still apply.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        if not _rewritable(node, inits):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])  # [in, out, k, k]
        cin, cout, k, _ = w.shape
        # DepthToSpace CRD reads channel c*k*k + i*k + j for output (c, h*k+i, w*k+j)
        w2 = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(cout * k * k, cin, 1, 1))
        wname = f"{node.input[1]}_as_conv1x1"
        graph.initializer.append(numpy_helper.from_array(w2, wname))
        inputs = [node.input[0], wname]
        if len(node.input) > 2 and node.input[2]:
            b = numpy_helper.to_array(inits[node.input[2]])
            bname = f"{node.input[2]}_as_conv1x1"
            graph.initializer.append(numpy_helper.from_array(np.repeat(b, k * k), bname))
            inputs.append(bname)
        mid = f"{node.output[0]}_before_depth_to_space"
        nodes.append(helper.make_node("Conv", inputs, [mid], name=node.name, kernel_shape=[1, 1]))
        nodes.append(helper.make_node("DepthToSpace", [mid], list(node.output), name=f"{node.name}_d2s",
                                      blocksize=int(k), mode="CRD"))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return count
