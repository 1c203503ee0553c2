"""Quantizer insertion and the rules that act on quantizers (disable by glob, share).

Dense layers are turned into pytorch-quantization's ``QuantConv2d`` / ``QuantConvTranspose2d`` /
``QuantLinear`` by swapping the instance's class and attaching two ``TensorQuantizer``\\ s: the
module keeps its name, parameters and hooks, so state-dict keys stay those of the FP32 model
(plus the quantizers' ``_amax`` buffers). Sparse convolutions get the same treatment from
:mod:`.sparse`.
"""

from __future__ import annotations

import fnmatch
import types
from collections.abc import Callable, Iterable, Iterator

import torch
from pytorch_quantization import nn as qnn
from pytorch_quantization.nn import TensorQuantizer
from pytorch_quantization.tensor_quant import QuantDescriptor
from torch import nn

from ..errors import BevDeployError
from ..specs.run import QuantSpec
from . import sparse

Skip = Callable[[str, nn.Module], bool] | Iterable[str] | None

# FP32 class -> (quantized class, output-channel axis of its weight)
_DENSE: dict[type, tuple[type, int]] = {
    nn.Conv2d: (qnn.QuantConv2d, 0),
    nn.ConvTranspose2d: (qnn.QuantConvTranspose2d, 1),  # weight [in, out, kH, kW]
    nn.Linear: (qnn.QuantLinear, 0),
}


def input_descriptor(qspec: QuantSpec) -> QuantDescriptor:
    """Per-tensor activation quantizer; histogram calibration unless the method is plain max."""
    return QuantDescriptor(num_bits=8, calib_method="max" if qspec.method == "max" else "histogram")


def weight_descriptor(qspec: QuantSpec, axis: int) -> QuantDescriptor:
    """Weights are calibrated by max, per output channel when asked."""
    return QuantDescriptor(num_bits=8, axis=(axis,) if qspec.per_channel_weights else None, calib_method="max")


def _skipper(skip: Skip) -> Callable[[str, nn.Module], bool]:
    if skip is None:
        return lambda name, mod: False
    if callable(skip):
        return skip
    patterns = list(skip)
    return lambda name, mod: any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _attach(module: nn.Module, qspec: QuantSpec, axis: int) -> None:
    # Attributes QuantMixin.init_quantizer would set; it cannot be called outside __init__.
    module._fake_quant = True
    module._input_quantizer = TensorQuantizer(input_descriptor(qspec))
    module._weight_quantizer = TensorQuantizer(weight_descriptor(qspec, axis))


def insert_quantizers(model: nn.Module, qspec: QuantSpec, skip: Skip = None) -> list[str]:
    """Make every Conv2d / ConvTranspose2d / Linear and spconv sparse conv fake-quantized in place.

    ``skip`` is a predicate ``(name, module) -> bool`` or a list of fnmatch globs on module names;
    skipped modules stay FP32 with no quantizers at all (unlike :func:`disable`, which keeps
    quantizers but switches them off). Returns the names of the modules quantized.
    """
    should_skip = _skipper(skip)
    done: list[str] = []
    for name, module in model.named_modules():
        if should_skip(name, module):
            continue
        entry = _DENSE.get(type(module))
        if entry is not None:
            module.__class__ = entry[0]
            _attach(module, qspec, entry[1])
            done.append(name)
        elif sparse.is_sparse_conv(module):
            sparse.quantize_sparse_conv(module, input_descriptor(qspec), weight_descriptor(qspec, 0))
            done.append(name)
    return done


def named_quantizers(model: nn.Module) -> Iterator[tuple[str, TensorQuantizer]]:
    """Every TensorQuantizer once (a shared one under the first name that reaches it)."""
    for name, module in model.named_modules():
        if isinstance(module, TensorQuantizer):
            yield name, module


def has_quantizers(model: nn.Module) -> bool:
    """Whether ``model`` holds any TensorQuantizer (a quantized model, simulated INT8 when run in PyTorch)."""
    return next(named_quantizers(model), None) is not None


def disable(model: nn.Module, patterns: Iterable[str]) -> list[str]:
    """Switch off the quantizers of modules whose name matches a glob; return the module names hit.

    A shared quantizer is one object, so disabling it through one module disables it for all
    modules sharing it; apply sharing rules with that in mind.
    """
    patterns = list(patterns)
    if not patterns:
        return []
    hit: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, TensorQuantizer) or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        quantizers = [q for q in module.children() if isinstance(q, TensorQuantizer)]
        if quantizers:
            for q in quantizers:
                q.disable()
            hit.append(name)
    return hit


def share_input_quantizer(dst: nn.Module, src: nn.Module) -> None:
    """Make ``dst`` use ``src``'s input quantizer object, so both inputs of an Add/Concat have one scale.

    Call before calibration: the shared quantizer then sees the data of both modules.
    """
    for which, mod in (("dst", dst), ("src", src)):
        if not isinstance(getattr(mod, "_input_quantizer", None), TensorQuantizer):
            raise BevDeployError(f"share_input_quantizer: {which} module {type(mod).__name__} has no input quantizer")
    dst._input_quantizer = src._input_quantizer


def share_bottleneck_quantizers(model: nn.Module) -> int:
    """ResNet bottlenecks (``conv1``, ``conv3``, ``downsample`` Sequential): the downsample conv
    reads the block's input, like ``conv1``, and shares its input quantizer so the residual branch
    and the main path see one scale (no Reformat before the Add). Returns how many were shared."""
    shared = 0
    for module in model.modules():
        down = getattr(module, "downsample", None)
        if not (isinstance(down, nn.Sequential) and hasattr(module, "conv1") and hasattr(module, "conv3")):
            continue
        if hasattr(module.conv1, "_input_quantizer") and hasattr(down[0], "_input_quantizer"):
            share_input_quantizer(down[0], module.conv1)
            shared += 1
    return shared


def set_amax(q: TensorQuantizer, amax) -> None:
    """Set a quantizer's amax buffer (the property setter warns on tensors and cannot reshape)."""
    value = torch.as_tensor(amax, dtype=torch.float32).detach().clone()
    if hasattr(q, "_amax"):
        q._amax = value.to(q._amax.device)
    else:
        q.register_buffer("_amax", value)


def _plain_fake_quant(q: TensorQuantizer) -> bool:
    """A calibrated, fake-quantizing quantizer with a fixed amax: the case :func:`without_host_syncs` reproduces."""
    return (
        hasattr(q, "_amax") and q._fake_quant and not q._learn_amax and not q._if_calib and not q._if_clip
        and not TensorQuantizer.use_fb_fake_quant
    )  # fmt: skip


def _fake_quant_forward(self: TensorQuantizer, inputs):
    """pytorch-quantization's fake-quant forward (``fake_tensor_quant``: the same ops in the same order, so the
    same bits), less its two host synchronisations: ``if amax.min() < 0`` and the CPU-to-device copy of the
    bound. The negative-amax check is left out (calibration never produces one); a zero amax still gives zeros."""
    if self._disabled or not self._if_quant:
        return inputs
    amax = self._get_amax(inputs)
    x = inputs.float() if inputs.dtype == torch.half else inputs
    amax = amax.float() if amax.dtype == torch.half else amax
    max_bound = amax.new_full((), 2.0 ** (self._num_bits - 1 + int(self._unsigned)) - 1.0)
    if self._unsigned:
        min_bound = 0
    elif self._narrow_range:
        min_bound = -max_bound
    else:
        min_bound = -max_bound - 1
    scale = max_bound / amax
    zero = amax <= 1.0 / (1 << 24)  # below FP16's smallest value: quantize to 0
    scale = torch.where(zero, 0.0, scale)
    outputs = torch.clamp((x * scale).round_(), min_bound, max_bound)
    scale = torch.where(zero, 1.0, scale)
    if inputs.dtype == torch.half:
        outputs = outputs.half()
    return outputs / scale.to(inputs.dtype)


def without_host_syncs(model: nn.Module) -> int:
    """Give every calibrated fake-quant quantizer of ``model`` (an inference copy) a forward that computes what
    pytorch-quantization's does, bit for bit, without waiting for the device, so that a CUDA graph can capture
    the module. Quantizers in another state (calibrating, learned amax, ONNX-export mode) keep their own.
    Returns how many were given the new forward."""
    done = 0
    for module in model.modules():
        if isinstance(module, TensorQuantizer) and _plain_fake_quant(module):
            module.forward = types.MethodType(_fake_quant_forward, module)
            done += 1
    return done
