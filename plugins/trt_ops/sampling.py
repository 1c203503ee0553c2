"""Sampling primitives shared by the references of the sampling ops (grid sampler, rotate,
deformable attention, deformable conv): gather with zero padding, n-linear and nearest
interpolation at pixel coordinates (pixel centres at integers).

Written with plain gathers and arithmetic (not ``F.grid_sample``) so that the references state
the plugin semantics explicitly and ``F.grid_sample`` stays an independent check in the tests.
All are differentiable in the image and the coordinates.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch


def gather_zero(img: torch.Tensor, idx: Sequence[torch.Tensor]) -> torch.Tensor:
    """``img`` (N, C, *S) at integer coordinates ``idx`` (one (N, P) long tensor per spatial dim,
    ordered like the last dims of ``img``, i.e. (..., y, x)); (N, C, P), 0 outside the map."""
    n, c, *spatial = img.shape
    valid = torch.ones_like(idx[0], dtype=torch.bool)
    flat = torch.zeros_like(idx[0])
    for size, i in zip(spatial, idx, strict=True):
        valid &= (i >= 0) & (i < size)
        flat = flat * size + i.clamp(0, size - 1)
    values = img.reshape(n, c, -1).gather(2, flat.unsqueeze(1).expand(n, c, flat.shape[1]))
    return values * valid.unsqueeze(1).to(img.dtype)


def linear_sample(img: torch.Tensor, coords: Sequence[torch.Tensor]) -> torch.Tensor:
    """Bi/trilinear interpolation of ``img`` (N, C, *S) at float pixel coordinates ``coords``
    ((N, P) each, ordered like the spatial dims); corners outside the map contribute 0."""
    lows = [torch.floor(c) for c in coords]
    fracs = [c - lo for c, lo in zip(coords, lows, strict=True)]
    lows = [lo.long() for lo in lows]
    out = None
    for corner in itertools.product((0, 1), repeat=len(coords)):
        weight = None
        for bit, frac in zip(corner, fracs, strict=True):
            w = frac if bit else 1 - frac
            weight = w if weight is None else weight * w
        term = gather_zero(img, [lo + bit for lo, bit in zip(lows, corner, strict=True)]) * weight.unsqueeze(1).to(img.dtype)
        out = term if out is None else out + term
    return out


def nearest_sample(img: torch.Tensor, coords: Sequence[torch.Tensor]) -> torch.Tensor:
    """Nearest neighbour (ties to even, as CUDA's ``nearbyint``), 0 outside the map."""
    return gather_zero(img, [torch.round(c).long() for c in coords])
