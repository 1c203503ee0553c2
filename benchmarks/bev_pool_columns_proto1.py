"""Session 7 prototype 1 of bev_pool_columns (NOTES-ops run 15), kept to reproduce its numbers: the two-pass
variant (plain stores of partial rows, then a per-cell sum) timed against bev_pool_v2 at both anchors, plus fp16 /
int8 modes and memset + atomics. Its plan format predates the library's (no column padding, a CSR of columns).
Run on a GPU from the repository root: ``python3 benchmarks/bev_pool_columns_proto1.py OUT.json``.
"""
# ruff: noqa: B023  (every closure is timed inside the loop iteration that defines it)

import json
import sys
import time

import torch
import triton
import triton.language as tl

sys.path.insert(0, "benchmarks")
from bevdeploy.plugins.trt_ops.bev_pool_columns.kernels import product
from bevdeploy.plugins.trt_ops.bev_pool_v2.kernels import bev_pool_v2_cuda
from bevdeploy.plugins.trt_ops.bev_pool_v2.reference import bev_pool_v2_reference
from ops_cases import bev_pool_case


def plan_from_ranks(ranks_depth, ranks_feat, ranks_bev, depth_shape, n_cells, hb=32):
    b, n, D, H, W = depth_shape
    rd = ranks_depth.long()
    cell = ranks_bev.long()
    w = rd % W
    h = (rd // W) % H
    d = (rd // (H * W)) % D
    cam = rd // (D * H * W)
    assert torch.equal(ranks_feat.long(), (cam * H + h) * W + w)
    nchunk = -(-H // hb)
    col = (cam * W + w) * nchunk + h // hb
    key = (col * D + d) * n_cells + cell
    runs, inv = torch.unique(key, return_inverse=True)
    R = runs.numel()
    bits = torch.zeros(R, dtype=torch.int64, device=rd.device).index_add_(0, inv, 1 << (h % hb))
    bits = torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32)
    run_col = runs // (D * n_cells)
    run_d = (runs // n_cells) % D
    run_cell = runs % n_cells
    ncol = b * n * W * nchunk
    col_off = torch.zeros(ncol + 1, dtype=torch.int64, device=rd.device)
    col_off[1:] = torch.bincount(run_col, minlength=ncol).cumsum(0)
    per_cell = torch.bincount(run_cell, minlength=n_cells)
    multi = per_cell[run_cell] > 1
    # partial slots of multi-run cells, in cell order
    order = torch.argsort(run_cell * (multi.long()) + (~multi).long() * n_cells, stable=True)
    slot = torch.full((R,), -1, dtype=torch.int64, device=rd.device)
    nm = int(multi.sum())
    slot[order[:nm]] = torch.arange(nm, device=rd.device)
    dest = torch.where(multi, -slot - 1, run_cell)
    cell_len = torch.where(per_cell > 1, per_cell, torch.where(per_cell == 1, -1, 0))
    mcount = torch.where(per_cell > 1, per_cell, 0)
    cell_start = mcount.cumsum(0) - mcount
    run_dh = run_d * H + (run_col % nchunk) * hb

    def i32(t):
        return t.to(torch.int32).contiguous()

    return dict(
        col_off=i32(col_off),
        run_dh=i32(run_dh),
        run_mask=bits.contiguous(),
        run_dest=i32(dest),
        run_cell=i32(run_cell),
        cell_start=i32(cell_start),
        cell_len=i32(cell_len),
        n_partial=nm,
        nchunk=nchunk,
        runs=R,
        max_runs_col=int((col_off[1:] - col_off[:-1]).max()),
        max_per_cell=int(per_cell.max()),
    )


@triton.jit
def column_operands(depth, feat, col, r0, r1, run_dh, run_mask, D, H, W, C, NCHUNK,
                    BLOCK_R: tl.constexpr, HB: tl.constexpr, CB: tl.constexpr, GATHER: tl.constexpr = 0):
    """Runs r0..r1 (at most BLOCK_R) of column ``col``: (r, in-range mask, channels c, depth matrix a (runs x HB
    rows), feature tile f (HB rows x CB channels)). GATHER 0: depth (N, D, H, W); 1: no depth gather (a holds
    the runs' 0/1 masks); 2: depth transposed to (N, W, D, H), a run's rows contiguous."""
    chunk = col % NCHUNK
    cw = col // NCHUNK
    cam = cw // W
    w = cw % W
    k = tl.arange(0, HB)
    c = tl.arange(0, CB)
    hrow = chunk * HB + k
    f = tl.load(
        feat + ((cam * H + hrow[:, None]) * W + w) * C + c[None, :],
        mask=(hrow[:, None] < H) & (c[None, :] < C),
        other=0,
    )
    r = r0 + tl.arange(0, BLOCK_R)
    rm = r < r1
    dh = tl.load(run_dh + r, mask=rm, other=0)
    m = tl.load(run_mask + r, mask=rm, other=0)
    on = (((m[:, None] >> k[None, :]) & 1) != 0) & rm[:, None]
    if GATHER == 1:
        a = on.to(feat.dtype.element_ty)
    elif GATHER == 2:
        a = tl.load(depth + (cam * W + w) * D * H + dh[:, None] + k[None, :], mask=on, other=0)
    else:
        a = tl.load(depth + (cam * D * H + dh[:, None] + k[None, :]) * W + w, mask=on, other=0)
    return r, rm, c, a, f


@triton.jit
def cols_kernel(
    depth,
    feat,
    out,
    partial,
    col_off,
    run_dh,
    run_mask,
    run_dest,
    D,
    H,
    W,
    C,
    NCHUNK,
    out_scale,
    BLOCK_R: tl.constexpr,
    HB: tl.constexpr,
    CB: tl.constexpr,
    MODE: tl.constexpr,
):
    col = tl.program_id(0)
    r0 = tl.load(col_off + col) + tl.program_id(1) * BLOCK_R
    r1 = tl.load(col_off + col + 1)
    if r0 < r1:
        r, rm, c, a, f = column_operands(
            depth, feat, col, r0, r1, run_dh, run_mask, D, H, W, C, NCHUNK, BLOCK_R, HB, CB
        )
        p = product(a, f, out_scale, MODE).to(out.dtype.element_ty)
        dest = tl.load(run_dest + r, mask=rm, other=0)
        cm = c[None, :] < C
        tl.store(
            out + dest[:, None].to(tl.int64) * C + c[None, :], p, mask=rm[:, None] & (dest[:, None] >= 0) & cm
        )
        tl.store(
            partial + (-dest[:, None] - 1).to(tl.int64) * C + c[None, :],
            p,
            mask=rm[:, None] & (dest[:, None] < 0) & cm,
        )


@triton.jit
def cells_kernel(out, partial, cell_start, cell_len, NCELL, C, BLOCK_N: tl.constexpr, CB: tl.constexpr):
    cells = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = cells < NCELL
    ln = tl.load(cell_len + cells, mask=nm, other=-1)
    st = tl.load(cell_start + cells, mask=nm, other=0)
    c = tl.arange(0, CB)
    cm = c[None, :] < C
    acc = tl.zeros((BLOCK_N, CB), dtype=tl.float32)
    for j in range(0, tl.max(ln, 0)):
        acc += tl.load(
            partial + (st[:, None] + j).to(tl.int64) * C + c[None, :], mask=(j < ln[:, None]) & cm, other=0
        ).to(tl.float32)
    tl.store(
        out + cells[:, None].to(tl.int64) * C + c[None, :],
        acc.to(out.dtype.element_ty),
        mask=(ln[:, None] != -1) & cm,
    )


@triton.jit
def atomic_kernel(
    depth,
    feat,
    out,
    col_off,
    run_dh,
    run_mask,
    run_cell,
    D,
    H,
    W,
    C,
    NCHUNK,
    BLOCK_R: tl.constexpr,
    HB: tl.constexpr,
    CB: tl.constexpr,
):
    col = tl.program_id(0)
    r0 = tl.load(col_off + col) + tl.program_id(1) * BLOCK_R
    r1 = tl.load(col_off + col + 1)
    if r0 < r1:
        r, rm, c, a, f = column_operands(
            depth, feat, col, r0, r1, run_dh, run_mask, D, H, W, C, NCHUNK, BLOCK_R, HB, CB
        )
        p = tl.dot(a, f, input_precision="ieee")
        cell = tl.load(run_cell + r, mask=rm, other=0)
        tl.atomic_add(
            out + cell[:, None].to(tl.int64) * C + c[None, :],
            p,
            mask=rm[:, None] & (c[None, :] < C),
            sem="relaxed",
        )


def run_cols(
    depth,
    feat,
    plan,
    out_shape,
    mode=0,
    scale=1.0,
    block_r=32,
    num_warps=4,
    block_n=8,
    nw2=4,
    out_dtype=torch.float32,
):
    b, n, D, H, W = depth.shape
    B, Z, Y, X, C = out_shape
    out = torch.empty((B, Z, Y, X, C), dtype=out_dtype, device=depth.device)
    partial = torch.empty((max(plan["n_partial"], 1), C), dtype=out_dtype, device=depth.device)
    hb = max(32 if mode == 3 else 16, min(32, triton.next_power_of_2(H)))
    cb = max(16, triton.next_power_of_2(C))
    ncol = plan["col_off"].numel() - 1
    grid = (ncol, triton.cdiv(plan["max_runs_col"], block_r))
    cols_kernel[grid](
        depth,
        feat,
        out,
        partial,
        plan["col_off"],
        plan["run_dh"],
        plan["run_mask"],
        plan["run_dest"],
        D,
        H,
        W,
        C,
        plan["nchunk"],
        scale,
        BLOCK_R=block_r,
        HB=hb,
        CB=cb,
        MODE=mode,
        num_warps=num_warps,
    )
    ncell = B * Z * Y * X
    cells_kernel[(triton.cdiv(ncell, block_n),)](
        out, partial, plan["cell_start"], plan["cell_len"], ncell, C, BLOCK_N=block_n, CB=cb, num_warps=nw2
    )
    return out.permute(0, 4, 1, 2, 3)


def run_atomic(depth, feat, plan, out_shape, block_r=32, num_warps=4):
    b, n, D, H, W = depth.shape
    B, Z, Y, X, C = out_shape
    out = torch.zeros((B, Z, Y, X, C), dtype=torch.float32, device=depth.device)
    hb = max(16, min(32, triton.next_power_of_2(H)))
    cb = max(16, triton.next_power_of_2(C))
    ncol = plan["col_off"].numel() - 1
    grid = (ncol, triton.cdiv(plan["max_runs_col"], block_r))
    atomic_kernel[grid](
        depth,
        feat,
        out,
        plan["col_off"],
        plan["run_dh"],
        plan["run_mask"],
        plan["run_cell"],
        D,
        H,
        W,
        C,
        plan["nchunk"],
        BLOCK_R=block_r,
        HB=hb,
        CB=cb,
        num_warps=num_warps,
    )
    return out.permute(0, 4, 1, 2, 3)


def bench(fn):
    return triton.testing.do_bench_cudagraph(fn, rep=40)


def quantized(depth, feat, ranks_and_shape):
    """int8 depth and features with per-tensor scales, and bev_pool_v2's reference on their dequantized values."""
    sd, sf = float(depth.abs().max() / 127), float(feat.abs().max() / 127)
    d8 = (depth / sd).round().clamp(-127, 127).to(torch.int8)
    f8 = (feat / sf).round().clamp(-127, 127).to(torch.int8)
    return d8, f8, sd, sf, bev_pool_v2_reference(d8.float() * sd, f8.float() * sf, *ranks_and_shape)


def main():
    res = {}
    x = torch.empty(2**28, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    copy_ms = bench(lambda: y.copy_(x))
    res["copy_GBps"] = 2 * x.numel() * 4 / copy_ms / 1e6
    del x, y
    for variant in ("bevdet", "bevfusion"):
        case = bev_pool_case(variant, device="cuda")
        depth, feat, rd, rf, rb, st, ln, shape = case.args
        ncell = shape[0] * shape[1] * shape[2] * shape[3]
        t0 = time.perf_counter()
        plan = plan_from_ranks(rd, rf, rb, tuple(depth.shape), ncell)
        torch.cuda.synchronize()
        plan_s = time.perf_counter() - t0
        # run_cell for atomics
        ref = bev_pool_v2_reference(*case.args)
        row = dict(
            runs=plan["runs"],
            partial=plan["n_partial"],
            max_runs_col=plan["max_runs_col"],
            plan_s=plan_s,
            bytes_case=case.info["bytes_fp32"],
        )
        row["v2_ms"] = bench(lambda: bev_pool_v2_cuda(*case.args))
        for br, nw in ((16, 4), (32, 4), (64, 4), (32, 8), (64, 8)):
            for bn, nw2 in ((4, 2), (8, 4), (16, 4)):
                out = run_cols(depth, feat, plan, shape, block_r=br, num_warps=nw, block_n=bn, nw2=nw2)
                err = float((out - ref).abs().max() / ref.abs().max())
                ms = bench(
                    lambda: run_cols(depth, feat, plan, shape, block_r=br, num_warps=nw, block_n=bn, nw2=nw2)
                )
                row[f"cols_r{br}_w{nw}_n{bn}_w{nw2}"] = (ms, err)
        # fp16 and fp16-acc and int8
        d16, f16 = depth.half(), feat.half()
        ref16 = bev_pool_v2_reference(d16.float(), f16.float(), *case.args[2:])
        for mode in (1, 2):
            out = run_cols(d16, f16, plan, shape, mode=mode, out_dtype=torch.float16)
            row[f"mode{mode}"] = (
                bench(lambda: run_cols(d16, f16, plan, shape, mode=mode, out_dtype=torch.float16)),
                float((out.float() - ref16).abs().max() / ref16.abs().max()),
            )
        d8, f8, sd, sf, ref8 = quantized(depth, feat, case.args[2:])
        out = run_cols(d8, f8, plan, shape, mode=3, scale=sd * sf, out_dtype=torch.float16)
        row["mode3"] = (
            bench(lambda: run_cols(d8, f8, plan, shape, mode=3, scale=sd * sf, out_dtype=torch.float16)),
            float((out.float() - ref8).abs().max() / ref8.abs().max()),
        )
        # atomic variant
        for br in (16, 32, 64):
            out = run_atomic(depth, feat, plan, shape, block_r=br)
            row[f"atomic_r{br}"] = (
                bench(lambda: run_atomic(depth, feat, plan, shape, block_r=br)),
                float((out - ref).abs().max() / ref.abs().max()),
            )
        res[variant] = row
        # copy of the same bytes
        nb = case.info["bytes_fp32"] // 8
        x = torch.empty(nb, dtype=torch.float32, device="cuda")
        y = torch.empty_like(x)
        row["same_copy_GBps"] = 2 * nb * 4 / bench(lambda: y.copy_(x)) / 1e6
        print(variant, json.dumps(row, indent=0), flush=True)
    json.dump(res, open(sys.argv[1] if len(sys.argv) > 1 else "/dev/null", "w"), indent=1)


if __name__ == "__main__":
    main()
