"""benchmarks/bev_pool_floor.py, bev_pool_order.py and msda_prep.py (one opening, ops.study_options): without a GPU
one line and exit code 2, before any work."""

import pytest
import torch
from bench_tools import assert_needs_gpu, run_tool

STUDIES = ["bev_pool_floor.py", "bev_pool_order.py", "msda_prep.py"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("tool", STUDIES)
def test_without_a_gpu_says_so(tool, tmp_path):
    out = run_tool(tool, "--out", str(tmp_path / "rows.json"), "--rep-ms", "5")
    assert_needs_gpu(out, tool)
    assert not out.stdout and not (tmp_path / "rows.json").exists()


@pytest.mark.parametrize("tool", STUDIES)
def test_unknown_option_exits_2(tool):
    out = run_tool(tool, "--bogus")
    assert out.returncode == 2 and "unrecognized arguments: --bogus" in out.stderr
