"""Channel-vectorized tensor formats, as TensorRT hands them to plugins (``TensorFormat``).

A sampling kernel (grid sampler, rotate) gathers 4 (8 in 3D) corners per output element. In the linear
(N, C, *S) format one gather instruction fetches one channel of 32 pixels, so the gather count does not shrink
with the element size and the fp16 / int8 variants stay bound by instruction issue (Nsight Compute, H200: the
int8 grid sampler at 73% issue-slot use, 31% of copy bandwidth). TensorRT's vectorized formats keep V channels
of a pixel together, so one gather fetches V channels: BEVFormer_tensorrt's int8 grid sampler and rotate take
kCHW4, their half2 versions kCHW2.

Physical shape of format ``vec`` for a logical (N, C, *S) tensor: (N, ceil(C / vec), *S, vec), channel c of
pixel s at [n, c // vec, s, c % vec]; the channels past C (padding) hold zeros when written by
:func:`to_layout` and whatever a kernel computes from them otherwise (TensorRT leaves them unspecified too).
"linear" is vec 1 (the plain tensor); "hwc8" / "hwc" have a single vector of the (padded) channels per pixel,
i.e. channels last.

=========  =========================  ==============================================
name       vec                        TensorRT format (2D / 3D)
=========  =========================  ==============================================
linear     1                          kLINEAR
chw2       2                          kCHW2 (fp16)
chw4       4                          kCHW4 (int8)
chw16      16                         kCHW16 (fp16, DLA)
chw32      32                         kCHW32 / kCDHW32 (int8)
hwc8       C rounded up to 8          kHWC8 / kDHWC8 (fp16)
hwc        C                          kHWC / kDHWC (fp32)
=========  =========================  ==============================================
"""

from __future__ import annotations

import torch
from bevdeploy import BevDeployError

_FIXED = {"linear": 1, "chw2": 2, "chw4": 4, "chw16": 16, "chw32": 32}
LAYOUTS = (*_FIXED, "hwc8", "hwc")


def vector_width(layout: str, channels: int) -> int:
    """Channels per vector of ``layout`` for a tensor with ``channels`` channels."""
    if layout in _FIXED:
        return _FIXED[layout]
    if layout == "hwc8":
        return max(8, -(-channels // 8) * 8)
    if layout == "hwc":
        return max(1, channels)
    raise BevDeployError(f"unknown channel layout {layout!r}; use one of {', '.join(LAYOUTS)}.")


def to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Logical (N, C, *S) -> physical (N, G, *S, vec) of ``layout``, padding channels with zeros."""
    n, c, *spatial = x.shape
    vec = vector_width(layout, c)
    if vec == 1:
        return x.contiguous()
    groups = -(-c // vec)
    if groups * vec != c:
        x = torch.cat([x, x.new_zeros((n, groups * vec - c, *spatial))], dim=1)
    y = x.reshape(n, groups, vec, *spatial)
    return y.movedim(2, -1).contiguous()


def from_layout(x: torch.Tensor, layout: str, channels: int) -> torch.Tensor:
    """Physical (N, G, *S, vec) of ``layout`` -> logical (N, channels, *S) (padding dropped)."""
    vec = vector_width(layout, channels)
    if vec == 1:
        return x
    n, groups, *spatial, v = x.shape
    if v != vec or groups * vec < channels:
        raise BevDeployError(f"tensor of shape {tuple(x.shape)} is not layout {layout} for {channels} channels.")
    y = x.movedim(-1, 2).reshape(n, groups * vec, *spatial)
    return y[:, :channels]


def physical_vector(op: str, x: torch.Tensor, layout: str, dims: int) -> int:
    """Vector width of ``x``, a physical tensor of ``layout`` with ``dims`` dimensions (one clear line if not)."""
    if x.dim() != dims or not x.is_contiguous():
        raise BevDeployError(f"{op}: a {layout} input must be a contiguous {dims}-d (N, groups, *spatial, vec) tensor "
                             f"(see layouts.to_layout), got shape {tuple(x.shape)}.")
    vec = int(x.shape[-1])
    if vector_width(layout, int(x.shape[1]) * vec) != vec:
        raise BevDeployError(f"{op}: the last dim of a {layout} input must be {vector_width(layout, x.shape[1] * vec)}, "
                             f"got shape {tuple(x.shape)}.")
    return vec


def vector_block(vec: int, element_size: int) -> int:
    """Channels a kernel loads per corner from a vectorized layout: the largest power of two dividing the
    vector (a block never straddles two vectors), at most 32 bytes (two 16-byte loads per lane). The sampling
    kernels put one pixel per lane, so only vectors of up to 32 bytes are read coalesced; wider channels-last
    vectors (hwc, hwc8 at C > 16) work but a warp's loads then touch one line per lane."""
    return max(1, min(vec & -vec, 32 // element_size))
