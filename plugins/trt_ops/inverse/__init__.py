"""Batched 4x4 matrix inverse (fp32 only, as BEVFormer_tensorrt's InverseTRT)."""

from .op import inverse
from .reference import inverse_reference
from .symbolic import NAMES, define_ort, define_trt

__all__ = ["NAMES", "define_ort", "define_trt", "inverse", "inverse_reference"]
