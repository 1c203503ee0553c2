"""Every kernel variant against its reference at the anchors' shapes, on a CUDA GPU (skipped without one).

Same cases and tolerances as benchmarks/ops.py (benchmarks/ops_cases.py): fp32 1e-5 and fp16 3e-3 relative
(REFERENCE.md), fp16x2 1e-2 and int8 3e-3 against the reference on the same fp16-rounded / dequantised
inputs; the int8 error against the fp32 reference on the original inputs is reported by the benchmark.
"""

import functools
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (Triton kernels)"),
]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ops_cases  # noqa: E402

ops_cases.ensure_package()  # a plain checkout on the GPU machine has no install


@functools.cache
def _case(op: str, variant: str):
    return ops_cases.OPS[op][0](variant, device="cuda")


def _params():
    for op, (_build, anchors, _tiny, precisions) in ops_cases.OPS.items():
        layouts = ops_cases.SAMPLER_LAYOUTS if op in ("grid_sampler", "rotate") else {}
        for variant in anchors:
            for precision in precisions:
                for layout in ("linear", *layouts.get(precision, ())):
                    name = f"{op}-{variant}-{precision}" + ("" if layout == "linear" else f"-{layout}")
                    yield pytest.param(op, variant, precision, layout, id=name)


@pytest.mark.parametrize("op,variant,precision,layout", list(_params()))
def test_kernel_matches_reference_at_anchor_shape(op, variant, precision, layout):
    pytest.importorskip("triton")
    case = _case(op, variant)
    kernel = ops_cases.kernel_for(op)
    reference, _ = ops_cases.reference_for(op)
    kargs, rargs = ops_cases.variant_inputs(case, precision)
    junk = torch.full((1 << 26,), float("nan"), device="cuda")  # unwritten outputs would read NaN
    del junk
    if layout == "linear":
        out = kernel(*kargs, precision=precision, scales=case.scales)
    else:  # TensorRT's channel-vectorized formats: physical in and out, compared in the logical layout
        raw = kernel(*ops_cases.to_case_layout(case, kargs, layout), precision=precision, scales=case.scales,
                     layout=layout)
        out = ops_cases.from_case_layout(case, raw, layout, ops_cases.case_channels(case))
    ref = reference(*rargs)
    assert ref.abs().max() > 0
    err = ops_cases.rel_error(out, ref)
    assert err <= ops_cases.TOLERANCE[precision], f"{case.name} {precision}: relative error {err:.2e}"


def test_dispatch_runs_the_kernel_through_the_custom_op():
    """torch.ops.bevdeploy.bev_pool_v2 on CUDA goes through kernels.bev_pool_v2_cuda (fp16 by dtype)."""
    pytest.importorskip("triton")
    pytest.importorskip("bevdeploy.plugins.trt_ops.bev_pool_v2.op")
    case = _case("bev_pool_v2", "bevdet")
    args = list(case.args)
    args[0], args[1] = args[0].half(), args[1].half()
    out = torch.ops.bevdeploy.bev_pool_v2(*args)
    ref = ops_cases.reference_for("bev_pool_v2")[0](args[0].float(), args[1].float(), *args[2:])
    assert out.dtype == torch.float16
    assert ops_cases.rel_error(out, ref) <= ops_cases.TOLERANCE["fp16"]
