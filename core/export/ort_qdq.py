"""Lowering a calibrated module to ONNX Runtime's QDQ form (U8S8, conv outputs quantized).

ORT's CPU provider only turns QDQ into integer kernels (QLinearConv, QLinearAdd, ...) when a
node's inputs AND outputs are quantized; TensorRT-style Q/DQ (inputs + weights only) runs slower
than FP32 there. So the FP32 graph is exported, pre-processed, and quantized by ORT's own
``quantize_static`` (QDQ, activations uint8 with zero point, weights int8 symmetric per channel),
with the ranges of every tensor a pytorch-quantization input quantizer covered taken from OUR
calibration (``TensorQuantOverrides``: rmax = amax; rmin = 0 after a Relu, else -amax). Tensors
our quantizers do not cover (conv outputs feeding an Add, ...) get ranges ORT measures itself
over the piece's inputs recorded on every calibration sample: its Percentile calibration, the
range that cuts 0.005% of the values off each end. Conv/Gemm nodes whose module is unquantized
or disabled are excluded, and so is every node that writes a graph output.

Measured on BEVDet-tiny, 640 validation samples, INT8 NDS loss against FP32 (0.5 points
allowed): 1.32 points with MinMax ranges from one recorded example; 1.05 with the graph-output
writers float (bev.head SQNR 30.8 -> 34.3 dB); 0.62 with MinMax over the 8 calibration samples;
0.42 with the percentile over them (``benchmarks/results/bevdet-int8-val640.md``).
Kernel==stride ConvTranspose nodes become Conv1x1 + DepthToSpace first (:mod:`.ort_rewrite`).
Weight scales are recomputed by ORT as per-channel max |w|, which is what our weight calibration
computes too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from pytorch_quantization.nn import TensorQuantizer
from torch import nn

from .ort_rewrite import convtranspose_to_depth_to_space
from .trace import quantizers_off, trace_onnx

_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
ORT_PERCENTILE = 99.99  # central share of values kept by the ranges ORT measures itself (module docstring)
_NONNEGATIVE_PRODUCERS = ("Relu",)
# ORT's CPU provider has no integer ConvTranspose: a QDQ ConvTranspose only adds (de)quantization.
# Softmax in uint8 (QLinearSoftmax) flattens small probabilities (BEVFusion's depth bins) to zero.
_NOT_ON_CPU = ("ConvTranspose", "Softmax")
# Narrow convs (a 3-channel image stem) stay INT8 even though QLinearConv is slower on them than
# FP32 (measured 2x on a 3->64 7x7 stem): leaving them FP32 lets ORT's QDQ propagation move the next
# Q above the MaxPool, which then runs as a slow uint8 NCHW MaxPool (TinyResNet: 2.05x -> 1.13x).


def op_types() -> list[str]:
    """The op types ORT would quantize by default, less those that get slower on its CPU provider."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - set(_NOT_ON_CPU))


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def _module_index(module: nn.Module) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Modules with a weight: by weight parameter name, and by weight content (also transposed,
    for Linear exported as MatMul) when the exporter renamed the initializer."""
    by_param: dict[str, nn.Module] = {}
    by_digest: dict[str, str] = {}
    for name, mod in module.named_modules():
        w = getattr(mod, "weight", None)
        if not isinstance(w, torch.Tensor) or not hasattr(mod, "_input_quantizer"):
            continue
        key = f"{name}.weight" if name else "weight"
        by_param[key] = mod
        arr = w.detach().float().cpu().numpy()
        by_digest[_digest(arr)] = key
        if arr.ndim == 2:
            by_digest[_digest(arr.T)] = key
    return by_param, by_digest


def _input_amax(mod: nn.Module) -> float | None:
    q = getattr(mod, "_input_quantizer", None)
    if not isinstance(q, TensorQuantizer) or q._disabled or q.amax is None:
        return None
    return float(q.amax.max())


def plan(model: onnx.ModelProto, module: nn.Module) -> tuple[dict[str, list[dict[str, Any]]], list[str], int]:
    """Overrides from our amaxes, the weighted nodes to exclude, and how many nodes were matched."""
    by_param, by_digest = _module_index(module)
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    overrides: dict[str, list[dict[str, Any]]] = {}
    # a node that writes a graph output stays float: its output range would be ORT's own estimate
    # (our quantizers only cover inputs), clipping regression outputs of samples outside the
    # calibration set, and the next piece or the decode wants floats anyway
    outputs = {o.name for o in model.graph.output}
    exclude: list[str] = [n.name for n in model.graph.node if outputs.intersection(n.output)]
    matched = 0
    for node in model.graph.node:
        if node.op_type not in _WEIGHTED or len(node.input) < 2 or node.name in exclude:
            continue
        wname = node.input[1]
        mod = by_param.get(wname)
        if mod is None and wname in inits:
            key = by_digest.get(_digest(numpy_helper.to_array(inits[wname])))
            mod = by_param.get(key) if key else None
        if mod is None:
            continue  # a MatMul between activations, or a module without quantizers: ORT decides
        matched += 1
        amax = _input_amax(mod)
        if amax is None:
            exclude.append(node.name)
            continue
        src = producers.get(node.input[0])
        lo = 0.0 if src is not None and src.op_type in _NONNEGATIVE_PRODUCERS else -amax
        overrides[node.input[0]] = [{"rmin": np.float32(lo), "rmax": np.float32(amax)}]
    return overrides, exclude, matched


class _Reader:
    """ORT CalibrationDataReader over the recorded example inputs."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def lower_ort(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    calib_inputs: Sequence[Sequence[torch.Tensor]] | None = None,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Return the ORT-QDQ ModelProto for a calibrated ``module`` and facts about the lowering.
    The ranges ORT measures itself (tensors no quantizer of ours covers) come from ``calib_inputs``
    (input tuples like ``example_inputs``; default: ``example_inputs`` alone)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with quantizers_off(module):
        fp32 = trace_onnx(module, example_inputs, input_names, output_names, dynamic_axes)
    feeds = [{n: t.detach().float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
              for n, t in zip(input_names, inputs, strict=True)} for inputs in calib_inputs or [example_inputs]]
    with tempfile.TemporaryDirectory(prefix="bevdeploy-ort-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "qdq.onnx")
        onnx.save(fp32, src)
        quant_pre_process(str(src), str(pre))
        pre_model = onnx.load(pre)
        overrides, exclude, matched = plan(pre_model, module)
        rewritten = convtranspose_to_depth_to_space(pre_model)
        onnx.save(pre_model, pre)
        with contextlib.redirect_stdout(io.StringIO()):  # ORT's calibrator prints; stdout is for results
            quantize_static(
                str(pre),
                str(out),
                _Reader(feeds),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=exclude,
                op_types_to_quantize=op_types(),
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"TensorQuantOverrides": overrides, "ActivationSymmetric": False,
                               "CalibPercentile": ORT_PERCENTILE, "WeightSymmetric": True},
            )
        lowered = onnx.load(out)
    facts = {"qdq_flavour": "ort", "overridden_tensors": len(overrides), "matched_weighted_nodes": matched,
             "ort_range_samples": len(feeds), "ort_range_method": f"percentile {ORT_PERCENTILE}",
             "excluded_nodes": exclude,
             "convtranspose_as_conv_depth_to_space": rewritten, "activation_type": "uint8", "weight_type": "int8 per-channel"}
    return lowered, facts
