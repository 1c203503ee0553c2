"""Modulated deformable convolution v2 (DCNv2, mmcv semantics)."""

from .op import modulated_deform_conv2d
from .reference import modulated_deform_conv2d_reference, output_size
from .symbolic import NAMES, define_ort, define_trt

__all__ = ["NAMES", "define_ort", "define_trt", "modulated_deform_conv2d", "modulated_deform_conv2d_reference",
           "output_size"]
