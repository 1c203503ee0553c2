"""benchmarks/ops.py's timers on a CUDA GPU (skipped without one): the cold timer really rotates over enough copies of
the inputs, and the copy it compares with copies."""

import math
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graphs)"),
]

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ops  # noqa: E402


@pytest.mark.parametrize("moved", [1 << 20, 48 << 20, 1 << 30])
def test_rotating_ms_uses_copies_moving_four_l2_between_two_uses(moved):
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    made = []
    n = max(1, moved // 8)

    def make_call(i):
        made.append(i)
        src, dst = torch.randn(n, device="cuda"), torch.empty(n, device="cuda")
        return lambda: ops.device_copy(src, dst)

    ms = ops.rotating_ms(make_call, 8 * n, rep_ms=5)
    k = len(made)
    assert made == list(range(k)) and k >= 2
    assert (k - 1) * 8 * n >= 4 * l2  # the other calls between two uses of one copy
    assert k <= max(2, math.ceil(4 * l2 / (8 * n)) + 1)
    assert ms is not None and ms > 0


def test_device_copy_on_the_gpu_copies():
    src = torch.randn(1 << 20, device="cuda")
    src[:4] = torch.tensor([-0.0, float("inf"), 1e-40, -3.0])
    dst = torch.empty_like(src)
    ops.device_copy(src, dst)
    assert torch.equal(dst.view(torch.int32), src.view(torch.int32))


def test_same_size_copy_is_timed_warm_and_cold():
    row = ops.copy_same_size(24 << 20, rep_ms=5)
    assert row["bytes"] == 24 << 20 and row["ms"] > 0 and row["cold_ms"] > 0
    assert row["gbps"] == pytest.approx(row["bytes"] / row["ms"] / 1e6)


def test_msda_prep_times_the_prep_pass_and_checks_another_version(tmp_path):
    """benchmarks/msda_prep.py with --kernels naming our own kernels.py: every row timed, the two versions' entries
    identical, the pass a part of the op's time."""
    import json
    import subprocess

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "prep.json"
    run = subprocess.run([sys.executable, str(root / "benchmarks/msda_prep.py"), "--rep-ms", "5", "--out", str(out),
                          "--kernels", str(root / "plugins/trt_ops/ms_deform_attn/kernels.py")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {(r["precision"], r["version"], r["round"]) for r in rows} == {
        (p, v, n) for p in ("fp16", "int8") for v in ("ours", "other") for n in (1, 2)}
    assert all(r["identical"] for r in rows if r["version"] == "other")
    assert all(r["ms"] > 0 and r["cold_ms"] > 0 and 0 < r["share_of_op"] < 1 for r in rows)
    fp16, int8 = (next(r for r in rows if r["precision"] == p) for p in ("fp16", "int8"))
    assert fp16["bytes"] == 2 * int8["bytes"]  # the same entries of 2-byte and 1-byte values
