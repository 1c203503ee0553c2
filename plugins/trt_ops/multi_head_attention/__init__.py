"""Multi-head scaled dot-product attention (BEVFormer_tensorrt's QKVTRT; flash kernel on CUDA)."""

from .op import multi_head_attention
from .reference import multi_head_attention_reference
from .symbolic import NAMES, define_ort, define_trt, qkvtrt_semantics

__all__ = ["NAMES", "define_ort", "define_trt", "multi_head_attention", "multi_head_attention_reference",
           "qkvtrt_semantics"]
