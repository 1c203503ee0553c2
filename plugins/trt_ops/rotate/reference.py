"""Rotate a BEV feature map about a centre, as BEVFormer rotates ``prev_bev`` with torchvision's
``rotate`` (and as BEVFormer_tensorrt's RotateTRT computes it).

``img`` (C, H, W); ``angle`` (scalar tensor) in degrees, counter-clockwise; ``center`` (2,) the
(x, y) pixel position of the rotation centre in torchvision's convention (pixel (i, j) covers
[j, j+1) x [i, i+1), so the map centre is (W/2, H/2)). Output pixel (i, j) samples the input at
    x = cos(a) (j + 0.5 - cx) - sin(a) (i + 0.5 - cy) + cx - 0.5
    y = sin(a) (j + 0.5 - cx) + cos(a) (i + 0.5 - cy) + cy - 0.5
(pixel centres at integers), with ``interpolation`` 0 bilinear / 1 nearest (ties to even) and
zeros outside the map (torchvision's default fill).
"""

from __future__ import annotations

import math

import torch

from ..sampling import linear_sample, nearest_sample

INTERPOLATIONS = {"bilinear": 0, "nearest": 1}


def rotate_reference(img: torch.Tensor, angle: torch.Tensor, center: torch.Tensor, interpolation: int) -> torch.Tensor:
    """Rotated copy of ``img`` (C, H, W)."""
    if img.dim() != 3:
        raise ValueError(f"rotate expects a (C, H, W) map, got {tuple(img.shape)}")
    if interpolation not in (0, 1):
        raise ValueError(f"rotate: interpolation must be 0 (bilinear) or 1 (nearest), got {interpolation}")
    c, h, w = img.shape
    rad = angle.reshape(()).to(torch.float64 if img.dtype == torch.float64 else torch.float32) * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    cx, cy = center.reshape(2).to(cos.dtype).unbind()
    ii, jj = torch.meshgrid(
        torch.arange(h, dtype=cos.dtype, device=img.device), torch.arange(w, dtype=cos.dtype, device=img.device),
        indexing="ij",
    )
    dx, dy = jj + 0.5 - cx, ii + 0.5 - cy
    x = cos * dx - sin * dy + cx - 0.5
    y = sin * dx + cos * dy + cy - 0.5
    sample = linear_sample if interpolation == 0 else nearest_sample
    coords = [y.reshape(1, -1).to(img.dtype), x.reshape(1, -1).to(img.dtype)]
    return sample(img.unsqueeze(0), coords).reshape(c, h, w)
