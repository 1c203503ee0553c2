"""torch.onnx (TorchScript exporter) export of a module with its quantizers in a chosen state.

The dynamo exporter cannot trace pytorch-quantization's fake-quant (data-dependent guards), so
``dynamo=False``. With ``TensorQuantizer.use_fb_fake_quant`` the quantizers trace as
``torch.fake_quantize_per_{tensor,channel}_affine``, which export as QuantizeLinear /
DequantizeLinear pairs (int8, zero point 0, range -128..127).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Sequence

import onnx
import torch
from pytorch_quantization.nn import TensorQuantizer
from torch import nn

OPSET = 17


@contextlib.contextmanager
def quantizers_off(module: nn.Module) -> Iterator[None]:
    """Temporarily disable every quantizer (FP32/FP16 export of a quantized module)."""
    qs = [m for m in module.modules() if isinstance(m, TensorQuantizer)]
    state = [q._disabled for q in qs]
    for q in qs:
        q.disable()
    try:
        yield
    finally:
        for q, was in zip(qs, state, strict=True):
            q._disabled = was


@contextlib.contextmanager
def fb_fake_quant() -> Iterator[None]:
    """Trace enabled quantizers as native fake-quant ops, i.e. ONNX Q/DQ."""
    before = TensorQuantizer.use_fb_fake_quant
    TensorQuantizer.use_fb_fake_quant = True
    try:
        yield
    finally:
        TensorQuantizer.use_fb_fake_quant = before


def has_enabled_quantizers(module: nn.Module) -> bool:
    return any(isinstance(m, TensorQuantizer) and not m._disabled for m in module.modules())


def trace_onnx(
    module: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """Export ``module`` in FP32 and return the ModelProto (nothing written to disk)."""
    buf = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                tuple(t.float() if t.is_floating_point() else t for t in example_inputs),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    finally:
        module.train(was_training)
    return onnx.load_from_string(buf.getvalue())
