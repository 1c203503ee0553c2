"""BEVDet's quantization rules (placeholder docstring, replaced once the profile is measured)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bevdeploy
from bevdeploy.quant import calibrate, disable, fold_bn, insert_quantizers, share_input_quantizer
from bevdeploy.quant.generic import forward_over
from bevdeploy.specs.run import QuantSpec, RunSpec
from torch import nn

MODEL_NAME = "bevdet"
NEVER_QUANTIZED: list[str] = []
KEEP_FP: list[str] = []


def _bottlenecks(model: nn.Module) -> Iterable[nn.Module]:
    for module in model.modules():
        down = getattr(module, "downsample", None)
        if isinstance(down, nn.Sequential) and hasattr(module, "conv1") and hasattr(module, "conv3"):
            yield module


def apply_rules(model: nn.Module, qconfig: QuantSpec) -> dict[str, int]:
    """Everything before calibration, in place; returns counts for the log/tests."""
    model.eval()
    folded = fold_bn(model)
    quantized = insert_quantizers(model, qconfig, skip=NEVER_QUANTIZED)
    shared = 0
    for block in _bottlenecks(model):
        if hasattr(block.conv1, "_input_quantizer") and hasattr(block.downsample[0], "_input_quantizer"):
            share_input_quantizer(block.downsample[0], block.conv1)
            shared += 1
    return {"folded": len(folded), "quantized": len(quantized), "shared": shared}


def quantize_bevdet(model: nn.Module, calib_data: Iterable[dict[str, Any]], qconfig: QuantSpec) -> nn.Module:
    apply_rules(model, qconfig)
    calibrate(model, forward_over(calib_data, qconfig.num_batches), qconfig)
    disable(model, [*KEEP_FP, *qconfig.keep_fp])
    return model


@bevdeploy.hookimpl
def bevdeploy_quantize(
    model: nn.Module, spec: RunSpec, calib_data: Iterable[dict[str, Any]], qconfig: QuantSpec
) -> nn.Module | None:
    if spec.model != MODEL_NAME:
        return None
    return quantize_bevdet(model, calib_data, qconfig)
