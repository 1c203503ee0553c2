"""BEVFusion (mit-han-lab, camera + LiDAR) as a bevdeploy model plugin.

Hooks: the model registration (variants ``r50`` and ``tiny``), the partition into
CUDA-BEVFusion's pieces, and the export/build of the sparse LiDAR backbone (libspconv-format
ONNX; run on spconv). Quantization rules live in :mod:`.quant`.
"""

from __future__ import annotations

from .plugin import (
    bevdeploy_build,
    bevdeploy_export,
    bevdeploy_partition,
    bevdeploy_register_models,
)
from .quant import bevdeploy_quantize

__all__ = [
    "bevdeploy_build",
    "bevdeploy_export",
    "bevdeploy_partition",
    "bevdeploy_quantize",
    "bevdeploy_register_models",
]
