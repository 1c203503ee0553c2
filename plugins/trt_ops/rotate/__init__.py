"""Rotate a BEV feature map about a centre (BEVFormer's prev_bev alignment)."""

from .op import rotate
from .reference import INTERPOLATIONS, rotate_reference
from .symbolic import NAMES, define_ort, define_trt

__all__ = ["INTERPOLATIONS", "NAMES", "define_ort", "define_trt", "rotate", "rotate_reference"]
