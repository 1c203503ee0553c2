"""Calibration: collect statistics through a caller-supplied forward loop, then load amaxes.

As in ModelOpt and pytorch-quantization, the data path is a callback ``forward_loop(model)`` so
the engine knows nothing about a model's inputs. Weight quantizers are calibrated directly from
the weights (no data needed, and modules the loop never reaches still get weight amaxes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from pytorch_quantization import calib
from pytorch_quantization.nn import TensorQuantizer
from pytorch_quantization.utils import reduce_amax
from torch import nn

from ..specs.run import QuantSpec
from .modules import named_quantizers, set_amax
from .mse import mse_amax

log = logging.getLogger(__name__)


def weight_quantizers(model: nn.Module) -> dict[int, nn.Parameter]:
    """id(weight quantizer) -> the weight it quantizes."""
    out: dict[int, nn.Parameter] = {}
    for module in model.modules():
        q = getattr(module, "_weight_quantizer", None)
        if isinstance(q, TensorQuantizer):
            out[id(q)] = module.weight
    return out


@torch.no_grad()
def _weight_amax(q: TensorQuantizer, weight: torch.Tensor) -> None:
    if q.axis is None:
        set_amax(q, reduce_amax(weight.detach(), axis=None, keepdims=True).reshape(()))
        return
    axes = q.axis if isinstance(q.axis, (list, tuple)) else [q.axis]
    reduce = [i for i in range(weight.dim()) if i not in axes]
    set_amax(q, reduce_amax(weight.detach(), axis=reduce, keepdims=True))


def _load_activation_amax(q: TensorQuantizer, qspec: QuantSpec) -> bool:
    cal = q._calibrator
    if isinstance(cal, calib.MaxCalibrator):
        if cal.compute_amax() is None:
            return False
        q.load_calib_amax()
        return True
    if getattr(cal, "_calib_hist", None) is None:
        return False
    if qspec.method == "max":  # histogram's top edge is the largest |x| seen
        set_amax(q, float(cal._calib_bin_edges[-1]))
    elif qspec.method == "mse":  # pytorch-quantization's own mse needs CUDA
        set_amax(q, mse_amax(cal._calib_hist, cal._calib_bin_edges, q.num_bits, q.unsigned))
    elif qspec.method == "percentile":
        q.load_calib_amax("percentile", percentile=qspec.percentile)
    else:
        q.load_calib_amax(qspec.method)
    return True


def calibrate(model: nn.Module, forward_loop: Callable[[nn.Module], None], qspec: QuantSpec) -> list[str]:
    """Calibrate every enabled quantizer of ``model`` with the data ``forward_loop`` feeds it.

    Activation amax comes from ``qspec.method`` (max, entropy, percentile at ``qspec.percentile``,
    mse); weights get max per channel. Input quantizers that saw no data are disabled and their
    names returned, so a module the loop never runs is not silently quantized with a guess.
    """
    weights = weight_quantizers(model)
    quantizers = [(n, q) for n, q in named_quantizers(model) if not q._disabled]
    for _, q in quantizers:
        if id(q) not in weights and q._calibrator is not None:
            q.disable_quant()
            q.enable_calib()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            forward_loop(model)
    finally:
        model.train(was_training)
    unseen: list[str] = []
    for name, q in quantizers:
        if id(q) in weights:
            _weight_amax(q, weights[id(q)])
        elif q._calibrator is not None:
            q.disable_calib()
            if not _load_activation_amax(q, qspec):
                q.disable()
                unseen.append(name)
                continue
            q._calibrator.reset()
        q.enable_quant()
    if unseen:
        log.warning("quantizers that saw no calibration data were disabled: %s", ", ".join(unseen))
    return unseen
