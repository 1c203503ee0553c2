"""Does the order of bev_pool_v2's intervals change the kernel's speed? (GPU study, one command)

    python3 benchmarks/bev_pool_order.py [--out FILE.json] [--rep-ms 40]

The op is indifferent to interval order (each interval writes its own cell), so a prepare step may list them
any way it likes. BEVDet lists them by cell; bev_pool_v2_prepare since session 17 lists the intervals longer than
32 points (one step of the kernel's 32 lanes) first, each group by cell, because the GPU starts programs in index
order and a multi-step interval started last is the tail. A pixel's feature row serves every depth bin of its camera ray,
so intervals listed along rays read mostly the same rows: at BEVFusion's geometry, 8 consecutive intervals
read 20% as many distinct rows as they have points in ray order against 85% in cell order (``distinct_rows``
below prints it). This script times the default kernel on the anchors' intervals in several orders:
"cell" (BEVDet), "prepared" (bev_pool_v2_prepare's, long intervals first), "long<T>" (longer than T points
first, then the rest, each by cell), "length" (longest first), "ray" (camera, image column, depth bin, image row
of each interval's first point), "random", and "raygroups<G>" (runs of G ray-consecutive intervals, the runs
shuffled). Each order is checked against the reference before it is timed (CUDA-graph median, like
benchmarks/ops.py). Results and their reading: benchmarks/NOTES-ops.md, run 14 and item 28.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops  # noqa: E402  (sets up the package mapping, like ops.py itself)
import ops_cases  # noqa: E402
import torch  # noqa: E402


def ray_key(ranks_depth: torch.Tensor, starts: torch.Tensor, depth_shape) -> torch.Tensor:
    """(camera, column, depth bin, row) of each interval's first point as one sortable integer."""
    _, n, d, h, w = depth_shape
    first = ranks_depth[starts.long()].long()
    cam, rest = first // (d * h * w), first % (d * h * w)
    return ((cam * w + rest % w) * d + rest // (h * w)) * h + (rest // w) % h


def orders(case, seed: int = 0) -> dict[str, torch.Tensor]:
    """Interval permutations of the case's (prepared) intervals to compare, each a LongTensor over range(K)."""
    depth, _feat, rd, _rf, rb, starts, lengths, _ = case.args
    k = starts.numel()
    g = torch.Generator(device="cpu").manual_seed(seed)
    cell = torch.argsort(rb[starts.long()].cpu(), stable=True)
    ray = torch.argsort(ray_key(rd, starts, depth.shape).cpu(), stable=True)
    out = {"cell": cell, "prepared": torch.arange(k), "ray": ray, "random": torch.randperm(k, generator=g)}
    by_cell = lengths.cpu()[cell]
    for t in (32, 64, 128):
        out[f"long{t}"] = torch.cat([cell[by_cell > t], cell[by_cell <= t]])
    out["length"] = cell[torch.argsort(by_cell, descending=True, stable=True)]
    for group in (2, 4, 16):
        runs = torch.randperm(-(-k // group), generator=g)
        idx = (runs[:, None] * group + torch.arange(group)[None]).reshape(-1)
        out[f"raygroups{group}"] = ray[idx[idx < k]]
    return out


def distinct_rows(case, order: torch.Tensor, group: int = 8) -> float:
    """Distinct feature rows read by each run of ``group`` consecutive intervals, summed, per point."""
    _, _, _, rf, _, starts, lengths, _ = case.args
    rf, starts, lengths = (t.long().cpu() for t in (rf, starts, lengths))
    total = 0
    for i in range(0, order.numel(), group):
        ids = order[i:i + group]
        total += torch.cat([rf[starts[j]:starts[j] + lengths[j]] for j in ids.tolist()]).unique().numel()
    return total / rf.numel()


def main(argv=None) -> int:
    opts = ops.study_options(__doc__, "bev_pool_order.py", argv)
    if opts is None:
        return 2
    from triton.testing import do_bench_cudagraph

    kernel = ops_cases.kernel_for("bev_pool_v2")
    reference, _ = ops_cases.reference_for("bev_pool_v2")
    rows = []
    for rig in ("bevfusion", "bevdet"):
        case = ops_cases.bev_pool_case(rig, device="cuda")
        for name, perm in orders(case).items():
            perm = perm.cuda()
            args = list(case.args)
            args[5], args[6] = args[5][perm].contiguous(), args[6][perm].contiguous()
            reordered = ops_cases.Case(case.name, tuple(args), scales=case.scales, half_args=case.half_args,
                                       int8_args=case.int8_args)
            for precision in ("fp32", "int8"):
                kargs, rargs = ops_cases.variant_inputs(reordered, precision)
                err = ops_cases.rel_error(kernel(*kargs, precision=precision, scales=case.scales), reference(*rargs))
                ms = do_bench_cudagraph(lambda: kernel(*kargs, precision=precision, scales=case.scales),  # noqa: B023
                                        rep=opts.rep_ms, return_mode="median")
                row = {"rig": rig, "order": name, "precision": precision, "ms": round(float(ms), 4),
                       "rel_err": err, "passed": err <= ops_cases.TOLERANCE[precision]}
                if precision == "fp32":
                    row["distinct_rows_per_point_8"] = round(distinct_rows(case, perm.cpu()), 3)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if opts.out:
        opts.out.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
