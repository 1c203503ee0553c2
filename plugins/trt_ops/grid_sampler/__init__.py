"""Grid sampler 2D / 3D (BEVFormer's sampling, mmdeploy's grid_sampler)."""

from .op import grid_sampler
from .reference import MODES, PADDINGS, grid_sampler_reference
from .symbolic import NAMES, NAMES_3D, ONNX_NAMES, define_ort, define_trt

__all__ = ["MODES", "NAMES", "NAMES_3D", "ONNX_NAMES", "PADDINGS", "define_ort", "define_trt", "grid_sampler",
           "grid_sampler_reference"]
