"""Triton kernels of bev_pool_v2 (BEVDet's interval algorithm), one per precision.

Entry point (called by op.py on CUDA tensors)::

    bev_pool_v2_cuda(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths,
                     out_shape, precision="fp32", scales=None) -> (B, C, Z, Y, X)

depth (B, N, D, H, W), feat (B, N, H, W, C), ranks_* (R,) sorted by ranks_bev, intervals (K,) mark the
runs of equal ranks_bev, out_shape = (B, Z, Y, X, C) (arguments as reference.py). Each interval's sum of
depth[ranks_depth] * feat[ranks_feat, c] is written to out[ranks_bev, c]; the frustum feature is never
materialised and no atomics are needed. Cells without an interval stay zero. Default kernel
(_bev_pool_hoist_kernel): one interval per one-warp program, 32 lanes walking its points, each point's ranks and
depth loaded once for all its channel blocks, the next 32 points' a step ahead. Where there are many intervals
(32,768 or more, TUNING "many", launch_config): two intervals per program, 16 lanes each, as an [intervals, lanes]
grid (GRID), or for int8 four intervals of 8 lanes as one vector. The other kernels stay
selectable for the sweep: "rows" (_bev_pool_rows_kernel, one pass over the points per channel block), "tile"
(_bev_pool_v2_kernel, one program per interval) and "stream" (_bev_pool_stream_kernel, a fixed number of
programs walking intervals, loads a step ahead); see benchmarks/NOTES-ops.md. The programs start in interval
order, which bev_pool_v2_prepare makes long intervals first.

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
    resident_programs,
    tl,
    triton,
    tuned,
)

OP = "bev_pool_v2"
_MODE = {"fp32": 0, "fp16": 0, "fp16x2": 1, "int8": 2}
# launch shape; "tile" is the earlier one-program-per-interval kernel (benchmarks/ops.py --sweep compares)
# run 7 sweep (H200, session 5): "hoist" with 1 interval x 32 lanes per 1-warp program was the fastest shape for
# every precision and both anchors (BEVFusion fp32 0.099 ms vs 0.179 for the rows kernel at 2 x 16)
# session 17 (H200, ops-sweep-s17c / -s17d, bev_pool_order-s17*.json): "stream" ("progs_per_sm" programs per SM, each
# walking intervals pid, pid + programs, ... with the next step's ranks and depths loaded a step ahead; 168
# registers, "maxnreg" caps it) beat hoist on BEVDet (fp32 0.0151 -> 0.0132 ms at 16) but not on BEVFusion (fp32
# 0.0987 -> 0.0956 at 12, 0.112 at 16; fp16x2 slower at every count): its round-robin intervals leave some programs
# twice the mean points. Listing long intervals first (bev_pool_v2_prepare) took hoist past it on BEVDet: fp32
# 0.0150 -> 0.0128, fp16 0.0130 -> 0.0105, int8 0.0136 -> 0.0112 (stream 0.0128 / 0.0121 / 0.0120); on BEVFusion
# hoist 0 to -3% and stream's best count per row 2 - 4% ahead for fp32 / int8, behind for fp16. Default: hoist.
# Then hoist with stream's loads a step ahead ("ahead"; ops-sweep-s17g, three rounds in turn, long intervals first):
# faster in all 8 rows, BEVDet fp32 0.0128 -> 0.0123 ms, fp16x2 0.0096 -> 0.0091; BEVFusion fp32 0.0997 -> 0.0947,
# fp16 0.0993 -> 0.0953, fp16x2 0.0888 -> 0.0876, int8 0.0774 -> 0.0729. With it, 2 intervals x 16 lanes per program
# ran BEVFusion fp16 at 0.0860 but BEVDet fp16 at 0.0138 (+35%): one shape for both stays. With "ahead" the long
# intervals first gain less (bev_pool_order-run32: BEVDet fp32 0.0130 -> 0.0122, int8 0.0120 -> 0.0109 against cell
# order; BEVFusion fp32 0.0943 -> 0.0948, int8 0.0734 -> 0.0715).
# session 25 (results/tune-s25-bevpool*.md, warm and cold, two calls alike): 2 intervals x 16 lanes per program took
# BEVFusion fp16 0.0951 -> 0.0862 ms warm, 0.0976 -> 0.0876 cold, but BEVDet fp16 +35% warm / +52% cold, and
# BEVFusion fp16x2 / int8 +9 / +14% (fp32 -1%). The op cannot tell the rigs apart, but the mean interval length (points / intervals:
# BEVDet's anchor 15.6, BEVFusion's 36.8) is known from the shapes without a sync: "long" (mean, overrides) applies
# the overrides where the mean is at least that, fp16 only. Two anchors are all the evidence; other rigs may want
# another threshold.
# session 33 (H100; results/tune-s33-bevpool-*.md, two rounds, warm and cold alike): the anchors' ranks are now those
# the model plugins compute for nuScenes' rig (ops_cases.nuscenes_ranks). BEVDet's changed little (179,324 ranks /
# 11,431 intervals, mean 15.7), BEVFusion's much (1,833,766 / 96,821, mean 18.9 instead of 36.8), which made its
# rows 1.5x slower (fp32 0.100 -> 0.155 ms) and the mean no guide: at 15.7 and 18.9 BEVDet wants 1 x 32 in every
# precision and BEVFusion 2 x 16. What separates them is the interval count (11k programs of one warp are under
# three waves on 132 SMs; 97k are 23). Lanes as an [intervals, lanes] grid ("grid", GRID) instead of one vector
# reshaped for the final sum took BEVFusion's 2 x 16 further: fp32 0.155 -> 0.126 ms (flat 2 x 16: 0.143), fp16
# 0.157 -> 0.119, fp16x2 0.141 -> 0.111; int8 ran fastest as 4 x 8 flat, 0.130 -> 0.088 (grid 4 x 8: 0.102, grid
# 2 x 16: 0.139). On BEVDet the grid's 1 x 32 is within 3% of the flat one and every other shape 14 - 300% slower.
# "many" (intervals, overrides) applies the overrides from that many intervals on; 32,768 sits between the two
# anchors (geometric mean ~33k), which are again all the evidence.
# session 35 (H100; results/tune-s35-split.md, tune-s35-int8-cap.md, two rounds, warm and cold alike): hoist under a
# register cap ("maxnreg", now passed to hoist too): int8 at 96 took BEVDet 0.0124 -> 0.0112 ms warm, 0.0156 ->
# 0.0139 cold (80 spills, +66%; 112 and 128 level; the H200 -10% both ways, tune-s35-int8-cap-h200.md). The same
# cap slowed fp32 and fp16 (BEVDet +224% / +66%) and BEVFusion int8's shape (+54%) and left fp16x2 level, so it is
# int8's alone and int8's "many" lifts it. A point's channel blocks spread over programs (a second grid axis) were
# slower in every row they changed (BEVFusion +23 to +100%: each program repeats the interval's chain of dependent
# loads); not kept. The "packed" strategy (intervals' points end to end, summed by a depth-matrix product,
# results/tune-s35-packed.md) lost in every row too and was reverted (NOTES-ops item 44).
TUNING = {"strategy": "hoist", "block_i": 1, "pp": 32, "num_warps": 1, "full_c": False, "progs_per_sm": 16,
          "maxnreg": None, "ahead": True, "grid": False,
          "many": (32768, {"grid": True, "block_i": 2, "pp": 16}),
          "per_precision": {"int8": {"maxnreg": 96, "many": (32768, {"block_i": 4, "pp": 8, "maxnreg": None})}}}
# the sweep takes each entry as it stands: without the "many" overrides (top level and int8's)
SWEEP = [{"many": None, "per_precision": {}, **entry} for entry in (
         {"strategy": "hoist"}, {"strategy": "hoist", "block_i": 4, "num_warps": 2},
         {"strategy": "hoist", "block_i": 1, "pp": 32}, {"strategy": "rows"}, {"strategy": "tile"}, {"block_i": 2, "pp": 16, "num_warps": 1}, {"block_i": 1, "pp": 32, "num_warps": 1},
         {"block_i": 2, "pp": 32, "num_warps": 2}, {"block_i": 2, "pp": 16, "num_warps": 4, "full_c": True},
         {"block_i": 1, "pp": 32, "num_warps": 4, "full_c": True}, {"block_i": 4, "pp": 16, "num_warps": 2},
         *({"strategy": "stream", "progs_per_sm": k} for k in (12, 16, 24)),
         {"strategy": "stream", "progs_per_sm": 24, "maxnreg": 128}, {"ahead": False},
         {"ahead": True, "block_i": 2, "pp": 16}, {"block_i": 4, "pp": 8}, {"maxnreg": 96}, {"maxnreg": 128},
         *({"grid": True, "block_i": i, "pp": 32 // i} for i in (1, 2, 4, 8)))]


@triton.jit
def _ranks(rd_ptr, rf_ptr, start, j, length):
    """Points start + j of every lane (j < length): (mask, depth rank, feature rank)."""
    pm = j < length
    return pm, tl.load(rd_ptr + start + j, mask=pm, other=0), tl.load(rf_ptr + start + j, mask=pm, other=0)


@triton.jit
def _point(depth_ptr, rd_ptr, rf_ptr, start, j, length):
    """Points start + j of every lane (j < length): (mask, feature rank, depth); the depth and feature loads
    depend on these rank loads."""
    pm, rd, rf = _ranks(rd_ptr, rf_ptr, start, j, length)
    return pm, rf, tl.load(depth_ptr + rd, mask=pm, other=0)


@triton.jit
def _pool_add(acc, d, feat_ptr, rf, C, c, pm, EVEN_C: tl.constexpr, MODE: tl.constexpr):
    """acc += depth * feat[rank, c] for one channel block of every lane's point; the lanes are a vector or an
    [intervals, lanes] grid (the channels are acc's last dimension either way)."""
    fmask = tl.expand_dims(pm, -1) & ((c < C) | EVEN_C)
    f = tl.load(feat_ptr + tl.expand_dims(rf, -1) * C + c, mask=fmask, other=0)
    d = tl.expand_dims(d, -1)
    if MODE == 0:
        acc += d.to(tl.float32) * f.to(tl.float32)
    elif MODE == 1:
        acc += d * f
    else:
        acc += d.to(tl.int32) * f.to(tl.int32)
    return acc


@triton.jit
def _pool_store(acc, out_ptr, rb, C, c, imask, out_scale, BLOCK_I: tl.constexpr, PP: tl.constexpr,
                BLOCK_C: tl.constexpr, EVEN_C: tl.constexpr, MODE: tl.constexpr):
    """Sum a channel block's PP lanes per interval and store it at the intervals' cells (acc as [BLOCK_I * PP,
    BLOCK_C] lanes or already as the [BLOCK_I, PP, BLOCK_C] grid)."""
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
def _interval_grid(rb_ptr, starts_ptr, lens_ptr, N_INT, BLOCK_I: tl.constexpr, PP: tl.constexpr):
    """_intervals with the lanes as an [BLOCK_I, PP] grid: start and length [BLOCK_I, 1], lane [1, PP], so that
    each interval's lanes are a dimension of their own and the final PP-way sum needs no reshape."""
    first = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    fmask = first < N_INT
    start = tl.load(starts_ptr + first, mask=fmask, other=0)
    flen = tl.load(lens_ptr + first, mask=fmask, other=0)
    rb = tl.load(rb_ptr + start, mask=fmask & (flen > 0), other=0)
    lane = tl.arange(0, PP)[None, :]
    return start[:, None], flen[:, None], lane, tl.max(flen, axis=0), fmask, flen, rb


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
def _pool_add_blocks(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, d, feat_ptr, rf, C, cb, pm,
                     BLOCK_C: tl.constexpr, NCB: tl.constexpr, EVEN_C: tl.constexpr, MODE: tl.constexpr):
    """_pool_add for each of the NCB (<= 8) channel blocks of every lane's point (the unused accumulators stay)."""
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
    return acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7


@triton.jit
def _pool_store_blocks(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, out_ptr, rb, C, cb, ok, out_scale,
                       BLOCK_I: tl.constexpr, PP: tl.constexpr, BLOCK_C: tl.constexpr, NCB: tl.constexpr,
                       EVEN_C: tl.constexpr, MODE: tl.constexpr):
    """_pool_store for each of the NCB channel blocks."""
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


@triton.jit
def _bev_pool_hoist_kernel(
    depth_ptr, feat_ptr, rd_ptr, rf_ptr, rb_ptr, starts_ptr, lens_ptr, out_ptr,
    N_INT, C, out_scale,
    MODE: tl.constexpr, BLOCK_I: tl.constexpr, PP: tl.constexpr, BLOCK_C: tl.constexpr, NCB: tl.constexpr,
    EVEN_C: tl.constexpr, AHEAD: tl.constexpr = False, GRID: tl.constexpr = False,
):
    """The rows kernel with every channel block in one pass over the points: a point's ranks and depth are
    loaded once for all NCB (<= 8) blocks of its feature row, instead of once per block (5 times for
    BEVFusion's 80 channels in 16-channel blocks), so each dependent rank -> row chain feeds NCB loads.
    AHEAD: an interval's next PP points' ranks are loaded while this step's rows are gathered, and their depths
    before the step ends (as the stream kernel does), instead of at the top of the next step.
    GRID: the lanes as an [intervals, lanes] grid (_interval_grid) instead of one vector of BLOCK_I * PP."""
    if GRID:
        start, length, lane, steps, fmask, flen, rb = _interval_grid(rb_ptr, starts_ptr, lens_ptr, N_INT, BLOCK_I, PP)
    else:
        start, length, lane, steps, fmask, flen, rb = _intervals(rb_ptr, starts_ptr, lens_ptr, N_INT, BLOCK_I, PP)
    acc_dt = tl.float32 if MODE == 0 else (tl.float16 if MODE == 1 else tl.int32)
    cb = tl.arange(0, BLOCK_C)
    if GRID:
        a0 = tl.zeros([BLOCK_I, PP, BLOCK_C], dtype=acc_dt)
    else:
        a0 = tl.zeros([BLOCK_I * PP, BLOCK_C], dtype=acc_dt)
    a1, a2, a3, a4, a5, a6, a7 = a0, a0, a0, a0, a0, a0, a0
    if AHEAD:
        pm, rf, d = _point(depth_ptr, rd_ptr, rf_ptr, start, lane, length)
    for j0 in range(0, steps, PP):
        if AHEAD:
            pm_n, rd_n, rf_n = _ranks(rd_ptr, rf_ptr, start, j0 + PP + lane, length)
        else:
            pm, rf, d = _point(depth_ptr, rd_ptr, rf_ptr, start, j0 + lane, length)
        a0, a1, a2, a3, a4, a5, a6, a7 = _pool_add_blocks(a0, a1, a2, a3, a4, a5, a6, a7, d, feat_ptr, rf, C, cb, pm,
                                                          BLOCK_C, NCB, EVEN_C, MODE)
        if AHEAD:
            pm, rf = pm_n, rf_n
            d = tl.load(depth_ptr + rd_n, mask=pm_n, other=0)
    # an empty interval writes nothing: its start may point into another interval's points
    _pool_store_blocks(a0, a1, a2, a3, a4, a5, a6, a7, out_ptr, rb, C, cb, fmask & (flen > 0), out_scale, BLOCK_I, PP,
                       BLOCK_C, NCB, EVEN_C, MODE)


@triton.jit
def _bev_pool_stream_kernel(
    depth_ptr, feat_ptr, rd_ptr, rf_ptr, rb_ptr, starts_ptr, lens_ptr, out_ptr,
    N_INT, C, out_scale,
    MODE: tl.constexpr, PP: tl.constexpr, BLOCK_C: tl.constexpr, NCB: tl.constexpr, EVEN_C: tl.constexpr,
):
    """The hoist kernel's work (one interval at a time, PP lanes over its points, all channel blocks per pass) on
    a fixed number of programs, each walking intervals pid, pid + programs, ... with the next PP points' loads
    issued a step ahead: while a step's feature rows are gathered and summed, the next step's ranks (of this
    interval, or the first of the next) are already on their way, and their depths are asked for before the
    step ends; interval bounds are loaded one interval ahead of that. The hoist kernel (AHEAD or not) waits on
    each interval's bounds, then its first ranks, then their depths and rows, before its first step."""
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    lane = tl.arange(0, PP)
    one = tl.arange(0, 1)
    acc_dt = tl.float32 if MODE == 0 else (tl.float16 if MODE == 1 else tl.int32)
    cb = tl.arange(0, BLOCK_C)
    # prologue: this program's first interval, its first step's ranks and depths, and the second interval's bounds
    ok = pid < N_INT
    start = tl.load(starts_ptr + pid, mask=ok, other=0)
    length = tl.load(lens_ptr + pid, mask=ok, other=0)
    pm, rf, d = _point(depth_ptr, rd_ptr, rf_ptr, start, lane, length)
    ok = pid + nprog < N_INT
    start_n = tl.load(starts_ptr + pid + nprog, mask=ok, other=0)
    length_n = tl.load(lens_ptr + pid + nprog, mask=ok, other=0)
    for it in range(pid, N_INT, nprog):
        rb = tl.load(rb_ptr + start + one, mask=(one == 0) & (length > 0), other=0)
        a0 = tl.zeros([PP, BLOCK_C], dtype=acc_dt)
        a1, a2, a3, a4, a5, a6, a7 = a0, a0, a0, a0, a0, a0, a0
        for j0 in range(0, tl.maximum(length, 1), PP):
            # the next step: the rest of this interval, else the next interval's first points
            more = j0 + PP < length
            s_next = tl.where(more, start + j0 + PP, start_n)
            l_next = tl.where(more, length - j0 - PP, length_n)
            pm_n, rd_n, rf_n = _ranks(rd_ptr, rf_ptr, s_next, lane, l_next)
            a0, a1, a2, a3, a4, a5, a6, a7 = _pool_add_blocks(a0, a1, a2, a3, a4, a5, a6, a7, d, feat_ptr, rf, C, cb,
                                                              pm, BLOCK_C, NCB, EVEN_C, MODE)
            pm, rf = pm_n, rf_n
            d = tl.load(depth_ptr + rd_n, mask=pm_n, other=0)
        # an empty interval writes nothing: its start may point into another interval's points
        _pool_store_blocks(a0, a1, a2, a3, a4, a5, a6, a7, out_ptr, rb, C, cb, (one == 0) & (length > 0), out_scale,
                           1, PP, BLOCK_C, NCB, EVEN_C, MODE)
        start, length = start_n, length_n
        ok = it + 2 * nprog < N_INT
        start_n = tl.load(starts_ptr + it + 2 * nprog, mask=ok, other=0)
        length_n = tl.load(lens_ptr + it + 2 * nprog, mask=ok, other=0)


def pool_inputs(op: str, depth, feat, precision: str, scales):
    """(depth, feat, output scale) in a variant's storage: int8 with the product of the two scales, else the
    float storage and 1. Shared with bev_pool_columns, which takes the same two inputs."""
    if precision == "int8":
        qd, sd = int8_input(op, depth, "depth", scales)
        qf, sf = int8_input(op, feat, "feat", scales)
        return qd, qf, sd * sf
    return float_storage(depth, precision), float_storage(feat, precision), 1.0


def launch_config(cfg: Mapping, intervals: int) -> dict:
    """``cfg`` (a precision's TUNING) with its "many" overrides applied where there are at least its threshold of
    ``intervals`` (from the shapes: no device sync)."""
    many = cfg.get("many")
    if many and intervals >= many[0]:
        return {**cfg, **many[1]}
    return dict(cfg)


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
    cfg = launch_config(tuned(TUNING, precision), n_int)
    block_c = _channel_block(c, f.element_size())  # hoist, stream and rows (unless full_c) walk C in these blocks
    ncb = -(-c // block_c)
    if cfg["strategy"] == "tile":
        block_c = min(next_pow2(c), 128)
        _bev_pool_v2_kernel[(n_int, triton.cdiv(c, block_c))](
            d, f, *ints, out, c, out_scale,
            MODE=_MODE[precision], BLOCK_P=16, BLOCK_C=block_c, EVEN_C=block_c == c, num_warps=4,
        )
    elif cfg["strategy"] == "hoist" and ncb <= 8:
        _bev_pool_hoist_kernel[(triton.cdiv(n_int, cfg["block_i"]),)](
            d, f, *ints, out, n_int, c, out_scale,
            MODE=_MODE[precision], BLOCK_I=cfg["block_i"], PP=cfg["pp"], BLOCK_C=block_c, NCB=ncb,
            EVEN_C=c % block_c == 0, AHEAD=cfg["ahead"], GRID=cfg["grid"], num_warps=cfg["num_warps"],
            maxnreg=cfg["maxnreg"],
        )
    elif cfg["strategy"] == "stream" and ncb <= 8:
        progs = min(n_int, resident_programs(depth.device, cfg["progs_per_sm"]))
        _bev_pool_stream_kernel[(progs,)](
            d, f, *ints, out, n_int, c, out_scale,
            MODE=_MODE[precision], PP=cfg["pp"], BLOCK_C=block_c, NCB=ncb, EVEN_C=c % block_c == 0,
            num_warps=cfg["num_warps"], maxnreg=cfg["maxnreg"],
        )
    else:
        block_c = next_pow2(c) if cfg["full_c"] else block_c
        _bev_pool_rows_kernel[(triton.cdiv(n_int, cfg["block_i"]),)](
            d, f, *ints, out, n_int, c, out_scale,
            MODE=_MODE[precision], BLOCK_I=cfg["block_i"], PP=cfg["pp"], BLOCK_C=block_c,
            EVEN_C=c % block_c == 0, num_warps=cfg["num_warps"],
        )
    return out.permute(0, 4, 1, 2, 3)
