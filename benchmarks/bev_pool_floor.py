"""How fast could any bev_pool_v2 kernel be at the anchors? The interval contract's gather floor (GPU study).

    python3 benchmarks/bev_pool_floor.py [--out FILE.json] [--rep-ms 40]

BEVDet's interval contract (ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths) has each
point gather its pixel's whole feature row: at BEVFusion's anchor 1.83 M rows of 80 channels, 587 MB at fp32,
for 78 MB of inputs and output. Nsight Compute (NOTES-ops item 42) showed those rows crossing L2 at ~5.1 TB/s in
the committed kernel, without saying how far that is from what the L2 can deliver. This script measures it.

*Gather floor*: a kernel that does only what every interval kernel must do per point - load its two ranks, its
depth and its feature row, and multiply-accumulate - with perfect balance (each program a block of consecutive
points, no interval boundaries, no per-cell stores: the block sums go to a small sink that stays in L2). Timed
(CUDA-graph median, like benchmarks/ops.py) for 32 - 512 points per program on 1 - 8 warps, channels as one
padded tile or split (80 = 64 + 16); each is checked against torch first, and the fastest is the floor. The
points are walked in the order an interval list puts them:

- ``prepared``: bev_pool_v2_prepare's interval order (long intervals first), the committed kernel's;
- ``ray``: intervals by camera ray (camera, image column, depth bin, row), the order in which consecutive
  intervals share the most feature rows (bev_pool_order.py's "ray");
- ``random``: the points shuffled, every gather on its own (what L2 alone delivers).

*Fill floor*: writing the output once (an elementwise fill of the (B, Z, Y, X, C) grid), which any kernel
must also do; the floor takes the larger of the two, as if they overlapped perfectly.

*L2 read rate*: a buffer half the L2's size read contiguously, 16 times per launch, CUDA-graph replayed so it
stays in L2: what the L2 delivers when every byte of a sector is used. The "L2 TB/s at 60%" column divides the
32-byte sectors the points' rows span by the 60% time: above the L2 read rate, no kernel that gathers each
point's row through L2 can reach 60%, whatever it does (L1 hits aside).

Against each it prints the committed bev_pool_v2 kernel timed in the same run, the time that 60% of the 1 GiB
copy bandwidth asks for (ops.py's bytes: inputs read once, output written once), and the best "% copy" a kernel
at the floor could show. fp16x2 moves fp16's bytes, so fp16 stands for both.
"""

import json
import sys
from functools import partial
from itertools import product
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops  # noqa: E402  (sets up the package mapping, like ops.py itself)
import ops_cases  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from bev_pool_order import ray_key  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
# (points per program, warps), at most 128 feature values per thread; each with both tilings where they differ
SHAPES = [(block_r, warps) for block_r in (32, 64, 128, 256, 512) for warps in (1, 2, 4, 8)]
MAX_PER_THREAD = 128
SINK_ROWS = 2048  # block sums land on these rows in turn: 0.5 - 1 MB that stays in L2


@triton.jit
def _tile_sum(d, feat_ptr, rf, pm, C, c, INT: tl.constexpr):
    """Sum over the block's points of depth * feat[rf, c] (channels c of one tile)."""
    f = tl.load(feat_ptr + rf[:, None].to(tl.int64) * C + c[None, :], mask=pm[:, None] & (c[None, :] < C), other=0)
    if INT:
        return tl.sum(d[:, None].to(tl.int32) * f.to(tl.int32), axis=0).to(tl.float32)
    return tl.sum(d[:, None].to(tl.float32) * f.to(tl.float32), axis=0)


@triton.jit
def _gather_floor_kernel(depth_ptr, feat_ptr, rd_ptr, rf_ptr, sink_ptr, R, C, SINK, BLOCK_R: tl.constexpr,
                         C1: tl.constexpr, C2: tl.constexpr, INT: tl.constexpr):
    """Points pid * BLOCK_R ... : sum of depth[rd] * feat[rf, :] over the block, stored at sink row pid % SINK
    (channels as one tile of C1, or C1 + C2 where C2 > 0: 80 = 64 + 16 without padding lanes)."""
    pid = tl.program_id(0)
    r = pid * BLOCK_R + tl.arange(0, BLOCK_R)
    pm = r < R
    rd = tl.load(rd_ptr + r, mask=pm, other=0)
    rf = tl.load(rf_ptr + r, mask=pm, other=0)
    d = tl.load(depth_ptr + rd, mask=pm, other=0)
    c = tl.arange(0, C1)
    row = sink_ptr + (pid % SINK) * (C1 + C2)
    tl.store(row + c, _tile_sum(d, feat_ptr, rf, pm, C, c, INT))
    if C2 > 0:
        c2 = C1 + tl.arange(0, C2)
        tl.store(row + c2, _tile_sum(d, feat_ptr, rf, pm, C, c2, INT))


@triton.jit
def _read_kernel(src_ptr, sink_ptr, CHUNKS, SINK, BLOCK: tl.constexpr):
    """Sum of chunk pid % CHUNKS (BLOCK contiguous fp32 values), stored at sink row pid % SINK."""
    pid = tl.program_id(0)
    x = tl.load(src_ptr + (pid % CHUNKS).to(tl.int64) * BLOCK + tl.arange(0, BLOCK))
    tl.store(sink_ptr + pid % SINK, tl.sum(x, axis=0))


def l2_read_tbps(rep_ms: int, passes: int = 16) -> dict:
    """Contiguous reads of a buffer half the L2's size, read ``passes`` times by one launch (so that launch and
    ramp-up do not count) and CUDA-graph replayed so that it stays in L2: the best TB/s over a few block sizes
    (what the L2 delivers to the SMs when every byte of a sector is used)."""
    n = torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size // 8  # fp32 elements
    best = {}
    for block in (2048, 4096, 8192):
        for warps in (4, 8):
            m = n // block * block
            src = torch.randn(m, device="cuda")
            sink = torch.empty(SINK_ROWS, device="cuda")
            ms = ops.graph_ms(partial(_read_kernel[(passes * (m // block),)], src, sink, m // block, SINK_ROWS,
                                      BLOCK=block, num_warps=warps), rep_ms)
            tbps = 4 * m * passes / ms / 1e9
            if tbps > best.get("tbps", 0.0):
                best = {"tbps": tbps, "bytes": 4 * m, "passes": passes, "block": block, "warps": warps, "ms": ms}
    return best


def row_sectors(rf: torch.Tensor, row_bytes: int) -> int:
    """32-byte L2 sectors the points' feature rows span: the least L2 traffic of the gathers (depth not counted)."""
    first = rf.long() * row_bytes
    return int(((first + row_bytes - 1) // 32 - first // 32 + 1).sum())


def tilings(c: int) -> dict[str, tuple[int, int]]:
    """(C1, C2) channel tilings to try (triton_util.channel_tiles, all channels in one program): one padded
    power-of-two tile, and where that pads, the largest power of two below C plus a tile for the rest."""
    from bevdeploy.plugins.trt_ops.triton_util import channel_tiles

    out = {"padded": channel_tiles(c, c, False)}
    split = channel_tiles(c, c, True)
    if sum(split) < sum(out["padded"]):
        out["split"] = split
    return out


def gather_floor(depth, feat, rd, rf, block_r, warps, tiles, sink_rows=SINK_ROWS):
    """Launch the gather floor once; returns the sink (sink_rows x (C1 + C2), fp32)."""
    c1, c2 = tiles
    sink = torch.empty((sink_rows, c1 + c2), dtype=torch.float32, device=feat.device)
    grid = (triton.cdiv(rd.numel(), block_r),)
    _gather_floor_kernel[grid](depth, feat, rd, rf, sink, rd.numel(), feat.shape[-1], sink_rows, BLOCK_R=block_r,
                               C1=c1, C2=c2, INT=feat.dtype == torch.int8, num_warps=warps)
    return sink


def point_products(depth, feat, rd, rf) -> torch.Tensor:
    """Each point's depth * feature row in float64 (R x C): what check_floor sums block by block."""
    d = depth.reshape(-1)[rd.long()].double()
    return d[:, None] * feat.reshape(-1, feat.shape[-1])[rf.long()].double()


def check_floor(depth, feat, rd, rf, products, block_r, warps, tiles) -> float:
    """Relative error of the floor kernel's block sums (one sink row per block) against ``products``
    (point_products of the same points) summed per block: the kernel gathers the rows it is timed on."""
    blocks, c = triton.cdiv(rd.numel(), block_r), feat.shape[-1]
    sink = gather_floor(depth, feat, rd, rf, block_r, warps, tiles, sink_rows=blocks)[:, :c]
    pad = blocks * block_r - rd.numel()
    want = torch.nn.functional.pad(products, (0, 0, 0, pad)).reshape(blocks, block_r, c).sum(1)
    return float((sink.double() - want).norm() / want.norm().clamp_min(1e-30))


def point_orders(case, seed: int = 0) -> dict[str, torch.Tensor]:
    """Permutations of the points (indices into the rank arrays) that walk them in each interval order."""
    from bevdeploy.plugins.trt_ops.bev_pool_v2.reference import interval_point_index

    depth, _feat, rd, _rf, _rb, starts, lengths, _ = case.args
    starts, lengths = starts.cpu(), lengths.cpu()
    g = torch.Generator(device="cpu").manual_seed(seed)
    ray = torch.argsort(ray_key(rd.cpu(), starts, depth.shape), stable=True)
    return {"prepared": interval_point_index(starts, lengths), "ray": interval_point_index(starts[ray], lengths[ray]),
            "random": torch.randperm(rd.numel(), generator=g)}


def main(argv=None) -> int:
    opts = ops.study_options(__doc__, "bev_pool_floor.py", argv)
    if opts is None:
        return 2
    copy = ops.copy_bandwidth(opts.rep_ms)
    kernel = ops_cases.kernel_for("bev_pool_v2")
    l2 = l2_read_tbps(opts.rep_ms)
    result = {"device": torch.cuda.get_device_name(), "copy_gbps": copy["gbps"], "l2_read": l2, "rows": []}
    print(json.dumps({"device": result["device"], "copy_gbps": round(copy["gbps"]), "l2_read": l2}), flush=True)
    ok = True
    for rig in ("bevdet", "bevfusion"):
        case = ops_cases.bev_pool_case(rig, device="cuda")
        perms = {name: p.cuda() for name, p in point_orders(case).items()}
        out_shape, scales = case.args[-1], case.scales
        for precision in PRECISIONS:
            kargs, _ = ops_cases.variant_inputs(case, precision)
            depth, feat, rd, rf = kargs[:4]
            out = kernel(*kargs, precision=precision, scales=scales)
            moved = ops._tensors_bytes(kargs) + out.numel() * out.element_size()
            row = {"rig": rig, "precision": precision, "bytes": moved, "ranks": rd.numel(),
                   "row_bytes": feat.shape[-1] * feat.element_size(),
                   "kernel_ms": ops.graph_ms(partial(kernel, *kargs, precision=precision, scales=scales),
                                             opts.rep_ms),
                   "target_ms": moved / (0.6 * copy["gbps"]) / 1e6,
                   "row_sectors": row_sectors(rf, feat.shape[-1] * feat.element_size())}
            row["target_l2_tbps"] = 32 * row["row_sectors"] / row["target_ms"] / 1e9
            fill = torch.empty(out_shape, dtype=out.dtype, device="cuda")
            row["fill_ms"] = ops.graph_ms(partial(fill.fill_, 1.0), opts.rep_ms)
            for name, perm in perms.items():
                prd, prf = rd[perm].contiguous(), rf[perm].contiguous()
                products = point_products(depth, feat, prd, prf)
                times, errors = {}, []
                for (block_r, warps), (tiling, tiles) in product(SHAPES, tilings(feat.shape[-1]).items()):
                    if block_r * tiles[0] > MAX_PER_THREAD * 32 * warps:
                        continue
                    errors.append(check_floor(depth, feat, prd, prf, products, block_r, warps, tiles))
                    times[f"{block_r}x{warps} {tiling}"] = ops.graph_ms(
                        partial(gather_floor, depth, feat, prd, prf, block_r, warps, tiles), opts.rep_ms)
                best = min(times, key=times.get)
                floor = max(times[best], row["fill_ms"])
                row[name] = {"gather_ms": times[best], "shape": best, "max_rel_err": max(errors),
                             "gather_tbps": rd.numel() * row["row_bytes"] / times[best] / 1e9,
                             "floor_ms": floor, "max_pct_copy": 100 * moved / floor / 1e6 / copy["gbps"],
                             "all_ms": times}
                ok &= max(errors) < 1e-4
                del products
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
        del case, perms
        torch.cuda.empty_cache()
    print(markdown(result))
    if opts.out:
        opts.out.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


def markdown(result: dict) -> str:
    l2 = result["l2_read"]
    lines = [f"# bev_pool_v2's gather floor on {result['device']}", "",
             f"1 GiB copy {result['copy_gbps']:.0f} GB/s; contiguous reads from L2 {l2['tbps']:.2f} TB/s "
             f"({l2['bytes'] / 2**20:.0f} MiB buffer read {l2['passes']} times by one launch, {l2['block']} fp32 per "
             f"program, {l2['warps']} warps). "
             "gather TB/s: feature-row bytes per second. L2 TB/s at 60%: the rows' 32-byte sectors over the 60% "
             "time, what the L2 would have to deliver for the gathers alone.", "",
             "| rig | precision | kernel ms | 60% of copy ms | L2 TB/s at 60% | fill ms | "
             "gather ms prepared / ray / random | gather TB/s prepared / ray / random | floor ms (best order) | "
             "kernel / floor | best % copy at floor |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for r in result["rows"]:
        orders = ("prepared", "ray", "random")
        floor = min(r[o]["floor_ms"] for o in orders)
        lines.append(
            f"| {r['rig']} | {r['precision']} | {r['kernel_ms']:.4f} | {r['target_ms']:.4f} | "
            f"{r['target_l2_tbps']:.1f} | {r['fill_ms']:.4f} | "
            + " / ".join(f"{r[o]['gather_ms']:.4f}" for o in orders) + " | "
            + " / ".join(f"{r[o]['gather_tbps']:.2f}" for o in orders)
            + f" | {floor:.4f} | {r['kernel_ms'] / floor:.2f} | "
            f"{max(r[o]['max_pct_copy'] for o in orders):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
