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
rules: the torch backend's fake-quantized INT8 loses 0.43; with the nodes writing a graph output
kept float and ORT's own ranges measured over every calibration sample the ORT loss is 0.62
(0.50 with ``--calib-batches 16``). Before those two fixes, kept in floating point and measured
on those 640 samples: the image encoder alone costs nothing (+0.05 points with the BEV half in floating
point), the BEV encoder or the head alone still loses 1.2 points, the fidelity profile's 14
layers or an NDS profile's two task heads (``sensitivity-bevdet-tiny-nds.md``) lose 1.3-1.4,
and 32 calibration samples or percentile calibration do not help. The only measured fix keeps
the whole BEV half in floating point, which gives up its INT8 speed-up (bev.head 17.1 -> 10.4 ms
on our CPU), so it is left to the user (``--keep-fp 'img_bev_encoder_*' --keep-fp
'pts_bbox_head.*'``) and KEEP_FP stays empty; QAT is the next tool to try.
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
KEEP_FP: list[str] = []  # measured (see the module docstring): no small set recovers the NDS loss


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
