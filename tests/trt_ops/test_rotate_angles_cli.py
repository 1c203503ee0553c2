"""benchmarks/rotate_angles.py's argument checks: bad input is one line on stderr and exit code 2 (no GPU needed)."""

import pytest
import torch
from bench_tools import assert_needs_gpu, assert_refused, run_tool


def _run(*args: str):
    return run_tool("rotate_angles.py", *args)


@pytest.mark.parametrize("configs", ["not json", '{"fp16": {}}', '[["fp64", {}]]', '[["fp16", 3]]', '[["fp16"]]',
                                     '[["fp16:chw4", {}]]', '[["int8:hwc8", {}]]', '[[3, {}]]'])
def test_bad_configs_are_one_line_and_exit_2(configs):
    out = _run("--configs", configs)
    assert_refused(out, "--configs must be a JSON list")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_says_so():
    out = _run()
    assert_needs_gpu(out, "rotate_angles.py")


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU it would time the rows")
def test_a_layout_row_passes_the_checks():
    """"precision:layout" is accepted for the op's layouts (without a GPU it then stops at the GPU check)."""
    out = _run("--configs", '[["fp16:chw32", {}], ["int8:chw4", {"vec_wide_tile_y": 16}]]')
    assert_needs_gpu(out, "rotate_angles.py")
