"""Export-and-run helpers shared by the op tests and by anyone checking a graph with custom ops.

``export_one_op`` writes a module holding custom ops to ONNX under a naming scheme;
``run_onnx`` runs an ONNX model on ONNX Runtime's CPU provider with every custom op defined.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import onnx
import torch

from .naming import custom_opsets, onnx_naming


class _Wrap(torch.nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def export_one_op(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    scheme: str = "bevdeploy",
    half2: bool = False,
    opset: int = 17,
) -> onnx.ModelProto:
    """Export ``fn(*inputs)`` (TorchScript exporter, ``dynamo=False``) under ``scheme``.

    The graph passes ``onnx.checker``'s full check, except under ``bevformer_tensorrt``: that
    project puts its plugin nodes in the default ONNX domain, which the checker rejects by design
    (TensorRT's parser accepts them), so those graphs are returned unchecked.
    """
    buffer = io.BytesIO()
    names = [f"in{i}" for i in range(len(inputs))]
    with onnx_naming(scheme, half2=half2):
        torch.onnx.export(
            _Wrap(fn), tuple(inputs), buffer, dynamo=False, opset_version=opset,
            input_names=names, output_names=["out"], custom_opsets=custom_opsets(scheme),
        )
    model = onnx.load_from_string(buffer.getvalue())
    if scheme != "bevformer_tensorrt":
        onnx.checker.check_model(model, full_check=True)
    return model


def run_onnx(model: onnx.ModelProto, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Run ``model`` on ONNX Runtime CPU with all registered custom ops.

    ``inputs`` in the order given to :func:`export_one_op` (inputs the graph pruned are skipped),
    or else in graph-input order."""
    import onnxruntime

    from . import ort

    options = ort.session_options()  # defines every op first, so adapt_model knows their list attributes
    session = onnxruntime.InferenceSession(
        ort.adapt_model(model).SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    by_name = {f"in{i}": t for i, t in enumerate(inputs)}  # export_one_op's names; unused inputs are pruned
    names = [i.name for i in session.get_inputs()]
    if not all(n in by_name for n in names):
        by_name = dict(zip(names, inputs, strict=False))
    feed = {n: by_name[n].detach().contiguous().numpy() for n in names}
    return session.run(None, feed)


def custom_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes outside the standard ONNX operator set (what a plugin library must provide)."""
    from onnx import defs

    out = []
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or not defs.has(node.op_type):
            out.append(node)
    return out
