"""BEVDet's quantization rules, on the core quantization engine.

1. BN folded into every conv (ResNet ``convN``/``bnN``, BasicBlock, ConvModule ``conv``/``bn``,
   FPN_LSS's Sequential conv-then-BN).
2. Quantizers on every Conv2d (image backbone, CustomFPN, depth_net, BEV encoder, FPN_LSS,
   CenterHead); activations from histograms (method from the spec), weights per output channel.
3. A ResNet bottleneck's ``downsample.0`` shares ``conv1``'s input quantizer (one scale for the
   tensor both read, no reformat in TensorRT).
4. Layers kept in floating point after calibration: :data:`KEEP_FP` plus the user's ``keep_fp``.

How KEEP_FP was chosen (measured, not copied). On the shipped trained tiny weights
(``benchmarks/results/sensitivity-bevdet-tiny-trained.md``)::

    bevdeploy sensitivity --model bevdet --variant tiny --min-cosine 0.999

    all quantized: cosine 0.999857, SQNR 35.4 dB (final head maps vs FP32, 4 samples)
    most sensitive: the BEV encoder's first block (layers.0.0.downsample 44.6 dB, conv2, conv1)
    and FPN_LSS conv.0, then the head's shared_conv (47.9 dB); image backbone 50-54 dB
    budget cosine >= 0.999 (the default): met with nothing kept in FP -> KEEP_FP = []

The first measurement, on random weights, ranked only the head (the image path hardly reached
the outputs then) and also gave KEEP_FP = []; training moved the sensitivity into the BEV
encoder and lowered the all-quantized SQNR from 56.9 to 35.4 dB, still inside the budget.
End to end on the demo split (``bevdeploy run --model bevdet --precision fp32|int8``, 40
samples): FP32 mAP 0.0851 / NDS 0.2058, INT8 mAP 0.0714 / NDS 0.2264; at this accuracy the NDS
difference is dominated by the few true positives, not by quantization.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bevdeploy
from bevdeploy.quant import calibrate, disable, fold_bn, insert_quantizers, share_bottleneck_quantizers
from bevdeploy.quant.generic import forward_over
from bevdeploy.specs.run import QuantSpec, RunSpec
from torch import nn

MODEL_NAME = "bevdet"
NEVER_QUANTIZED: list[str] = []
KEEP_FP: list[str] = []  # measured (see the module docstring): the default budget needs none


def apply_rules(model: nn.Module, qconfig: QuantSpec) -> dict[str, int]:
    """Everything before calibration, in place; returns counts for the log/tests."""
    model.eval()
    folded = fold_bn(model)
    quantized = insert_quantizers(model, qconfig, skip=NEVER_QUANTIZED)
    shared = share_bottleneck_quantizers(model)
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
