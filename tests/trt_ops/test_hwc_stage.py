"""The channels-last staging plan of trt_ops/hwc_stage.py (what a launch declares and copies), on the CPU; the
kernel itself is checked on the GPU (tests/gpu/test_rotate_hwc_gpu.py) and assembled offline
(test_sass_offline.py)."""

import math

import pytest
from bevdeploy.plugins.trt_ops.hwc_stage import hwc_stage_plan, hwc_warps
from bevdeploy.plugins.trt_ops.triton_util import SHARED_STATIC_MAX


@pytest.mark.parametrize("width,box", [(200, (16, 16)), (64, (8, 16)), (1024, (16, 16)), (8, (8, 8))])
def test_plan_holds_any_rotation_of_the_box(width, box):
    plan = hwc_stage_plan(width, *box, 64)
    fh = math.ceil(math.hypot(*box)) + 4  # the box's diagonal and margins: every angle's footprint
    assert plan["FH"] == fh and plan["NCH"] * 8 >= fh + 7  # x0 rounds down to a chunk
    assert plan["PLANEC"] % 2 == 1 and plan["PLANEC"] >= plan["FH"] * plan["NCH"] + 3  # a slot reads 3 past
    assert plan["QP"] % 8 == 0 and plan["QP"] >= max(48, plan["NCH"] * 8)
    assert plan["QOFF"] == 8 * plan["PLANEC"] * 16  # Q after the 8 planes
    assert plan["QOFF"] + (plan["FH"] + 3) * plan["QP"] * 16 == plan["SHARED"] <= SHARED_STATIC_MAX
    assert f"bd_stage[{plan['SHARED']}]" in plan["DECL"] and "16, $3" in plan["CPASM"]


def test_plan_refuses_what_it_cannot_stage():
    assert hwc_stage_plan(60, 16, 16, 64) is None  # 120-byte rows: not whole 16-byte chunks
    assert hwc_stage_plan(200, 32, 32, 64) is None  # over 48 KiB of static shared memory


def test_warps_give_each_lane_its_own_elements():
    assert hwc_warps(256) == 4 and hwc_warps(384) == 4 and hwc_warps(64) == 2 and hwc_warps(32) == 1
    with pytest.raises(ValueError, match="multiple of 32 pixels"):
        hwc_warps(48)
