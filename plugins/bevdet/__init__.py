"""BEVDet (HuangJunJie2017, camera-only) as a bevdeploy model plugin.

Hooks: the model registration (variants ``r50`` and ``tiny``) and the partition into
image.encoder -> bevpool (bev_pool_v2 op) -> bev.head -> decode. Quantization rules live in
:mod:`.quant`; the CenterPoint training loss in :mod:`.loss`.
"""

from __future__ import annotations

from .plugin import bevdeploy_partition, bevdeploy_register_models
from .quant import bevdeploy_quantize

__all__ = ["bevdeploy_partition", "bevdeploy_quantize", "bevdeploy_register_models"]
