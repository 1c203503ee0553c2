"""BEVFusion's quantization rules (after CUDA-BEVFusion's PTQ), on the core quantization engine.

1. BN is folded into every conv first, sparse convs included (the structural rules of
   :func:`bevdeploy.quant.fold_bn` find all of BEVFusion's pairs: ResNet ``convN``/``bnN``,
   mmcv ``conv``/``bn``, ``Sequential``/``SparseSequential`` conv-then-BN).
2. Quantizers go on every Conv2d / ConvTranspose2d / sparse conv except the never-quantized
   parts: the detection head and the vtransform BEV downsample (kept FP16 in CUDA-BEVFusion).
   Activations are calibrated from histograms (method from the spec, CUDA-BEVFusion uses mse),
   weights per output channel.
3. Shared scales, so that TensorRT needs no reformat between INT8 tensors:
   * a ResNet bottleneck's ``downsample.0`` reads the same tensor as ``conv1`` and shares its
     input quantizer;
   * each sparse residual add quantizes both inputs with one ``add_quantizer``;
   * the LSS-FPN and depthnet/fuser concats feed a conv whose one input quantizer sits after the
     concat, which is one scale for every concat input (per-tensor fake-quant commutes with concat).
4. After calibration ``encoders.lidar.backbone.conv_input`` and ``decoder.neck.deblocks[0][0]``
   are switched off (CUDA-BEVFusion found them sensitive), plus the user's ``keep_fp`` globs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bevdeploy
from bevdeploy.quant import calibrate, disable, fold_bn, insert_quantizers, share_bottleneck_quantizers
from bevdeploy.quant.generic import forward_over
from bevdeploy.quant.modules import input_descriptor
from bevdeploy.specs.run import QuantSpec, RunSpec
from pytorch_quantization.nn import TensorQuantizer
from torch import nn

MODEL_NAME = "bevfusion"
NEVER_QUANTIZED = ["heads", "heads.*", "encoders.camera.vtransform.downsample", "encoders.camera.vtransform.downsample.*"]
DISABLED_AFTER_CALIBRATION = ["encoders.lidar.backbone.conv_input.*", "decoder.neck.deblocks.0.0"]


def _residual_blocks(model: nn.Module) -> Iterable[nn.Module]:
    return (m for m in model.modules() if callable(getattr(m, "residual_add", None)))


def apply_rules(model: nn.Module, qconfig: QuantSpec) -> dict[str, int]:
    """Rules 1-3 (everything before calibration), in place; returns counts for the log/tests."""
    model.eval()
    folded = fold_bn(model)
    quantized = insert_quantizers(model, qconfig, skip=NEVER_QUANTIZED)
    shared = share_bottleneck_quantizers(model)
    adds = 0
    for block in _residual_blocks(model):
        block.add_quantizer = TensorQuantizer(input_descriptor(qconfig))
        adds += 1
    return {"folded": len(folded), "quantized": len(quantized), "shared": shared, "residual_adds": adds}


def quantize_bevfusion(model: nn.Module, calib_data: Iterable[dict[str, Any]], qconfig: QuantSpec) -> nn.Module:
    """Apply all rules and calibrate on up to ``qconfig.num_batches`` prepared samples."""
    apply_rules(model, qconfig)
    calibrate(model, forward_over(calib_data, qconfig.num_batches), qconfig)
    disable(model, [*DISABLED_AFTER_CALIBRATION, *qconfig.keep_fp])
    return model


@bevdeploy.hookimpl
def bevdeploy_quantize(
    model: nn.Module, spec: RunSpec, calib_data: Iterable[dict[str, Any]], qconfig: QuantSpec
) -> nn.Module | None:
    if spec.model != MODEL_NAME:
        return None
    return quantize_bevfusion(model, calib_data, qconfig)
