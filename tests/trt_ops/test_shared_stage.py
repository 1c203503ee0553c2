"""triton_util.shared_stage_plan: the staged samplers' shared-memory geometry (no GPU needed)."""

import math

import pytest

pytest.importorskip("triton", reason="Triton is not installed (optional extra `gpu`)")

from bevdeploy.plugins.trt_ops.triton_util import SHARED_STATIC_MAX, shared_stage_plan  # noqa: E402


@pytest.mark.parametrize("esize,width,chunk", [(2, 200, 16), (1, 200, 8), (2, 130, 4), (2, 6, 4), (1, 36, 4)])
def test_copy_size_follows_the_row_alignment(esize, width, chunk):
    plan = shared_stage_plan(esize, width, 16, 32, 4, 64)
    assert plan["CHUNK"] == chunk and plan["EC"] * esize == chunk


@pytest.mark.parametrize("box", [(16, 32), (8, 64), (32, 32), (1, 16)])
def test_footprint_holds_any_rotation(box):
    """Rows and pixels per row cover the box's diagonal plus a corner's second pixel and a margin each side, with the
    row start rounded down to a whole copy (the kernel's own bounds)."""
    plan = shared_stage_plan(2, 200, *box, 2, 64)
    need = math.ceil(math.hypot(*box)) + 4
    assert plan["FH"] >= need and plan["STEP"] == 64
    assert plan["NCH"] * plan["EC"] >= need + plan["EC"] - 1 and plan["FW"] == plan["PITCH"] * plan["EC"]
    assert plan["PITCH"] == plan["NCH"]
    assert plan["SHARED"] == 2 * plan["BUF"] == 2 * 2 * plan["FH"] * plan["FW"] * 2 <= SHARED_STATIC_MAX
    assert f"[{plan['SHARED']}]" in plan["DECL"]
    below = plan["FW"] * 2
    assert plan["LD4"].endswith(f"[$4+{below}];\n\tld.shared.b16 $3, [$4+{below + 2}];")


def test_no_plan_for_odd_rows_or_too_much_shared_memory():
    assert shared_stage_plan(2, 33, 16, 32, 4, 64) is None  # 66-byte rows: cp.async copies 4, 8 or 16 bytes
    assert shared_stage_plan(2, 200, 32, 64, 8, 64) is None  # 2 x 8 planes of a 76 x 80 footprint > 48 KiB


def test_margin_sizes_the_box_plus_its_margins():
    """With a margin (kernels that check their footprint at run time) the staged box is the output box plus the
    margin on each side and a corner's second pixel, x rounded out to whole copies, not the box's diagonal."""
    plan = shared_stage_plan(2, 200, 16, 32, 4, 64, margin=2)
    assert plan["FH"] == 16 + 2 * 2 + 1
    assert plan["NCH"] == -(-(32 + 2 * 2 + 1 + plan["EC"] - 1) // plan["EC"])
    assert plan["BUF"] == 4 * plan["FH"] * plan["NCH"] * plan["CHUNK"]


def test_pad_widens_the_row_pitch_not_the_copy():
    base, padded = shared_stage_plan(2, 200, 16, 32, 4, 64), shared_stage_plan(2, 200, 16, 32, 4, 64, pad=3)
    assert padded["NCH"] == base["NCH"] and padded["PITCH"] == base["NCH"] + 3
    assert padded["LD4"].endswith(f"[$4+{padded['FW'] * 2 + 2}];") and padded["FW"] == padded["PITCH"] * padded["EC"]


def test_copies_are_predicated():
    """Lanes past a plane's run copy nothing: the cp.async sits under a predicate set from its last operand."""
    cp = shared_stage_plan(1, 200, 16, 32, 8, 64)["CPASM"]
    assert "setp.ne.b32 p, $4, 0;" in cp and "@p cp.async.ca.shared.global [$1], [$2], 8, $3;" in cp
