"""benchmarks/ops.py's copy and cold-timing helpers and benchmarks/cold_check.py's argument checks (bad input is one
line on stderr and exit code 2). The timers themselves need a GPU: tests/gpu/test_bench_timing_gpu.py."""

import pytest
import torch
from bench_tools import assert_needs_gpu, assert_refused, bench_import, run_tool


def _run(*args: str):
    return run_tool("cold_check.py", *args)


@pytest.fixture(scope="module")
def ops():
    with bench_import("ops") as module:
        yield module


def test_device_copy_reproduces_every_value(ops):
    src = torch.tensor([0.0, -0.0, 1.5, -2.25, float("inf"), -float("inf"), 1e-40, 3.4e38])
    dst = torch.full_like(src, 7.0)
    ops.device_copy(src, dst)
    assert torch.equal(dst.view(torch.int32), src.view(torch.int32))  # bit for bit, -0.0 and the subnormal too


def test_clone_tensors_copies_tensors_and_keeps_the_rest(ops):
    a = torch.arange(12.0).reshape(3, 4).t()  # non-contiguous: the copy keeps its strides
    b, n, s = ops.clone_tensors((a, 5, "x"))
    assert torch.equal(b, a) and b.stride() == a.stride() and b.data_ptr() != a.data_ptr()
    assert (n, s) == (5, "x")


def test_kernel_calls_run_call_0_on_the_inputs_and_the_others_on_copies(ops):
    seen = []
    x0 = torch.ones(4)
    make_call = ops.kernel_calls(lambda x, k, scale: seen.append((x.data_ptr(), k, scale)), (x0, 3), scale=2.0)
    for i in range(3):
        make_call(i)()
    assert seen[0] == (x0.data_ptr(), 3, 2.0)
    assert len({ptr for ptr, _, _ in seen}) == 3  # three different inputs
    assert all(rest == [3, 2.0] for _, *rest in seen)


@pytest.mark.parametrize("sizes", ["x", "1,-2", "0"])
def test_bad_sizes_are_one_line_and_exit_2(sizes):
    out = _run("--sizes-mb", sizes)
    assert_refused(out, "--sizes-mb must be positive numbers")


def test_nothing_to_time_is_one_line_and_exit_2():
    out = _run("--sizes-mb", "")
    assert_refused(out, "nothing to time")


def test_bad_row_is_one_line_and_exit_2():
    out = _run("--sizes-mb", "", "--rows", "rotate anchor fp64")
    assert_refused(out, "rotate has no precision 'fp64'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_says_so():
    out = _run("--sizes-mb", "6.5")
    assert_needs_gpu(out, "cold_check.py")
