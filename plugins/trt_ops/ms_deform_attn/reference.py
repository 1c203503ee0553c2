"""Multi-scale deformable attention in plain PyTorch (Deformable DETR / BEVFormer semantics).

``value`` (B, S, heads, C) holds every level's map flattened row-major, level l starting at
``level_start_index[l]`` with shape ``spatial_shapes[l] = (H_l, W_l)``. Each query samples, per
head, level and point, the level's map at ``sampling_locations`` (x, y) in [0, 1] (0 and 1 are
the map's outer edges: pixel = loc * size - 0.5), bilinearly, zero outside the map, and sums the
samples weighted by ``attention_weights``. Output (B, Q, heads * C).
"""

from __future__ import annotations

import torch

from ..sampling import linear_sample


def ms_deform_attn_reference(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention; see the module docstring for shapes and semantics."""
    b, _, heads, c = value.shape
    _, q, _, levels, points, _ = sampling_locations.shape
    out = None
    for lvl in range(levels):
        h, w = (int(v) for v in spatial_shapes[lvl])
        start = int(level_start_index[lvl])
        v = value[:, start : start + h * w].permute(0, 2, 3, 1).reshape(b * heads, c, h, w)
        loc = sampling_locations[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(b * heads, q * points, 2)
        x = loc[..., 0].to(value.dtype) * w - 0.5
        y = loc[..., 1].to(value.dtype) * h - 0.5
        sampled = linear_sample(v, [y, x]).reshape(b * heads, c, q, points)
        weight = attention_weights[:, :, :, lvl].permute(0, 2, 1, 3).reshape(b * heads, 1, q, points)
        term = (sampled * weight.to(value.dtype)).sum(-1)
        out = term if out is None else out + term
    if out is None:
        return value.new_zeros(b, q, heads * c)
    return out.reshape(b, heads, c, q).permute(0, 3, 1, 2).reshape(b, q, heads * c)
