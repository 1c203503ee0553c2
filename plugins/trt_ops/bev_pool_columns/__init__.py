"""bev_pool_columns: bev_pool_v2's pooling regrouped by camera column (one small matrix product per column)."""

from . import symbolic  # noqa: F401  (registers the ONNX symbolic)
from .op import bev_pool_columns
from .reference import bev_pool_columns_prepare, bev_pool_columns_reference, plan_points
from .symbolic import NAMES, define_ort, define_trt

__all__ = ["NAMES", "bev_pool_columns", "bev_pool_columns_prepare", "bev_pool_columns_reference", "define_ort",
           "define_trt", "plan_points"]
