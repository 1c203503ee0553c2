"""Triton kernels of multi-scale deformable attention, one per precision.

Entry point (called by op.py on CUDA tensors)::

    ms_deform_attn_cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                        precision="fp32", scales=None) -> (bs, num_queries, num_heads * channels)

value (bs, num_keys, heads, C); spatial_shapes (L, 2) as (H, W); level_start_index (L,);
sampling_locations (bs, nq, heads, L, P, 2) as normalised (x, y) in [0, 1]; attention_weights
(bs, nq, heads, L, P). Sampling is bilinear with zero padding and align_corners=False (pixel = loc * size - 0.5),
as mmcv's kernel. One program per (batch, query, head) gathers the 4 corners of all L*P points for all
channels and reduces over the points.

Variants: fp32; fp16 (every float input fp16, fp32 arithmetic, fp16 out); fp16x2 (fp16 storage, corner
weights and the weighted sum in fp16; coordinates in fp32); int8 (value int8 with scales["value"];
attention_weights int8 with scales["attention_weights"] when given, else fp16; sampling_locations fp16;
fp32 accumulation, one multiply by the value scale at the end; fp16 out).
"""

from collections.abc import Mapping

import torch
from bevdeploy.plugins.trt_ops.triton_util import (
    check_launch,
    float_storage,
    int8_input,
    next_pow2,
    out_dtype,
    tl,
    to_f32,
    triton,
)

OP = "ms_deform_attn"
_MODE = {"fp32": 0, "fp16": 0, "fp16x2": 1, "int8": 0}


@triton.jit
def _corner(value_ptr, row0, x, y, dx: tl.constexpr, dy: tl.constexpr, fx, fy, Wl, Hl, aw, inside, h, NH, C, c, cmask,
            MODE: tl.constexpr):
    xx = x + dx
    yy = y + dy
    valid = inside & (xx >= 0) & (xx < Wl) & (yy >= 0) & (yy < Hl)
    wx = fx if dx == 1 else 1.0 - fx
    wy = fy if dy == 1 else 1.0 - fy
    w = wx * wy * aw
    idx = ((row0 + yy * Wl + xx) * NH + h) * C
    v = tl.load(value_ptr + idx[:, None] + c[None, :], mask=valid[:, None] & cmask[None, :], other=0)
    if MODE == 1:
        out = w.to(tl.float16)[:, None] * v
    else:
        out = w[:, None] * to_f32(v)
    return out


@triton.jit
def _ms_deform_attn_kernel(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
    S, NQ, NH, C, L, P, attn_scale, out_scale,
    MODE: tl.constexpr, BLOCK_LP: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr,
):
    pid = tl.program_id(0)
    h = pid % NH
    b = pid // (NH * NQ)
    lp = tl.arange(0, BLOCK_LP)
    lpm = lp < L * P
    lvl = lp // P
    hl = tl.load(shapes_ptr + lvl * 2, mask=lpm, other=1)
    wl = tl.load(shapes_ptr + lvl * 2 + 1, mask=lpm, other=1)
    st = tl.load(starts_ptr + lvl, mask=lpm, other=0)
    base = pid * L * P + lp
    lx = tl.load(loc_ptr + base * 2, mask=lpm, other=0).to(tl.float32)
    ly = tl.load(loc_ptr + base * 2 + 1, mask=lpm, other=0).to(tl.float32)
    aw = tl.load(attn_ptr + base, mask=lpm, other=0).to(tl.float32) * attn_scale
    x = lx * wl.to(tl.float32) - 0.5
    y = ly * hl.to(tl.float32) - 0.5
    inside = lpm & (x > -1.0) & (y > -1.0) & (x < wl) & (y < hl)
    x0f = tl.floor(x)
    y0f = tl.floor(y)
    fx = x - x0f
    fy = y - y0f
    x0 = x0f.to(tl.int32)
    y0 = y0f.to(tl.int32)
    row0 = b * S + st
    c = tl.arange(0, BLOCK_C)
    cmask = (c < C) | EVEN_C
    acc = _corner(value_ptr, row0, x0, y0, 0, 0, fx, fy, wl, hl, aw, inside, h, NH, C, c, cmask, MODE)
    acc += _corner(value_ptr, row0, x0, y0, 1, 0, fx, fy, wl, hl, aw, inside, h, NH, C, c, cmask, MODE)
    acc += _corner(value_ptr, row0, x0, y0, 0, 1, fx, fy, wl, hl, aw, inside, h, NH, C, c, cmask, MODE)
    acc += _corner(value_ptr, row0, x0, y0, 1, 1, fx, fy, wl, hl, aw, inside, h, NH, C, c, cmask, MODE)
    if MODE == 1:
        res = tl.sum(acc, axis=0, dtype=tl.float16).to(tl.float32)
    else:
        res = tl.sum(acc, axis=0) * out_scale
    tl.store(out_ptr + pid * C + c, res.to(out_ptr.dtype.element_ty), mask=cmask)


def _prepare(value, locs, weights, precision, scales):
    """Storage tensors and the scales of one variant: (value, locations, weights, attn_scale, out_scale)."""
    if precision != "int8":
        return (*(float_storage(t, precision) for t in (value, locs, weights)), 1.0, 1.0)
    qv, sv = int8_input(OP, value, "value", scales)
    if weights.dtype == torch.int8 or (scales and "attention_weights" in scales):
        qw, sw = int8_input(OP, weights, "attention_weights", scales)
    else:
        qw, sw = weights.to(torch.float16).contiguous(), 1.0
    return qv, locs.to(torch.float16).contiguous(), qw, sw, sv


def ms_deform_attn_cuda(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Multi-scale deformable attention with the Triton kernel of one precision; returns (bs, nq, heads * C)."""
    check_launch(OP, precision, [value, sampling_locations, attention_weights])
    bs, s, nh, c = value.shape
    _, nq, _, nl, npts, _ = sampling_locations.shape
    v, loc, w, attn_scale, out_scale = _prepare(value, sampling_locations, attention_weights, precision, scales)
    out = torch.empty((bs, nq, nh * c), dtype=out_dtype(precision), device=value.device)
    if out.numel() == 0:
        return out
    shapes = spatial_shapes.to(torch.int32).contiguous()
    starts = level_start_index.to(torch.int32).contiguous()
    _ms_deform_attn_kernel[(bs * nq * nh,)](
        v, shapes, starts, loc, w, out, s, nq, nh, c, nl, npts, attn_scale, out_scale,
        MODE=_MODE[precision], BLOCK_LP=max(next_pow2(nl * npts), 2), BLOCK_C=max(next_pow2(c), 2),
        EVEN_C=next_pow2(c) == c and c >= 2, num_warps=2,
    )
    return out
