"""``torch.ops.bevdeploy.rotate``: reference on CPU, ``kernels.rotate_cuda`` on CUDA (see ``..dispatch``)."""

from __future__ import annotations

import torch

from ..dispatch import run_cuda
from .reference import rotate_reference


@torch.library.custom_op("bevdeploy::rotate", mutates_args=())
def rotate(img: torch.Tensor, angle: torch.Tensor, center: torch.Tensor, interpolation: int) -> torch.Tensor:
    """Rotate ``img`` (C, H, W) by ``angle`` degrees counter-clockwise about ``center`` (x, y); see reference.py."""
    return rotate_reference(img, angle, center, interpolation)


@rotate.register_kernel("cuda")
def _rotate_cuda(img, angle, center, interpolation):
    return run_cuda(__package__, "rotate", rotate_reference, img, angle, center, interpolation)


@rotate.register_fake
def _rotate_fake(img, angle, center, interpolation):
    return torch.empty_like(img)
