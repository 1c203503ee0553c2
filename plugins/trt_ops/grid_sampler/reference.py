"""Grid sampler 2D / 3D in plain PyTorch: ``torch.nn.functional.grid_sample``'s semantics, written
out the way the TensorRT plugins compute it.

``input`` (N, C, H, W) with ``grid`` (N, Ho, Wo, 2) holding (x, y), or (N, C, D, H, W) with
``grid`` (N, Do, Ho, Wo, 3) holding (x, y, z), all normalised to [-1, 1].
``interpolation_mode``: 0 bilinear (trilinear in 3D), 1 nearest (ties to even); bicubic (2) is
not supported. ``padding_mode``: 0 zeros, 1 border, 2 reflection. ``align_corners``: -1/1 are the
centres (True) or the outer edges (False) of the corner pixels.
"""

from __future__ import annotations

import torch

from ..sampling import linear_sample, nearest_sample

MODES = {"bilinear": 0, "nearest": 1}
PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}


def unnormalize(coord: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """[-1, 1] -> pixel coordinate (pixel centres at integers)."""
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return ((coord + 1) * size - 1) / 2


def _reflect(coord: torch.Tensor, twice_low: int, twice_high: int) -> torch.Tensor:
    if twice_low == twice_high:
        return torch.zeros_like(coord)
    low = twice_low / 2
    span = (twice_high - twice_low) / 2
    coord = (coord - low).abs()
    extra = torch.fmod(coord, span)
    flips = torch.floor(coord / span)
    return torch.where(torch.remainder(flips, 2) == 0, extra + low, span - extra + low)


def apply_padding(coord: torch.Tensor, size: int, padding_mode: int, align_corners: bool) -> torch.Tensor:
    """Move out-of-map pixel coordinates as border / reflection padding prescribe (zeros: unchanged)."""
    if padding_mode == 1:
        return coord.clamp(0, size - 1)
    if padding_mode == 2:
        if align_corners:
            coord = _reflect(coord, 0, 2 * (size - 1))
        else:
            coord = _reflect(coord, -1, 2 * size - 1)
        return coord.clamp(0, size - 1)
    return coord


def grid_sampler_reference(
    input: torch.Tensor, grid: torch.Tensor, interpolation_mode: int, padding_mode: int, align_corners: bool
) -> torch.Tensor:
    """Sample ``input`` at ``grid``; (N, C, *grid spatial dims)."""
    spatial = input.shape[2:]
    dims = len(spatial)
    if dims not in (2, 3) or grid.dim() != dims + 2 or grid.shape[-1] != dims:
        raise ValueError(f"grid_sampler: input {tuple(input.shape)} and grid {tuple(grid.shape)} do not match (2D or 3D)")
    if interpolation_mode not in (0, 1) or padding_mode not in (0, 1, 2):
        raise ValueError(f"grid_sampler: unsupported mode {interpolation_mode} / padding {padding_mode}")
    n = input.shape[0]
    out_spatial = grid.shape[1:-1]
    flat = grid.reshape(n, -1, dims).to(input.dtype)
    # grid components are (x, y[, z]); spatial dims are ([D,] H, W): reverse to match
    coords = []
    for axis, size in enumerate(spatial):
        comp = flat[..., dims - 1 - axis]
        coords.append(apply_padding(unnormalize(comp, size, align_corners), size, padding_mode, align_corners))
    sample = linear_sample if interpolation_mode == 0 else nearest_sample
    return sample(input, coords).reshape(n, input.shape[1], *out_spatial)
