"""benchmarks/rotate_angles.py's argument checks: bad input is one line on stderr and exit code 2 (no GPU needed)."""

import pytest
import torch
from bench_tools import assert_needs_gpu, assert_refused, run_tool


def _run(*args: str):
    return run_tool("rotate_angles.py", *args)


@pytest.mark.parametrize("configs", ["not json", '{"fp16": {}}', '[["fp64", {}]]', '[["fp16", 3]]', '[["fp16"]]'])
def test_bad_configs_are_one_line_and_exit_2(configs):
    out = _run("--configs", configs)
    assert_refused(out, "--configs must be a JSON list")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_says_so():
    out = _run()
    assert_needs_gpu(out, "rotate_angles.py")
