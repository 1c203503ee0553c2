"""Triton kernels of bev_pool_v2 (BEVDet's interval algorithm), one per precision.

Entry point (called by op.py on CUDA tensors)::

    bev_pool_v2_cuda(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths,
                     out_shape, precision="fp32", scales=None) -> (B, C, Z, Y, X)

depth (B, N, D, H, W), feat (B, N, H, W, C), ranks_* (R,) sorted by ranks_bev, intervals (K,) mark the
runs of equal ranks_bev, out_shape = (B, Z, Y, X, C) (arguments as reference.py). Each interval's sum of
depth[ranks_depth] * feat[ranks_feat, c] is written to out[ranks_bev, c]; the frustum feature is never
materialised and no atomics are needed. Cells without an interval stay zero. Default kernel
(_bev_pool_hoist_kernel): one interval per one-warp program, 32 lanes walking its points, each point's ranks and
depth loaded once for all its channel blocks. The earlier kernels stay selectable for the sweep: "rows"
(_bev_pool_rows_kernel, one pass over the points per channel block) and "tile" (_bev_pool_v2_kernel, one
program per interval); see benchmarks/NOTES-ops.md.

Variants: fp32; fp16 (fp16 depth/feat, fp32 sum, fp16 out); fp16x2 (fp16 products and fp16 sum);
int8 (depth and feat int8 with scales["depth"], scales["feat"]: the products and the sum are exact int32,
scaled once by depth_scale * feat_scale at the end; fp16 out).
"""

from collections.abc import Mapping, Sequence

import torch
from bevdeploy.plugins.trt_ops.triton_util import (
    check_launch,
    float_storage,
    int8_input,
    next_pow2,
    out_dtype,
    tl,
    triton,
    tuned,
)

OP = "bev_pool_v2"
_MODE = {"fp32": 0, "fp16": 0, "fp16x2": 1, "int8": 2}
# launch shape; "tile" is the earlier one-program-per-interval kernel (benchmarks/ops.py --sweep compares)
# run 7 sweep (H200, session 5): "hoist" with 1 interval x 32 lanes per 1-warp program was the fastest shape for
# every precision and both anchors (BEVFusion fp32 0.099 ms vs 0.179 for the rows kernel at 2 x 16)
TUNING = {"strategy": "hoist", "block_i": 1, "pp": 32, "num_warps": 1, "full_c": False}
SWEEP = [{"strategy": "hoist"}, {"strategy": "hoist", "block_i": 4, "num_warps": 2},
         {"strategy": "hoist", "block_i": 1, "pp": 32}, {"strategy": "rows"}, {"strategy": "tile"}, {"block_i": 2, "pp": 16, "num_warps": 1}, {"block_i": 1, "pp": 32, "num_warps": 1},
         {"block_i": 2, "pp": 32, "num_warps": 2}, {"block_i": 2, "pp": 16, "num_warps": 4, "full_c": True},
         {"block_i": 1, "pp": 32, "num_warps": 4, "full_c": True}, {"block_i": 4, "pp": 16, "num_warps": 2}]


@triton.jit
def _point(depth_ptr, rd_ptr, rf_ptr, start, j, length):
    """Points start + j of every lane (j < length): (mask, feature rank, depth); the depth and feature loads
    depend on these rank loads."""
    pm = j < length
    rd = tl.load(rd_ptr + start + j, mask=pm, other=0)
    rf = tl.load(rf_ptr + start + j, mask=pm, other=0)
    return pm, rf, tl.load(depth_ptr + rd, mask=pm, other=0)


@triton.jit
def _pool_add(acc, d, feat_ptr, rf, C, c, pm, EVEN_C: tl.constexpr, MODE: tl.constexpr):
    """acc += depth * feat[rank, c] for one channel block of every lane's point."""
    fmask = pm[:, None] & ((c < C) | EVEN_C)[None, :]
    f = tl.load(feat_ptr + rf[:, None] * C + c[None, :], mask=fmask, other=0)
    if MODE == 0:
        acc += d.to(tl.float32)[:, None] * f.to(tl.float32)
    elif MODE == 1:
        acc += d[:, None] * f
    else:
        acc += d.to(tl.int32)[:, None] * f.to(tl.int32)
    return acc


@triton.jit
def _pool_store(acc, out_ptr, rb, C, c, imask, out_scale, BLOCK_I: tl.constexpr, PP: tl.constexpr,
                BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, MODE: tl.constexpr):
    """Sum a channel block's PP lanes per interval and store it at the intervals' cells."""
    acc3 = tl.reshape(acc, [BLOCK_I, PP, BLOCK_C])
    if MODE == 1:
        total = tl.sum(acc3, axis=1, dtype=tl.float16)
    else:
        total = tl.sum(acc3, axis=1)
    optr = out_ptr + rb[:, None] * C + c[None, :]
    smask = imask[:, None] & ((c < C) | EVEN_C)[None, :]
    tl.store(optr, (total.to(tl.float32) * out_scale).to(out_ptr.dtype.element_ty), mask=smask)


@triton.jit
def _bev_pool_v2_kernel(
    depth_ptr, feat_ptr, rd_ptr, rf_ptr, rb_ptr, starts_ptr, lens_ptr, out_ptr,
    C, out_scale,
    MODE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr,
):
    interval = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = (c < C) | EVEN_C
    start = tl.load(starts_ptr + interval)
    length = tl.load(lens_ptr + interval)
    # element-wise accumulation over the interval, one cross-thread reduction at the end
    acc = tl.zeros([BLOCK_P, BLOCK_C], dtype=tl.float32 if MODE == 0 else (tl.float16 if MODE == 1 else tl.int32))
    for p0 in range(0, length, BLOCK_P):
        pmask, rf, d = _point(depth_ptr, rd_ptr, rf_ptr, start, p0 + tl.arange(0, BLOCK_P), length)
        acc = _pool_add(acc, d, feat_ptr, rf, C, c, pmask, EVEN_C, MODE)
    if MODE == 1:
        total = tl.sum(acc, axis=0, dtype=tl.float16)
    else:
        total = tl.sum(acc, axis=0)
    rb = tl.load(rb_ptr + start)
    res = total.to(tl.float32) * out_scale
    # an empty interval writes nothing: its start may point into another interval's points
    tl.store(out_ptr + rb * C + c, res.to(out_ptr.dtype.element_ty), mask=cmask & (length > 0))


@triton.jit
def _intervals(rb_ptr, starts_ptr, lens_ptr, N_INT, BLOCK_I: tl.constexpr, PP: tl.constexpr):
    """This program's BLOCK_I intervals, PP lanes each: per lane its interval's start and length and its lane
    index (lane l takes points l, l + PP, ...), the longest length; per interval its mask, length and cell."""
    q = tl.arange(0, BLOCK_I * PP)
    it = tl.program_id(0) * BLOCK_I + q // PP
    imask = it < N_INT
    start = tl.load(starts_ptr + it, mask=imask, other=0)
    length = tl.load(lens_ptr + it, mask=imask, other=0)
    first = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    fmask = first < N_INT
    flen = tl.load(lens_ptr + first, mask=fmask, other=0)
    rb = tl.load(rb_ptr + tl.load(starts_ptr + first, mask=fmask, other=0), mask=fmask & (flen > 0), other=0)
    return start, length, q % PP, tl.max(length, axis=0), fmask, flen, rb


@triton.jit
def _bev_pool_rows_kernel(
    depth_ptr, feat_ptr, rd_ptr, rf_ptr, rb_ptr, starts_ptr, lens_ptr, out_ptr,
    N_INT, C, out_scale,
    MODE: tl.constexpr, BLOCK_I: tl.constexpr, PP: tl.constexpr, BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr,
):
    """BLOCK_I intervals per program, PP lanes per interval (lane l takes points l, l + PP, ...), a lane's
    [BLOCK_C] channel row accumulated in registers; one PP-way sum per channel block at the end. Many short
    intervals share a program instead of leaving most of a 16-point tile masked, and a long interval is
    walked PP points at a time."""
    start, length, lane, steps, fmask, flen, rb = _intervals(rb_ptr, starts_ptr, lens_ptr, N_INT, BLOCK_I, PP)
    acc_dt = tl.float32 if MODE == 0 else (tl.float16 if MODE == 1 else tl.int32)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        acc = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
        for j0 in range(0, steps, PP):
            pm, rf, d = _point(depth_ptr, rd_ptr, rf_ptr, start, j0 + lane, length)
            acc = _pool_add(acc, d, feat_ptr, rf, C, c, pm, EVEN_C, MODE)
        # an empty interval writes nothing: its start may point into another interval's points
        _pool_store(acc, out_ptr, rb, C, c, fmask & (flen > 0), out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)


@triton.jit
def _bev_pool_hoist_kernel(
    depth_ptr, feat_ptr, rd_ptr, rf_ptr, rb_ptr, starts_ptr, lens_ptr, out_ptr,
    N_INT, C, out_scale,
    MODE: tl.constexpr, BLOCK_I: tl.constexpr, PP: tl.constexpr, BLOCK_C: tl.constexpr, NCB: tl.constexpr,
    EVEN_C: tl.constexpr,
):
    """The rows kernel with every channel block in one pass over the points: a point's ranks and depth are
    loaded once for all NCB (<= 8) blocks of its feature row, instead of once per block (5 times for
    BEVFusion's 80 channels in 16-channel blocks), so each dependent rank -> row chain feeds NCB loads."""
    start, length, lane, steps, fmask, flen, rb = _intervals(rb_ptr, starts_ptr, lens_ptr, N_INT, BLOCK_I, PP)
    acc_dt = tl.float32 if MODE == 0 else (tl.float16 if MODE == 1 else tl.int32)
    cb = tl.arange(0, BLOCK_C)
    acc0 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc1 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc2 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc3 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc4 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc5 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc6 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    acc7 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    for j0 in range(0, steps, PP):
        pm, rf, d = _point(depth_ptr, rd_ptr, rf_ptr, start, j0 + lane, length)
        acc0 = _pool_add(acc0, d, feat_ptr, rf, C, cb, pm, EVEN_C, MODE)
        if NCB > 1:
            acc1 = _pool_add(acc1, d, feat_ptr, rf, C, cb + BLOCK_C, pm, EVEN_C, MODE)
        if NCB > 2:
            acc2 = _pool_add(acc2, d, feat_ptr, rf, C, cb + 2 * BLOCK_C, pm, EVEN_C, MODE)
        if NCB > 3:
            acc3 = _pool_add(acc3, d, feat_ptr, rf, C, cb + 3 * BLOCK_C, pm, EVEN_C, MODE)
        if NCB > 4:
            acc4 = _pool_add(acc4, d, feat_ptr, rf, C, cb + 4 * BLOCK_C, pm, EVEN_C, MODE)
        if NCB > 5:
            acc5 = _pool_add(acc5, d, feat_ptr, rf, C, cb + 5 * BLOCK_C, pm, EVEN_C, MODE)
        if NCB > 6:
            acc6 = _pool_add(acc6, d, feat_ptr, rf, C, cb + 6 * BLOCK_C, pm, EVEN_C, MODE)
        if NCB > 7:
            acc7 = _pool_add(acc7, d, feat_ptr, rf, C, cb + 7 * BLOCK_C, pm, EVEN_C, MODE)
    # an empty interval writes nothing: its start may point into another interval's points
    ok = fmask & (flen > 0)
    _pool_store(acc0, out_ptr, rb, C, cb, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 1:
        _pool_store(acc1, out_ptr, rb, C, cb + BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 2:
        _pool_store(acc2, out_ptr, rb, C, cb + 2 * BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 3:
        _pool_store(acc3, out_ptr, rb, C, cb + 3 * BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 4:
        _pool_store(acc4, out_ptr, rb, C, cb + 4 * BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 5:
        _pool_store(acc5, out_ptr, rb, C, cb + 5 * BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 6:
        _pool_store(acc6, out_ptr, rb, C, cb + 6 * BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)
    if NCB > 7:
        _pool_store(acc7, out_ptr, rb, C, cb + 7 * BLOCK_C, ok, out_scale, BLOCK_I, PP, BLOCK_C, EVEN_C, MODE)


def pool_inputs(op: str, depth, feat, precision: str, scales):
    """(depth, feat, output scale) in a variant's storage: int8 with the product of the two scales, else the
    float storage and 1. Shared with bev_pool_columns, which takes the same two inputs."""
    if precision == "int8":
        qd, sd = int8_input(op, depth, "depth", scales)
        qf, sf = int8_input(op, feat, "feat", scales)
        return qd, qf, sd * sf
    return float_storage(depth, precision), float_storage(feat, precision), 1.0


def _channel_block(c: int, elem: int) -> int:
    """Channels per inner step: the largest power of two dividing C (no masked lanes; 80 -> 16), at most
    128 bytes of a row; a padded power of two when C has no such divisor of 8 or more (odd C)."""
    cap = 128 // elem
    p2 = c & -c
    return min(p2, cap) if p2 >= 8 else min(next_pow2(c), cap)


def bev_pool_v2_cuda(
    depth: torch.Tensor,
    feat: torch.Tensor,
    ranks_depth: torch.Tensor,
    ranks_feat: torch.Tensor,
    ranks_bev: torch.Tensor,
    interval_starts: torch.Tensor,
    interval_lengths: torch.Tensor,
    out_shape: Sequence[int],
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Pool frustum features into BEV cells with the Triton kernel of one precision; returns (B, C, Z, Y, X).

    The result is a channels-last view (memory order B, Z, Y, X, C), as the kernel writes whole channel rows.
    """
    check_launch(OP, precision, [depth, feat, ranks_depth])
    b, z, y, x, c = (int(s) for s in out_shape)
    d, f, out_scale = pool_inputs(OP, depth, feat, precision, scales)
    out = torch.zeros((b, z, y, x, c), dtype=out_dtype(precision), device=depth.device)
    n_int = int(interval_starts.numel())
    if n_int == 0:
        return out.permute(0, 4, 1, 2, 3)
    ints = [t.to(torch.int32).contiguous() for t in (ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths)]
    cfg = tuned(TUNING, precision)
    if cfg["strategy"] == "tile":
        block_c = min(next_pow2(c), 128)
        _bev_pool_v2_kernel[(n_int, triton.cdiv(c, block_c))](
            d, f, *ints, out, c, out_scale,
            MODE=_MODE[precision], BLOCK_P=16, BLOCK_C=block_c, EVEN_C=block_c == c, num_warps=4,
        )
    elif cfg["strategy"] == "hoist" and -(-c // _channel_block(c, f.element_size())) <= 8:
        block_c = _channel_block(c, f.element_size())
        _bev_pool_hoist_kernel[(triton.cdiv(n_int, cfg["block_i"]),)](
            d, f, *ints, out, n_int, c, out_scale,
            MODE=_MODE[precision], BLOCK_I=cfg["block_i"], PP=cfg["pp"], BLOCK_C=block_c, NCB=-(-c // block_c),
            EVEN_C=c % block_c == 0, num_warps=cfg["num_warps"],
        )
    else:
        block_c = next_pow2(c) if cfg["full_c"] else _channel_block(c, f.element_size())
        _bev_pool_rows_kernel[(triton.cdiv(n_int, cfg["block_i"]),)](
            d, f, *ints, out, n_int, c, out_scale,
            MODE=_MODE[precision], BLOCK_I=cfg["block_i"], PP=cfg["pp"], BLOCK_C=block_c,
            EVEN_C=c % block_c == 0, num_warps=cfg["num_warps"],
        )
    return out.permute(0, 4, 1, 2, 3)
