"""Session 7 prototype 2 of bev_pool_columns (NOTES-ops run 15): memset + atomics for every run vs stores for runs
that alone own their cell + atomics for the rest (zeroing only the other cells), fp32 ieee / tf32x3 products,
fp16 / int8, and the zero / pool split. Run on a GPU: ``python3 benchmarks/bev_pool_columns_proto2.py OUT.json``.
"""
# ruff: noqa: B023  (every closure is timed inside the loop iteration that defines it)

import json
import sys

import torch
import triton
import triton.language as tl

sys.path.insert(0, "benchmarks")
from bev_pool_columns_proto1 import bench, column_operands, plan_from_ranks, quantized, run_cols
from bevdeploy.plugins.trt_ops.bev_pool_columns.kernels import product
from bevdeploy.plugins.trt_ops.bev_pool_v2.kernels import bev_pool_v2_cuda
from bevdeploy.plugins.trt_ops.bev_pool_v2.reference import bev_pool_v2_reference
from ops_cases import bev_pool_case


@triton.jit
def zero_kernel(out, cell_len, NCELL, C, BLOCK_N: tl.constexpr, CB: tl.constexpr):
    cells = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    ln = tl.load(cell_len + cells, mask=cells < NCELL, other=-1)
    c = tl.arange(0, CB)
    z = tl.zeros((BLOCK_N, CB), dtype=out.dtype.element_ty)
    tl.store(
        out + cells[:, None].to(tl.int64) * C + c[None, :], z, mask=(ln[:, None] != -1) & (c[None, :] < C)
    )


@triton.jit
def col_kernel(
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
    out_scale,
    BLOCK_R: tl.constexpr,
    HB: tl.constexpr,
    CB: tl.constexpr,
    MODE: tl.constexpr,
    HYBRID: tl.constexpr,
):
    col = tl.program_id(0)
    r0 = tl.load(col_off + col) + tl.program_id(1) * BLOCK_R
    r1 = tl.load(col_off + col + 1)
    if r0 < r1:
        r, rm, c, a, f = column_operands(
            depth, feat, col, r0, r1, run_dh, run_mask, D, H, W, C, NCHUNK, BLOCK_R, HB, CB
        )
        if MODE == 4:
            p = tl.dot(a, f, input_precision="tf32x3")
        else:
            p = product(a, f, out_scale, MODE)
        p = p.to(out.dtype.element_ty)
        cell = tl.load(run_cell + r, mask=rm, other=0)
        ptr = out + cell[:, None].to(tl.int64) * C + c[None, :]
        ok = rm[:, None] & (c[None, :] < C)
        if HYBRID:
            single = tl.load(run_single + r, mask=rm, other=0) != 0
            tl.store(ptr, p, mask=ok & single[:, None])
            tl.atomic_add(ptr, p, mask=ok & ~single[:, None], sem="relaxed")
        else:
            tl.atomic_add(ptr, p, mask=ok, sem="relaxed")


def run(
    depth,
    feat,
    plan,
    shape,
    mode=0,
    scale=1.0,
    hybrid=False,
    block_r=32,
    num_warps=4,
    out_dtype=torch.float32,
    parts=("zero", "pool"),
):
    b, n, D, H, W = depth.shape
    B, Z, Y, X, C = shape
    ncell = B * Z * Y * X
    hb = max(32 if mode == 3 else 16, min(32, triton.next_power_of_2(H)))
    cb = max(16, triton.next_power_of_2(C))
    if "zero" in parts:
        if hybrid:
            out = torch.empty((B, Z, Y, X, C), dtype=out_dtype, device=depth.device)
            zero_kernel[(triton.cdiv(ncell, 16),)](
                out, plan["cell_len"], ncell, C, BLOCK_N=16, CB=cb, num_warps=4
            )
        else:
            out = torch.zeros((B, Z, Y, X, C), dtype=out_dtype, device=depth.device)
    else:
        out = plan["_out"]
    if "pool" in parts:
        ncol = plan["col_off"].numel() - 1
        col_kernel[(ncol, triton.cdiv(plan["max_runs_col"], block_r))](
            depth,
            feat,
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
            scale,
            BLOCK_R=block_r,
            HB=hb,
            CB=cb,
            MODE=mode,
            HYBRID=hybrid,
            num_warps=num_warps,
        )
    return out.permute(0, 4, 1, 2, 3)


res = {}
for variant in ("bevdet", "bevfusion"):
    case = bev_pool_case(variant, device="cuda")
    depth, feat, rd, rf, rb, st, ln, shape = case.args
    ncell = shape[0] * shape[1] * shape[2] * shape[3]
    plan = plan_from_ranks(rd, rf, rb, tuple(depth.shape), ncell)
    plan["run_single"] = (plan["run_dest"] >= 0).to(torch.int8)
    row = {}
    ref = bev_pool_v2_reference(*case.args)
    row["v2_fp32"] = (bench(lambda: bev_pool_v2_cuda(*case.args)), 0.0)
    d16, f16 = depth.half(), feat.half()
    ref16 = bev_pool_v2_reference(d16.float(), f16.float(), *case.args[2:])
    d8, f8, sd, sf, ref8 = quantized(depth, feat, case.args[2:])
    inputs = {
        0: (depth, feat, ref, torch.float32),
        4: (depth, feat, ref, torch.float32),
        1: (d16, f16, ref16, torch.float16),
        2: (d16, f16, ref16, torch.float16),
        3: (d8, f8, ref8, torch.float16),
    }
    for mode, (dd, ff, rr, odt) in inputs.items():
        for hybrid in (False, True):
            for br, nw in ((16, 4), (32, 4), (64, 4)):
                kw = dict(mode=mode, scale=sd * sf, hybrid=hybrid, block_r=br, num_warps=nw, out_dtype=odt)
                try:
                    out = run(dd, ff, plan, shape, **kw)
                    err = float((out.float() - rr).abs().max() / rr.abs().max())
                    row[f"m{mode}_h{int(hybrid)}_r{br}"] = (
                        bench(lambda: run(dd, ff, plan, shape, **kw)),
                        err,
                    )
                except Exception as e:
                    row[f"m{mode}_h{int(hybrid)}_r{br}"] = (str(e)[-200:], None)
    # breakdown for fp32 tf32x3 r32: zero only / pool only
    for hybrid in (False, True):
        kw = dict(mode=4, hybrid=hybrid, block_r=32)
        plan["_out"] = run(depth, feat, plan, shape, **kw).permute(0, 2, 3, 4, 1)
        row[f"zero_only_h{int(hybrid)}"] = (
            bench(lambda: run(depth, feat, plan, shape, parts=("zero",), **kw)),
            0,
        )
        row[f"pool_only_h{int(hybrid)}"] = (
            bench(lambda: run(depth, feat, plan, shape, parts=("pool",), **kw)),
            0,
        )
    for _mode, odt, dd, ff in ((1, torch.float16, d16, f16),):
        row["twopass_fp16"] = (bench(lambda: run_cols(dd, ff, plan, shape, mode=1, out_dtype=odt)), 0)
    x = torch.empty(2**28, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    row["copy1g_GBps"] = 2 * x.numel() * 4 / bench(lambda x=x, y=y: y.copy_(x)) / 1e6
    del x, y
    res[variant] = row
    print(
        variant,
        {
            k: (round(v[0] * 1000, 1), None if v[1] is None else f"{v[1]:.1e}")
            if isinstance(v, tuple) and not isinstance(v[0], str)
            else v
            for k, v in row.items()
        },
        flush=True,
    )
json.dump(res, open(sys.argv[1], "w"), indent=1)
