"""Multi-scale deformable attention (Deformable DETR, BEVFormer's spatial/temporal attention)."""

from .op import ms_deform_attn
from .reference import ms_deform_attn_reference
from .symbolic import NAMES, bevformer_trt_semantics, define_ort, define_trt

__all__ = ["NAMES", "bevformer_trt_semantics", "define_ort", "define_trt", "ms_deform_attn", "ms_deform_attn_reference"]
