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
from bevdeploy.plugins.trt_ops.triton_util import check_launch, next_pow2, out_dtype, tl, triton, tuned

from .reference import ROWS_PER_SLICE, RUN_ALIGN

OP = "bev_pool_columns"
_MODE = {"fp32": 0, "fp16": 1, "fp16x2": 2, "int8": 3}
# sweep of run 15 (H200, benchmarks/results/ops-sweep-run15.md): 32 runs on 4 warps fastest for fp32 (BEVFusion
# 0.0364 ms vs 0.038-0.041 for 16 runs or 8 warps) and within 3% for fp16; int8 16 runs on 2 warps (0.0208 vs
# 0.0220, BEVDet 0.0049 vs 0.0054). All channels in one block: splitting 80 channels repeats the depth gather
# per block (64: 0.046, 32: 0.055 ms fp32). 16 cells x all channels per fill program.
TUNING = {"block_r": 32, "num_warps": 4, "fill_cells": 16, "block_c": 128,
          "per_precision": {"int8": {"block_r": 16, "num_warps": 2}}}
SWEEP = [{"block_r": 16}, {"block_r": 32}, {"block_r": 16, "num_warps": 2}, {"block_r": 32, "num_warps": 8},
         {"block_c": 64}, {"block_c": 32}, {"block_c": 16}, {"block_r": 16, "block_c": 32, "num_warps": 2}]


@triton.jit
def _fill_kernel(out_ptr, fill_ptr, N_FILL, C, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    i = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cell = tl.load(fill_ptr + i, mask=i < N_FILL, other=0).to(tl.int64)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    zero = tl.zeros((BLOCK_N, BLOCK_C), dtype=out_ptr.dtype.element_ty)
    tl.store(out_ptr + cell[:, None] * C + c[None, :], zero, mask=(i[:, None] < N_FILL) & (c[None, :] < C))


@triton.jit
def _columns_kernel(depth_ptr, feat_ptr, runs_ptr, out_ptr, R, D, H, W, C, SLICES, out_scale,
                    BLOCK_R: tl.constexpr, HB: tl.constexpr, BLOCK_C: tl.constexpr, MODE: tl.constexpr):
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
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = c[None, :] < C
    f = tl.load(feat_ptr + ((cam * H + h[:, None]) * W + w).to(tl.int64) * C + c[None, :],
                mask=(h[:, None] < H) & cm, other=0)
    on = ((bits[:, None] >> k[None, :]) & 1) != 0
    a = tl.load(depth_ptr + ((cam * D * H + rows[:, None] + k[None, :]) * W + w).to(tl.int64), mask=on, other=0)
    if MODE == 0:
        p = tl.dot(a, f, input_precision="ieee")
    elif MODE == 1:
        p = tl.dot(a, f)
    elif MODE == 2:
        p = tl.dot(a, f, out_dtype=tl.float16)
    else:
        p = tl.dot(a, f).to(tl.float32) * out_scale
    p = p.to(out_ptr.dtype.element_ty)
    single = code >= 0
    cell = tl.where(single, code, -code - 1).to(tl.int64)
    ptr = out_ptr + cell[:, None] * C + c[None, :]
    ok = (bits != 0)[:, None] & cm  # padding runs (mask 0) write nothing
    tl.store(ptr, p, mask=ok & single[:, None])
    tl.atomic_add(ptr, p, mask=ok & ~single[:, None], sem="relaxed")


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
    block_c = min(max(next_pow2(c), 16), cfg["block_c"])
    if RUN_ALIGN % cfg["block_r"]:
        raise ValueError(f"block_r {cfg['block_r']} must divide the plan's column alignment {RUN_ALIGN}")
    n_fill, n_runs = int(fill.numel()), int(runs.shape[1])
    if n_fill:
        _fill_kernel[(triton.cdiv(n_fill, cfg["fill_cells"]), triton.cdiv(c, block_c))](
            out, fill.to(torch.int32).contiguous(), n_fill, c, BLOCK_N=cfg["fill_cells"], BLOCK_C=block_c, num_warps=4)
    if n_runs:
        hb = ROWS_PER_SLICE if precision == "int8" or h > 16 else 16  # int8 products need K >= 32
        _columns_kernel[(triton.cdiv(n_runs, cfg["block_r"]), triton.cdiv(c, block_c))](
            dq, fq, runs.to(torch.int32).contiguous(), out, n_runs, d_bins, h, w, c, -(-h // ROWS_PER_SLICE),
            out_scale, BLOCK_R=cfg["block_r"], HB=hb, BLOCK_C=block_c, MODE=_MODE[precision],
            num_warps=cfg["num_warps"])
    return out.permute(0, 4, 1, 2, 3)
