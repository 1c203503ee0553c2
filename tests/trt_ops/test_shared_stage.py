"""triton_util.shared_stage_plan: the staged samplers' shared-memory geometry (no GPU needed)."""

import math

import pytest

pytest.importorskip("triton", reason="Triton is not installed (optional extra `gpu`)")

from bevdeploy.plugins.trt_ops.triton_util import SHARED_STATIC_MAX, shared_stage_plan  # noqa: E402


@pytest.mark.parametrize("esize,width,chunk", [(2, 200, 16), (1, 200, 8), (2, 130, 4), (2, 6, 4), (1, 36, 4)])
def test_copy_size_follows_the_row_alignment(esize, width, chunk):
    plan = shared_stage_plan(esize, width, 16, 32, 4, 8)
    assert plan["CHUNK"] == chunk and plan["EC"] * esize == chunk


@pytest.mark.parametrize("box", [(16, 32), (8, 64), (32, 32), (1, 16)])
def test_footprint_holds_any_rotation(box):
    """Rows and pixels per row cover the box's diagonal plus a corner's second pixel and a margin each side, with the
    row start rounded down to a whole copy (the kernel's own bounds)."""
    plan = shared_stage_plan(2, 200, *box, 2, 8)
    need = math.ceil(math.hypot(*box)) + 4
    assert plan["FH"] >= need and plan["FH"] % plan["RB"] == 0
    assert plan["FW"] >= need + plan["EC"] - 1 and plan["FW"] == plan["NCH"] * plan["EC"]
    assert plan["NCHP"] >= plan["NCH"] and plan["NCHP"] & (plan["NCHP"] - 1) == 0
    assert plan["SHARED"] == 2 * plan["BUF"] + 16 <= SHARED_STATIC_MAX
    assert f"[{plan['SHARED']}]" in plan["DECL"]
    below = plan["FW"] * 2
    assert plan["LD4"].endswith(f"[$4+{below}];\n\tld.shared.b16 $3, [$4+{below + 2}];")


def test_no_plan_for_odd_rows_or_too_much_shared_memory():
    assert shared_stage_plan(2, 33, 16, 32, 4, 8) is None  # 66-byte rows: cp.async copies 4, 8 or 16 bytes
    assert shared_stage_plan(2, 200, 32, 64, 8, 8) is None  # 2 x 8 planes of a 76 x 80 footprint > 48 KiB
