"""bev_pool_v2: BEVDet's interval pooling of camera-frustum features into the BEV grid."""

from . import symbolic  # noqa: F401  (registers the ONNX symbolic)
from .op import bev_pool_v2
from .reference import bev_pool_v2_prepare, bev_pool_v2_reference
from .symbolic import NAMES, define_ort, define_trt

__all__ = ["NAMES", "bev_pool_v2", "bev_pool_v2_prepare", "bev_pool_v2_reference", "define_ort", "define_trt"]
