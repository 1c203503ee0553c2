"""ONNX export of subgraphs per precision and backend flavour, and static checks of the result.

``export_subgraph`` is what the core's default export hook calls; ``export_onnx`` is the same for
a bare module. Precisions (see :data:`bevdeploy.graph.PRECISIONS`):

* ``fp32``: TorchScript exporter, opset 17, quantizers disabled.
* ``fp16``: the FP32 graph converted to FP16 compute with FP16 I/O (what TensorRT gets);
  ONNX Runtime's CPU provider upcasts it at load, recorded in ``meta["notes"]``.
* ``int8`` / ``int8-fp32`` with flavour ``trt``: fake-quant traced as QuantizeLinear/DequantizeLinear
  on conv inputs (per tensor) and weights (per channel); for ``int8`` the graph is moved to
  opset 19 (Q/DQ on float16) and everything else runs in FP16.
* ``int8`` / ``int8-fp32`` with flavour ``ort``: lowered from the same calibration to ORT's QDQ
  (U8S8, outputs quantized) so ORT's CPU provider runs integer kernels (see :mod:`.ort_qdq`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from ..errors import BevDeployError
from ..graph import PRECISIONS, Artifact, Subgraph
from .checks import check_tensorrt
from .fp16 import to_fp16
from .io import graph_meta, save_atomic

# .trace and .ort_qdq import pytorch-quantization; they are imported where an export needs them, so that the
# ONNX passes and checks of this package (e.g. check_tensorrt, checks.graph_constants, which the TensorRT glue
# uses) work on a machine without it

FLAVOURS = ("trt", "ort")
FP16_ON_ORT_CPU = "fp16 graph: ONNX Runtime's CPU provider upcasts FP16 to FP32 at load (no FP16 speedup)"

__all__ = ["FLAVOURS", "check_tensorrt", "export_onnx", "export_subgraph"]


def _trt_int8(module, inputs, input_names, output_names, dynamic_axes, precision, notes):
    from .trace import fb_fake_quant, trace_onnx

    with fb_fake_quant():
        model = trace_onnx(module, inputs, input_names, output_names, dynamic_axes)
    if precision == "int8":  # FP16 elsewhere: Q/DQ on float16 needs opset 19
        model = to_fp16(onnx.version_converter.convert_version(model, 19))
        notes.append("int8 Q/DQ with FP16 elsewhere (opset 19); on ONNX Runtime run it with graph optimizations "
                     "off: ORT's CPU fusion of float16 Q/DQ loses accuracy")
    return model


def _build(module, inputs, input_names, output_names, dynamic_axes, precision, flavour, meta, calib):
    from .ort_qdq import lower_ort
    from .trace import has_enabled_quantizers, quantizers_off, trace_onnx

    notes: list[str] = meta.setdefault("notes", [])
    if precision in ("fp32", "fp16") or not has_enabled_quantizers(module):
        if precision.startswith("int8"):
            notes.append(f"{precision} asked but the module has no enabled quantizers: exported without Q/DQ")
        with quantizers_off(module):
            model = trace_onnx(module, inputs, input_names, output_names, dynamic_axes)
        if precision in ("fp16", "int8") and flavour == "trt":
            model = to_fp16(model)
        elif precision == "fp16":
            model = to_fp16(model)
            notes.append(FP16_ON_ORT_CPU)
        return model
    if flavour == "trt":
        return _trt_int8(module, inputs, input_names, output_names, dynamic_axes, precision, notes)
    model, facts = lower_ort(module, inputs, input_names, output_names, dynamic_axes, calib)
    meta.update(facts)
    if precision == "int8":
        notes.append("int8 on ONNX Runtime CPU: non-quantized parts run in FP32, not FP16")
    return model


def export_onnx(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: list[str],
    output_names: list[str],
    path: str | Path,
    precision: str,
    flavour: str,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    calib_inputs: Sequence[Sequence[torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Export ``module`` for ``precision`` in Q/DQ ``flavour`` to ``path`` (atomically); return meta.
    ``calib_inputs`` (more input tuples like ``example_inputs``) widen the ranges ORT's lowering
    measures itself (default: ``example_inputs`` alone).

    ``meta`` holds opset, I/O dtypes, Q/DQ node counts, op counts, the flavour and notes about
    what a backend will really do with the precision.
    """
    if precision not in PRECISIONS:
        raise BevDeployError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if flavour not in FLAVOURS:
        raise BevDeployError(f"unknown Q/DQ flavour {flavour!r}; use one of {', '.join(FLAVOURS)}")
    from .trace import OPSET

    meta: dict[str, Any] = {"precision": precision, "qdq_flavour": flavour, "exporter": f"torch.onnx opset {OPSET}"}
    model = _build(module, list(example_inputs), input_names, output_names, dynamic_axes, precision, flavour, meta,
                   [list(c) for c in calib_inputs or [example_inputs]])
    save_atomic(model, path)
    meta.update(graph_meta(model))
    if flavour == "trt":
        meta["tensorrt_problems"] = check_tensorrt(model)
    return meta


def export_subgraph(
    subgraph: Subgraph,
    example_inputs: dict[str, torch.Tensor],
    precision: str,
    flavour: str,
    out_dir: Path,
    backend: str = "",
    calib_inputs: Sequence[dict[str, torch.Tensor]] | None = None,
) -> Artifact:
    """Export one subgraph to ``out_dir/<name>.<precision>.<flavour>.onnx`` and describe it.

    ``precision`` is the subgraph's effective precision (``subgraph.precision_for(run_precision)``);
    ``flavour`` is ``BackendSpec.qdq_flavour`` ("trt" or "ort").
    """
    missing = [n for n in subgraph.inputs if n not in example_inputs]
    if missing:
        raise ValueError(f"export of {subgraph.name!r} lacks example inputs {missing}")
    inputs = [example_inputs[n] for n in subgraph.inputs]
    path = Path(out_dir) / f"{subgraph.name}.{precision}.{flavour}.onnx"
    calib = [[c[n] for n in subgraph.inputs] for c in calib_inputs] if calib_inputs else None
    meta = export_onnx(subgraph.module, inputs, subgraph.inputs, subgraph.outputs, path, precision, flavour,
                       subgraph.dynamic_axes, calib)
    return Artifact(name=subgraph.name, precision=precision, backend=backend, format="onnx",
                    input_names=list(subgraph.inputs), output_names=list(subgraph.outputs), path=path, meta=meta)
