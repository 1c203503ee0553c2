"""``torch.ops.bevdeploy.inverse``: reference on CPU, ``kernels.inverse_cuda`` (fp32) on CUDA."""

from __future__ import annotations

import torch

from ..dispatch import run_cuda
from .reference import inverse_reference


@torch.library.custom_op("bevdeploy::inverse", mutates_args=())
def inverse(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of each 4x4 matrix in ``matrices`` (..., 4, 4); see reference.py.

    fp32 only, as the anchors: half-precision input is inverted and returned in fp32 (float64
    stays float64 on the CPU, for checks).
    """
    return inverse_reference(matrices.float() if matrices.dtype in (torch.float16, torch.bfloat16) else matrices)


@inverse.register_kernel("cuda")
def _inverse_cuda(matrices):
    # fp32 only, as the anchors: half input is computed in fp32 and returned in fp32
    return run_cuda(__package__, "inverse", inverse_reference, matrices.float())


@inverse.register_fake
def _inverse_fake(matrices):
    keep = matrices.dtype == torch.float64 and matrices.device.type == "cpu"
    return torch.empty_like(matrices, dtype=matrices.dtype if keep else torch.float32)
