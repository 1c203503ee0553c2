"""Triton kernels of bev_pool_columns: pooling by camera column, one matrix product per block of runs.

Entry point (called by op.py on CUDA tensors)::

    bev_pool_columns_cuda(depth, feat, runs, fill, out_shape, precision="fp32", scales=None) -> (B, C, Z, Y, X)

Two launches. ``_fill_kernel`` zeroes the plan's ``fill`` cells (empty cells and cells several runs add
into). ``_columns_kernel`` takes BLOCK_R consecutive runs of the column-sorted plan, all of one column (the
plan pads columns to 32 runs); it loads the column's 32 pixel rows of features (32 x C), builds the runs' depth
matrix (BLOCK_R x 32: depth of the run's depth bin at each of its rows, zero
elsewhere) and multiplies the two. A run that alone owns its cell stores its row; the others add it with
atomics (so the order of those additions, and their last bits, may vary from call to call).

Why (benchmarks/NOTES-ops.md run 15): the interval kernels gather one feature row per point through L2
(577 MB at BEVFusion's size, bound by dependent-load latency); here each row is read once per column slice.

Variants: fp32 (ieee fp32 product); fp16 (fp16 depth/feat, fp32 accumulation, fp16 out and fp16 atomics);
fp16x2 (the product accumulated in fp16, half2 arithmetic's accuracy); int8 (depth and feat int8 with
scales["depth"], scales["feat"]: an exact int32 product, scaled once by depth_scale * feat_scale; fp16 out).
"""

from collections.abc import Mapping, Sequence

import torch
from bevdeploy.plugins.trt_ops.bev_pool_v2.kernels import pool_inputs
from bevdeploy.plugins.trt_ops.triton_util import (
    channel_tiles,
    check_launch,
    next_pow2,
    out_dtype,
    tl,
    triton,
    tuned,
)

from .reference import ROWS_PER_SLICE, RUN_ALIGN

OP = "bev_pool_columns"
_MODE = {"fp32": 0, "fp16": 1, "fp16x2": 2, "int8": 3}
# sweep of run 15 (H200, benchmarks/results/ops-sweep-run15.md, BEVFusion unless said): fp32 fastest on 32 runs x 4
# warps (0.0381 ms as one tile; 16 runs 0.040, 2 warps 0.043, 8 warps 0.039) and split into 64 + 16 channel
# tiles (0.0345); fp16 within 6% across shapes (0.0211 on 8 warps to 0.0238), left at 4 warps and one tile (split
# 0.0230 vs 0.0222); int8 on 16 runs x 2 warps (0.0210 vs 0.0219; BEVDet 0.0049 vs 0.0052), one tile (split
# 0.0223). All channels in one program: splitting them over programs repeats the depth gather (block_c 64:
# 0.045, 32: 0.052 ms fp32). 16 cells x all channels per fill program.
TUNING = {"block_r": 32, "num_warps": 4, "fill_cells": 16, "block_c": 128, "split_c": False,
          "per_precision": {"fp32": {"split_c": True}, "int8": {"block_r": 16, "num_warps": 2}}}
# every entry clears per_precision so that it measures the shape it names (from the global defaults above)
SWEEP = [{**cfg, "per_precision": {}} for cfg in (
    {"block_r": 16}, {"block_r": 32}, {"block_r": 16, "num_warps": 2}, {"block_r": 32, "num_warps": 8},
    {"block_r": 32, "num_warps": 2}, {"block_c": 64}, {"block_c": 32}, {"split_c": True},
    {"split_c": True, "block_r": 16, "num_warps": 2})]


@triton.jit
def _fill_kernel(out_ptr, fill_ptr, N_FILL, C, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    i = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cell = tl.load(fill_ptr + i, mask=i < N_FILL, other=0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    zero = tl.zeros((BLOCK_N, BLOCK_C), dtype=out_ptr.dtype.element_ty)
    tl.store(out_ptr + cell[:, None] * C + c[None, :], zero, mask=(i[:, None] < N_FILL) & (c[None, :] < C))


@triton.jit
def product(a, f, out_scale, MODE: tl.constexpr):
    """a @ f per precision mode: 0 fp32 (IEEE, no TF32), 1 fp16 with fp32 accumulation, 2 fp16 accumulation
    (the "fp16x2" contract), 3 int8 x int8 -> int32, scaled by out_scale. Also used by the session-7 prototypes
    in benchmarks/."""
    if MODE == 0:
        p = tl.dot(a, f, input_precision="ieee")
    elif MODE == 1:
        p = tl.dot(a, f)
    elif MODE == 2:
        p = tl.dot(a, f, out_dtype=tl.float16)
    else:
        p = tl.dot(a, f).to(tl.float32) * out_scale
    return p


@triton.jit
def _pool_tile(a, feat_row_ptr, row_ok, out_row_ptr, single, real, c, C, out_scale, MODE: tl.constexpr):
    """The runs' rows for channels c: depth matrix a (runs x rows) @ feature tile (rows x c), stored where a run
    owns its cell and added where several runs share it."""
    cm = c[None, :] < C
    f = tl.load(feat_row_ptr[:, None] + c[None, :], mask=row_ok[:, None] & cm, other=0)
    p = product(a, f, out_scale, MODE).to(out_row_ptr.dtype.element_ty)
    ptr = out_row_ptr[:, None] + c[None, :]
    ok = real[:, None] & cm
    tl.store(ptr, p, mask=ok & single[:, None])
    tl.atomic_add(ptr, p, mask=ok & ~single[:, None], sem="relaxed")


@triton.jit
def _columns_kernel(depth_ptr, feat_ptr, runs_ptr, out_ptr, R, D, H, W, C, SLICES, out_scale,
                    BLOCK_R: tl.constexpr, HB: tl.constexpr, C1: tl.constexpr, C2: tl.constexpr, MODE: tl.constexpr):
    r0 = tl.program_id(0) * BLOCK_R
    r = r0 + tl.arange(0, BLOCK_R)
    rm = r < R
    col = tl.load(runs_ptr + r0)  # the plan pads columns to RUN_ALIGN, a multiple of BLOCK_R: one column
    s = col % SLICES
    cam = col // (SLICES * W)
    w = (col // SLICES) % W
    rows = tl.load(runs_ptr + R + r, mask=rm, other=0)
    bits = tl.load(runs_ptr + 2 * R + r, mask=rm, other=0)
    code = tl.load(runs_ptr + 3 * R + r, mask=rm, other=0)
    k = tl.arange(0, HB)
    h = s * HB + k  # HB is 32 (the slice height) whenever the plan has more than one slice
    on = ((bits[:, None] >> k[None, :]) & 1) != 0
    a = tl.load(depth_ptr + ((cam * D * H + rows[:, None] + k[None, :]) * W + w).to(tl.int64), mask=on, other=0)
    feat_row_ptr = feat_ptr + ((cam * H + h) * W + w).to(tl.int64) * C
    single = code >= 0
    out_row_ptr = out_ptr + tl.where(single, code, -code - 1).to(tl.int64) * C
    real = bits != 0  # padding runs (mask 0) write nothing
    c0 = tl.program_id(1) * (C1 + C2)
    # with C2 > 0, two power-of-two channel tiles (80 = 64 + 16) instead of one padded one; a is shared
    _pool_tile(a, feat_row_ptr, h < H, out_row_ptr, single, real, c0 + tl.arange(0, C1), C, out_scale, MODE)
    if C2 > 0:
        _pool_tile(a, feat_row_ptr, h < H, out_row_ptr, single, real, c0 + C1 + tl.arange(0, C2), C, out_scale,
                   MODE)


def bev_pool_columns_cuda(
    depth: torch.Tensor,
    feat: torch.Tensor,
    runs: torch.Tensor,
    fill: torch.Tensor,
    out_shape: Sequence[int],
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Pool frustum features into BEV cells by column plan with the kernels of one precision; returns
    (B, C, Z, Y, X), a channels-last view (memory order B, Z, Y, X, C)."""
    check_launch(OP, precision, [depth, feat, runs, fill])
    b, z, y, x, c = (int(s) for s in out_shape)
    _, _, d_bins, h, w = depth.shape
    dq, fq, out_scale = pool_inputs(OP, depth, feat, precision, scales)
    out = torch.empty((b, z, y, x, c), dtype=out_dtype(precision), device=depth.device)
    cfg = tuned(TUNING, precision)
    c1, c2 = channel_tiles(c, cfg["block_c"], cfg["split_c"])
    if RUN_ALIGN % cfg["block_r"]:
        raise ValueError(f"block_r {cfg['block_r']} must divide the plan's column alignment {RUN_ALIGN}")
    n_fill, n_runs = int(fill.numel()), int(runs.shape[1])
    if n_fill:
        fill_c = min(max(next_pow2(c), 16), 128)
        _fill_kernel[(triton.cdiv(n_fill, cfg["fill_cells"]), triton.cdiv(c, fill_c))](
            out, fill.to(torch.int32).contiguous(), n_fill, c, BLOCK_N=cfg["fill_cells"], BLOCK_C=fill_c, num_warps=4)
    if n_runs:
        hb = ROWS_PER_SLICE if precision == "int8" or h > 16 else 16  # int8 products need K >= 32
        _columns_kernel[(triton.cdiv(n_runs, cfg["block_r"]), triton.cdiv(c, c1 + c2))](
            dq, fq, runs.to(torch.int32).contiguous(), out, n_runs, d_bins, h, w, c, -(-h // ROWS_PER_SLICE),
            out_scale, BLOCK_R=cfg["block_r"], HB=hb, C1=c1, C2=c2, MODE=_MODE[precision],
            num_warps=cfg["num_warps"])
    return out.permute(0, 4, 1, 2, 3)
