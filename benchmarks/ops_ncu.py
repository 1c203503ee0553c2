"""Run one op variant at its anchor shape inside a profiler range, for Nsight Compute (one command per variant).

    ncu --clock-control none --profile-from-start off --set detailed \\
        python3 benchmarks/ops_ncu.py ms_deform_attn anchor int8 ['{"corners":4,"lane_bytes":32}']
        python3 benchmarks/ops_ncu.py rotate anchor int8:chw32      (PRECISION:LAYOUT, a vectorized-layout row)

The kernel runs once outside the range (Triton compiles it), then once between cudaProfilerStart and Stop, so
ncu sees exactly one call of the op (every kernel that call launches: e.g. bev_pool's output memset too).
``benchmarks/ops_ncu.sh`` profiles a list of variants and keeps one text report each. Works from a plain
checkout, like benchmarks/ops.py. An optional fourth argument, a JSON object without spaces, overrides the
kernels module's TUNING for this run (a launch configuration of its SWEEP).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops_cases  # noqa: E402

ops_cases.ensure_package()

import torch  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print("usage: ops_ncu.py OP CASE PRECISION[:LAYOUT] [TUNING-JSON]  (e.g. bev_pool_v2 bevfusion fp32 "
              "'{\"ipp\":4}', or grid_sampler 2d int8:chw32)", file=sys.stderr)
        return 2
    op, variant, (precision, _, layout) = argv[0], argv[1], argv[2].partition(":")
    if op not in ops_cases.OPS:
        print(f"unknown op {op!r}; one of {', '.join(ops_cases.OPS)}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("ops_ncu.py needs a CUDA GPU", file=sys.stderr)
        return 2
    case = ops_cases.OPS[op][0](variant, device="cuda")
    kernel = ops_cases.kernel_for(op)
    if len(argv) == 4:
        sys.modules[kernel.__module__].TUNING.update(json.loads(argv[3]))
    kargs, _ = ops_cases.variant_inputs(case, precision)
    extra = {}
    if layout:
        if layout not in case.layouts.get(precision, ()):
            print(f"{op} {precision} has no {layout!r} row; one of {case.layouts.get(precision, ())}", file=sys.stderr)
            return 2
        kargs, extra = ops_cases.to_case_layout(case, kargs, layout), {"layout": layout}
    kernel(*kargs, precision=precision, scales=case.scales, **extra)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    kernel(*kargs, precision=precision, scales=case.scales, **extra)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
