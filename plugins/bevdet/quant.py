"""BEVDet's quantization rules, on the core quantization engine.

1. BN folded into every conv (ResNet ``convN``/``bnN``, BasicBlock, ConvModule ``conv``/``bn``,
   FPN_LSS's Sequential conv-then-BN).
2. Quantizers on every Conv2d (image backbone, CustomFPN, depth_net, BEV encoder, FPN_LSS,
   CenterHead); activations from histograms (method from the spec), weights per output channel.
3. A ResNet bottleneck's ``downsample.0`` shares ``conv1``'s input quantizer (one scale for the
   tensor both read, no reformat in TensorRT).
4. Layers kept in floating point after calibration: :data:`KEEP_FP` plus the user's ``keep_fp``.

How KEEP_FP was chosen (measured, not copied), on the GPU-trained shipped tiny weights
(2026-11-22; FP32 mAP 0.2236 / NDS 0.3838 on 640 validation samples). The fidelity profile
(``bevdeploy sensitivity --model bevdet --min-cosine 0.9999``,
``benchmarks/results/sensitivity-bevdet-tiny-gpu-weights.md``) gives 33.6 dB all quantized;
end to end (``benchmarks/results/bevdet-int8-val640.md``) INT8 scores NDS 0.3706, 1.32 points
below FP32, against the issue's budget of 0.5. Most of that was ONNX Runtime's lowering, not the
rules: the torch backend's fake-quantized INT8 loses 0.43. With the nodes writing a graph output
kept float and the ranges ORT measures itself taken as percentiles over every calibration sample,
ORT's INT8 loses 0.42 (NDS 0.3796; 0.34 with ``--calib-batches 16``), so no layer needs to stay
in floating point and KEEP_FP is empty. Before those fixes, on the same 640 samples: the image
encoder quantized alone cost nothing (+0.05 points with the BEV half in floating point); the BEV
encoder or the head kept alone still lost 1.2 points; the fidelity profile's 14 layers or an NDS
profile's two task heads (``sensitivity-bevdet-tiny-nds.md``) lost 1.3-1.4; 32 calibration
samples or our percentile calibration did not help; only the whole BEV half in floating point
did, giving up its INT8 speed-up (bev.head 17.1 -> 10.4 ms on our CPU).

Re-measured on the weights shipped next (session 4: trained on 2.9x the data; FP32 mAP 0.2984 /
NDS 0.4291 on the same 640 samples): INT8 0.2840 / 0.4243, 0.47 points, still inside 0.5 with
no layer kept (``benchmarks/results/bevdet-int8-val640.md``, last section).
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
KEEP_FP: list[str] = []  # measured (see the module docstring): none needed for the 0.5-point NDS budget


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
