"""Session 7 prototype 3 of bev_pool_columns (NOTES-ops run 15): where the pooling pass's time goes (no depth
gather, depth transposed to (N, W, D, H), plain stores only, no output). Run on a GPU:
``python3 benchmarks/bev_pool_columns_proto3.py OUT.json``.
"""
# ruff: noqa: B023  (every closure is timed inside the loop iteration that defines it)

import json
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, "benchmarks")
from bev_pool_columns_proto1 import bench, column_operands, plan_from_ranks
from bevdeploy.plugins.trt_ops.bev_pool_columns.kernels import product
from ops_cases import bev_pool_case


@triton.jit
def k(
    depth,
    feat,
    out,
    col_off,
    run_dh,
    run_mask,
    run_cell,
    run_single,
    D,
    H,
    W,
    C,
    NCHUNK,
    BLOCK_R: tl.constexpr,
    HB: tl.constexpr,
    CB: tl.constexpr,
    MODE: tl.constexpr,
    VAR: tl.constexpr,
    GATHER: tl.constexpr,
):
    col = tl.program_id(0)
    r0 = tl.load(col_off + col) + tl.program_id(1) * BLOCK_R
    r1 = tl.load(col_off + col + 1)
    if r0 < r1:
        # GATHER (= VAR for VAR 0-2) 1: no depth gather; 2: depth transposed to (N, W, D, H)
        r, rm, c, a, f = column_operands(
            depth, feat, col, r0, r1, run_dh, run_mask, D, H, W, C, NCHUNK, BLOCK_R, HB, CB, GATHER
        )
        p = product(a, f, 1.0, MODE)
        p = p.to(out.dtype.element_ty)
        cell = tl.load(run_cell + r, mask=rm, other=0)
        ptr = out + cell[:, None].to(tl.int64) * C + c[None, :]
        ok = rm[:, None] & (c[None, :] < C)
        single = tl.load(run_single + r, mask=rm, other=0) != 0
        if VAR == 3:  # stores only (wrong sums in multi-run cells; timing only)
            tl.store(ptr, p, mask=ok)
        elif VAR == 4:  # no output at all but keep p alive
            tl.store(ptr, p, mask=ok & (p == 12345.0))
        else:
            tl.store(ptr, p, mask=ok & single[:, None])
            tl.atomic_add(ptr, p, mask=ok & ~single[:, None], sem="relaxed")


res = {}
for variant in ("bevdet", "bevfusion"):
    case = bev_pool_case(variant, device="cuda")
    depth, feat, rd, rf, rb, st, ln, shape = case.args
    B, Z, Y, X, C = shape
    ncell = B * Z * Y * X
    plan = plan_from_ranks(rd, rf, rb, tuple(depth.shape), ncell)
    plan["run_single"] = (plan["run_dest"] >= 0).to(torch.int8)
    _, n, D, H, W = depth.shape
    row = {}
    for mode, dt in ((0, torch.float32), (1, torch.float16)):
        dd, ff = depth.to(dt), feat.to(dt)
        dT = dd.permute(0, 1, 4, 2, 3).contiguous()
        out = torch.zeros((B, Z, Y, X, C), dtype=dt, device="cuda")
        cb = max(16, triton.next_power_of_2(C))
        hb = max(16, min(32, triton.next_power_of_2(H)))
        for var in (0, 1, 2, 3, 4):
            for br, nw in ((16, 2), (16, 4), (32, 4), (32, 8)):
                src = dT if var == 2 else dd
                ncol = plan["col_off"].numel() - 1

                def fn():
                    return k[(ncol, triton.cdiv(plan["max_runs_col"], br))](
                        src,
                        ff,
                        out,
                        plan["col_off"],
                        plan["run_dh"],
                        plan["run_mask"],
                        plan["run_cell"],
                        plan["run_single"],
                        D,
                        H,
                        W,
                        C,
                        plan["nchunk"],
                        BLOCK_R=br,
                        HB=hb,
                        CB=cb,
                        MODE=mode,
                        VAR=var,
                        GATHER=var if var <= 2 else 0,
                        num_warps=nw,
                    )

                fn()
                row[f"m{mode}_v{var}_r{br}_w{nw}"] = round(bench(fn) * 1000, 2)
        row[f"memset_{dt}"] = round(bench(lambda: out.zero_()) * 1000, 2)
    res[variant] = row
    print(variant, row, flush=True)
json.dump(res, open(sys.argv[1], "w"), indent=1)
