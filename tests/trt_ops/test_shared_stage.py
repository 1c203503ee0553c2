"""triton_util.shared_stage_plan: the staged samplers' shared-memory geometry (no GPU needed)."""

import math

import pytest

pytest.importorskip("triton", reason="Triton is not installed (optional extra `gpu`)")

from bevdeploy.plugins.trt_ops.triton_util import (  # noqa: E402
    PITCH_BITS,
    PITCH_PER_WORD,
    SHARED_STATIC_MAX,
    interleave_asm,
    pitch_words,
    shared_pitch_table,
    shared_stage_plan,
    staged_interleave,
    staged_words,
)


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
    assert plan["NCH"] * plan["EC"] >= need + plan["EC"] - 1
    assert plan["PLANEC"] == plan["FH"] * plan["NCH"]
    assert plan["SHARED"] == 2 * plan["BUF"] == 2 * 2 * plan["PLANEC"] * plan["CHUNK"] <= SHARED_STATIC_MAX
    assert f"[{plan['SHARED']}]" in plan["DECL"]
    assert plan["LD4"].endswith("[$5];\n\tld.shared.b16 $3, [$5+2];")  # the row below: its own address


def test_no_plan_for_odd_rows_or_too_much_shared_memory():
    assert shared_stage_plan(2, 33, 16, 32, 4, 64) is None  # 66-byte rows: cp.async copies 4, 8 or 16 bytes
    assert shared_stage_plan(2, 200, 32, 64, 8, 64) is None  # 2 x 8 planes of a 76 x 80 footprint > 48 KiB


def test_reserve_leaves_room_for_the_kernels_own_shared_memory():
    """The grid sampler's fp16 3D 16 x 32 boxes (4 channels x 3 slices a block) declare 48384 bytes: under 48 KiB
    alone, over it with the 2 KiB its Triton code takes (which failed to launch), so that plan is refused."""
    args = (2, 128, 16, 32, 12, 64)
    assert shared_stage_plan(*args, margin=2, full_pitch=True)["SHARED"] == 48384
    assert shared_stage_plan(*args, margin=2, full_pitch=True, reserve=2048) is None
    assert shared_stage_plan(2, 128, 8, 32, 12, 64, margin=2, full_pitch=True, reserve=2048) is not None


def test_margin_sizes_the_box_plus_its_margins():
    """With a margin (kernels that check their footprint at run time) the staged box is the output box plus the
    margin on each side and a corner's second pixel, x rounded out to whole copies, not the box's diagonal."""
    plan = shared_stage_plan(2, 200, 16, 32, 4, 64, margin=2)
    assert plan["FH"] == 16 + 2 * 2 + 1
    assert plan["NCH"] == -(-(32 + 2 * 2 + 1 + plan["EC"] - 1) // plan["EC"])
    assert plan["BUF"] == 4 * plan["FH"] * plan["NCH"] * plan["CHUNK"]


def test_pad_allows_wider_pitches_in_a_little_more_room():
    base, padded = shared_stage_plan(2, 200, 16, 32, 4, 64), shared_stage_plan(2, 200, 16, 32, 4, 64, pad=3)
    assert padded["NCH"] == base["NCH"]
    assert base["PLANEC"] < padded["PLANEC"] <= base["PLANEC"] + 48 and padded["PLANEC"] % 16 == 0
    full = shared_stage_plan(2, 200, 16, 32, 4, 64, pad=3, full_pitch=True)
    assert full["PLANEC"] == full["FH"] * (full["NCH"] + 3)  # every row count fits at the widest pitch


def test_pitch_table_avoids_bank_conflicts_and_fits_the_plane():
    """shared_pitch_table: a straight row (0 degrees) needs no wider pitch; at 3 degrees the 96-byte rows of a
    16 x 32 fp16 box put neighbouring rows on the same banks (2.2 wavefronts per read, measured 35% slower than at 0
    degrees on the H200) and a wider one is picked; near 90 degrees a plane holds only a little more than the box's
    rows at the narrowest pitch, so any pitch picked must still fit; dy = -1 and 1 are the same line."""
    plan = shared_stage_plan(2, 200, 16, 32, 4, 64, pad=7)
    table = shared_pitch_table(2, plan["CHUNK"], plan["NCH"], 7, (16, 32), plan["PLANEC"])
    steps = len(table)

    def at(deg):
        return table[round((math.sin(math.radians(deg)) + 1) * (steps - 1) / 2)]

    assert at(0) == plan["NCH"] and at(3) > plan["NCH"]
    assert set(table) <= set(range(plan["NCH"], plan["NCH"] + 8)) and table[0] == table[-1]
    for deg in range(0, 91, 5):
        rows = math.floor(31 * abs(math.sin(math.radians(deg))) + 15 * abs(math.cos(math.radians(deg))) + 1e-6) + 5
        assert at(deg) == plan["NCH"] or rows * at(deg) <= plan["PLANEC"], deg


def test_copies_are_predicated():
    """Lanes past a plane's run copy nothing: the cp.async sits under a predicate set from its last operand."""
    cp = shared_stage_plan(1, 200, 16, 32, 8, 64)["CPASM"]
    assert "setp.ne.b32 p, $4, 0;" in cp and "@p cp.async.ca.shared.global [$1], [$2], 8, $3;" in cp


def test_pitch_words_pack_the_table_for_the_kernel():
    """staged_pitch reads the table from compile-time words: PITCH_BITS per entry (pitch - NCH), PITCH_PER_WORD to a
    word below 2**63; a pad the bits cannot hold is refused."""
    plan = shared_stage_plan(2, 200, 16, 32, 4, 64, pad=7)
    table = shared_pitch_table(2, plan["CHUNK"], plan["NCH"], 7, (16, 32), plan["PLANEC"])
    words = pitch_words(2, plan["CHUNK"], plan["NCH"], 7, (16, 32), plan["PLANEC"])
    mask = (1 << PITCH_BITS) - 1
    decoded = [plan["NCH"] + ((words[j // PITCH_PER_WORD] >> (PITCH_BITS * (j % PITCH_PER_WORD))) & mask)
               for j in range(len(table))]
    assert decoded == list(table) and all(0 <= w < 2**63 for w in words)
    assert len(words) == -(-len(table) // PITCH_PER_WORD)
    with pytest.raises(ValueError, match="bits per entry"):
        pitch_words(2, 16, 6, 8)


def test_four_byte_elements_load_as_words():
    """4-byte staged elements (fp32, or the interleaved words of stage_words_sync) load into 32-bit integer registers;
    staged_bilinear reinterprets them as fp32 where they are."""
    plan = shared_stage_plan(4, 200, 16, 32, 2, 256)
    assert plan["CHUNK"] == 16 and plan["EC"] == 4 and plan["LDT"] == "r"
    assert plan["LD4"].startswith("ld.shared.b32 $0, [$4];") and "[$5+4]" in plan["LD4"]


@pytest.mark.parametrize("dtype,width,block_c,aligned,expect", [
    ("fp16", 200, 4, True, 2), ("int8", 200, 8, True, 4), ("fp32", 200, 4, True, 1),
    ("fp16", 130, 4, True, 1),  # rows of 130 pixels: not whole 4-pixel words
    ("int8", 200, 6, True, 1),  # 6 planes a block: not whole groups of 4
    ("fp16", 200, 4, False, 1),  # a view 2 bytes past an aligned address
])
def test_staged_interleave_only_where_whole_words_exist(dtype, width, block_c, aligned, expect):
    import torch

    dt = {"fp16": torch.float16, "int8": torch.int8, "fp32": torch.float32}[dtype]
    base = torch.zeros(3 * 8 * width + 16, dtype=dt)
    x = (base[:3 * 8 * width] if aligned else base[1:1 + 3 * 8 * width]).view(3, 8, width)
    if aligned:
        assert x.data_ptr() % 16 == 0
    assert staged_interleave({"stage_words": True}, x, block_c) == expect
    assert staged_interleave({"stage_words": False}, x, block_c) == 1
    if expect > 1:  # words of 4 pixels of one plane, as stage_words_sync loads them
        w = staged_words(x, expect)
        assert w.element_size() == 4 * x.element_size() and w.shape[-1] == width // 4
        assert w.data_ptr() == x.data_ptr()
    assert staged_words(x, 1) is x


@pytest.mark.parametrize("il,operands", [(2, 5), (4, 7)])
def test_interleave_permutes_then_stores_one_vector(il, operands):
    """The interleave's PTX: byte permutes of the loaded words, then one predicated 16-byte st.shared (its operands:
    the result, the shared address, IL words, the predicate)."""
    asm = interleave_asm(il)
    assert asm.count("prmt.b32") == (4 if il == 2 else 8)
    assert asm.count("st.shared.v4.b32") == 1 and "@p st.shared" in asm
    assert f"${operands - 1}" in asm and f"${operands}" not in asm
