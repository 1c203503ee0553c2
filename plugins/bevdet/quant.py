"""BEVDet's quantization rules, on the core quantization engine.

1. BN folded into every conv (ResNet ``convN``/``bnN``, BasicBlock, ConvModule ``conv``/``bn``,
   FPN_LSS's Sequential conv-then-BN).
2. Quantizers on every Conv2d (image backbone, CustomFPN, depth_net, BEV encoder, FPN_LSS,
   CenterHead); activations from histograms (method from the spec), weights per output channel.
3. A ResNet bottleneck's ``downsample.0`` shares ``conv1``'s input quantizer (one scale for the
   tensor both read, no reformat in TensorRT).
4. Layers kept in floating point after calibration: :data:`KEEP_FP` plus the user's ``keep_fp``.

How KEEP_FP was chosen (measured, not copied; tiny variant, **random weights**, so the ranking
describes untrained weights and must be re-derived once trained bevdet-tiny weights exist, by
adding ``--checkpoint``)::

    bevdeploy sensitivity --model bevdet --variant tiny --data <built-in 2x3 set> --version v1.0-synth \
        --split synth_val --calib-split synth_calib --calib-batches 3 --samples 3 --seed 0 [--min-cosine X]

    all quantized: cosine 0.999999, SQNR 56.9 dB (final head maps vs FP32, 3 samples)
    rank 1 pts_bbox_head.shared_conv.conv 61.3 dB; ranks 2-20 head task convs 69-75 dB;
    image backbone layers ~140 dB (least sensitive)
    budget cosine >= 0.999 (the default): met with nothing kept in FP -> KEEP_FP = []
    budget cosine >= 0.9999995: keep_fp = shared_conv + 8 task-head convs -> cosine 0.9999995, SQNR 60.1 dB

With random weights the image path hardly reaches the outputs (zeroing the BEV map moves the
heatmap by 2e-5), so only the head ranks high; that is a property of untrained weights, not of
BEVDet, and is why no rule here is stricter than the measurement supports.
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
