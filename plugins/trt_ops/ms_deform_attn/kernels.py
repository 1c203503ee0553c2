"""Triton kernels of multi-scale deformable attention, one per precision.

Entry point (called by op.py on CUDA tensors)::

    ms_deform_attn_cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights,
                        precision="fp32", scales=None) -> (bs, num_queries, num_heads * channels)

value (bs, num_keys, heads, C); spatial_shapes (L, 2) as (H, W); level_start_index (L,);
sampling_locations (bs, nq, heads, L, P, 2) as normalised (x, y) in [0, 1]; attention_weights
(bs, nq, heads, L, P). Sampling is bilinear with zero padding and align_corners=False (pixel = loc * size - 0.5),
as mmcv's kernel. The lanes of one (batch, query, head) row (16 bytes of channels each by default) walk the L*P
points and keep their channels in registers; see _ms_deform_attn_kernel for why (benchmarks/NOTES-ops.md).

Variants: fp32; fp16 (every float input fp16, fp32 arithmetic, fp16 out); fp16x2 (fp16 storage, corner
weights and the weighted sum in fp16; coordinates in fp32); int8 (value int8 with scales["value"];
attention_weights int8 with scales["attention_weights"] when given, else fp16; sampling_locations fp16;
fp32 accumulation, one multiply by the value scale at the end; fp16 out). With C % 4 == 0 the int8 value is
read as int32 words (4 channels per word) and every byte becomes an fp32 operand without a conversion
instruction (see triton_util.add_packed_int8), so int8 costs about as many instructions per element as fp32.
int8's default x-pair path instead sums exactly in int32 (TUNING "int_dot", below): the corner weights are rounded
to int16 fixed point in steps of 1/32767 of the row's largest |attention weight| (int8 weights: of 128 times their
scale), at most half a step per corner, where the int8 value itself is rounded by half a step of 1/127 (anchor:
relative error 2.1e-4 against the dequantised reference with and without it, the fp16 output's rounding).

Neighbour entries (TUNING "corners": 2 = x-pairs, 4 = quads, 1 = the four-corner kernel; for int8 / fp16 / fp16x2,
never fp32; their default is x-pairs): with random sampling locations every gathered corner row is its own L2
request, and for 32-byte int8 rows the request count, not bytes, bounds the four-corner kernel (Nsight Compute: L2
~87% busy at 245 M corner requests on the anchor). A prep kernel (one pass over the value, part of the op's time)
writes, per (key, head), the rows of the key's right neighbour (pairs) or of its right, lower and lower-right
neighbours too (quads), zeros where they fall off the map (value_neighbours); the entry kernel then reads a point's
corners as 2 (pairs) or 1 (quads: 128 bytes for int8 C=32, one line) entries instead of 4 rows. Memory: the entry
buffer is 2x / 4x the value tensor, allocated per call (int8 anchor: 95 MB for pairs). Applies where a row is a power
of two of int32 words (int8, C % 4 == 0) or of fp16 elements; elsewhere the four-corner kernel runs.
Measured (H200, NOTES-ops runs 7 and 19): entries alone do not pay, every variant ran 1.61 - 1.74 ms against the
four-corner kernel's 1.71, because the bound moves: to issue (pairs at 16 bytes per lane, session 5), to the L1
wavefronts of the three scalar location / weight loads per point (quads: L1 82% busy) and, for quads, a 130 us prep.
With each level's locations and weights in one vector load (level_loads) pairs at 32 bytes per lane run the
anchor in 1.43 ms and "sca" in 1.44 (run 19; int8 / fp32 1.98x / 2.15x), bound by L2 again (84% busy, prep 38 us).
Part of that L2 work was the int8 output: four 2-byte stores of stride 8 bytes per word, each a partial-sector write
that the L2 takes on its own (61 M sectors at the anchor for a 3.8 M-sector output); one 8-byte store per word
(triton_util.store_half_quads) cut int8 to 1.13 ms (session 13).

Integer dot products (TUNING "int_dot"; int8 x-pairs): after session 13 the int8 entry kernel was bound by L1's
data-stage wavefronts (91%: one per distinct 128-byte line per load instruction, so 242 M for 61 M row-points,
four per point with 2 lanes of 32 bytes per row) and by the ALU (73%: a shift-and-mask and an FFMA per byte and map
row). Each lane holds the same channels of map rows y0 and y1, so with signed entries one byte permute pairs a
channel's two rows and dp2a (two 16-bit weights x two int8 bytes, int32 sum) adds both: per word 2 PRMT + 4 IDP
instead of 8 extractions and 8 FFMA (triton_util.dot_byte_pairs; instructions 809 M -> 516 M, 1.03 -> 0.99 ms, now
97% L1-bound). That makes 16 bytes per lane (4 lanes per row, two wavefronts per point, twice the lanes doing the
point math) pay: 146 M wavefronts, 0.85 ms (issue 82%), int8 anchor 1.10 -> 0.93 ms with the prep (run 25).
Spreading a lane's two 16-byte loads over its row's lanes so that each load instruction reads whole sectors
("interleaved" chunks, session 14) halved the L1 sectors but not the wavefronts, and was slower (1.09 -> 1.32 ms).
Head-major order (TUNING "head_major"): the programs resident at once cover a few thousand consecutive rows; in
the value's own order those are every head of a few queries, which gather from every head's keys of the batch.
Walked (batch, head, query) instead, with the value (or its entries) laid out (batch, head, key), they share one
head's slab (the anchor's level 3: 12 KB of int8 rows; level 2: 46 KB), and the small levels hit in L1 (int8 entries:
L2 traffic 8.1 -> 6.1 GB, L1 hits 53 -> 64%). The layout costs one pass (the entries' prep writes it; the four-corner
kernel transposes the value first, inside the op's time). TUNING "l1_bytes" gathers levels whose slab is larger
through L2 only (ld.global.cg) so that they do not evict the small ones (fp32: 2.49 -> 2.47 ms).
"""

from collections.abc import Mapping

import torch
from bevdeploy.plugins.trt_ops.triton_util import (
    add_packed_int8,
    bias_int8_words,
    check_launch,
    dot_byte_pairs,
    fixed_pair,
    float_quotients,
    float_storage,
    int8_input,
    interpreting,
    next_pow2,
    out_dtype,
    packed_int8_result,
    quotient,
    reciprocal,
    store_half_quads,
    store_packed_int8_words,
    tl,
    to_f32,
    triton,
    tuned,
)

OP = "ms_deform_attn"
_MODE = {"fp32": 0, "fp16": 0, "fp16x2": 1, "int8": 0}  # int8 uses mode 2 (packed words) when C % 4 == 0
# launch shape; benchmarks/ops.py --sweep varies it
# lane_bytes: bytes of a row per lane (16: a warp load covers whole rows; 128: one lane per 32-channel fp32 row)
# corners: 1 reads the value itself (four loads per point); 2 / 4 read x-pair / quad entries (value_neighbours,
# _ms_deform_attn_neighbours_kernel) where they apply. level_loads: the entry kernel loads a level's P locations and
# weights with one vector load each (P a power of two) instead of three scalar loads per point.
# head_major: the value (or its entries) laid out (batch, head, key) and the rows walked head by head, so that the
# programs resident at once gather from one (batch, head)'s slab and its small levels stay in L1; l1_bytes: levels
# whose slab exceeds it are gathered with ld.global.cg (0: none). Defaults (H200, session 13, NOTES-ops item 24):
# fp32 the four-corner kernel head-major, levels above 256 KiB through L2 only (anchor 2.82 -> 2.47 ms); fp16,
# fp16x2 and int8 x-pairs, 32 bytes per lane, level loads, head-major (anchor fp16 1.69 -> 1.45, fp16x2 1.52 ->
# 1.32, int8 1.13 -> 1.10 ms after the int8 store fix); int8 then with int_dot (int16 weights summed by dp2a; int8
# x-pairs only) at 16 bytes per lane (session 14: 1.10 -> 0.94 ms; 1.02 at 32 bytes). int_dot: see the docstring.
# The four-corner kernel's fp16 / int8 rows were slower head-major (1.69 -> 1.92, 1.76 -> 2.00), so a fallback
# to it from entries (rows that are not a power of two) keeps the key order; ld.global.cg made every x-pair row
# slower (int8 1.09 -> 1.48 ms; presumably because a lane's two 16-byte loads of one sector then both go to L2:
# NOTES-ops item 24).
_ENTRIES = {"corners": 2, "lane_bytes": 32, "level_loads": True, "head_major": True}
TUNING = {"num_warps": 4, "lane_bytes": 16, "corners": 1, "level_loads": False, "head_major": False, "l1_bytes": 0,
          "per_precision": {"fp32": {"head_major": True, "l1_bytes": 262144}, "fp16": _ENTRIES, "fp16x2": _ENTRIES,
                            "int8": {**_ENTRIES, "int_dot": True, "lane_bytes": 16}}}
# "per_precision": {} keeps a per-precision default from overriding what an entry names
SWEEP = [{"per_precision": {}}, {"head_major": True, "l1_bytes": 262144, "per_precision": {}},
         {**_ENTRIES, "per_precision": {}}, {**_ENTRIES, "lane_bytes": 16, "per_precision": {}},
         *({**_ENTRIES, "int_dot": True, "lane_bytes": lb, "per_precision": {}} for lb in (32, 16)),
         {**_ENTRIES, "int_dot": True, "lane_bytes": 16, "num_warps": 8, "per_precision": {}},
         {**_ENTRIES, "int_dot": True, "lane_bytes": 16, "head_major": False, "per_precision": {}}]


@triton.jit
def _gather(ptrs, mask, STREAM: tl.constexpr):
    """Load a gather (mask None: unmasked); STREAM: through L2 only (ld.global.cg), so that a level too large for L1
    does not evict the levels that fit (_level)."""
    return tl.load(ptrs, mask=mask, other=None if mask is None else 0, cache_modifier=".cg" if STREAM else "")


@triton.jit
def _corner(value_ptr, kb, ks, x, y, dx: tl.constexpr, dy: tl.constexpr, wl, hl, w, inside, c, cmask,
            ROW: tl.constexpr, MODE: tl.constexpr, STREAM: tl.constexpr, acc0, acc1, acc2, acc3, wsum):
    """Add one bilinear corner of every row (a (batch, query, head) pair) to the accumulators; the row of key
    (x, y) of the level is kb + (y * wl + x) * ks (_level)."""
    xx = x + dx
    yy = y + dy
    valid = inside & (xx >= 0) & (xx < wl) & (yy >= 0) & (yy < hl)
    idx = (kb + (yy * wl + xx) * ks) * ROW
    v = _gather(value_ptr + idx[:, None, None] + c, valid[:, None, None] & cmask, STREAM)
    return _accumulate(v, w, MODE, acc0, acc1, acc2, acc3, wsum)


@triton.jit
def _accumulate(v, w, MODE: tl.constexpr, acc0, acc1, acc2, acc3, wsum, BIASED: tl.constexpr = False):
    """Add the loaded rows v, weighted by w (one weight per lane), to the accumulators of a MODE (BIASED: int8
    words already XORed with 0x80, as value_neighbours stores them)."""
    w3 = w[:, None, None]
    if MODE == 2:  # int8 packed 4 channels per int32 word (triton_util.add_packed_int8)
        acc0, acc1, acc2, acc3 = add_packed_int8(v, w3, acc0, acc1, acc2, acc3, BIASED=BIASED)
        wsum += w
    elif MODE == 1:
        acc0 += w.to(tl.float16)[:, None, None] * v
    else:
        acc0 += w3 * to_f32(v)
    return acc0, acc1, acc2, acc3, wsum


@triton.jit
def _sample_point(loc_ptr, attn_ptr, base, rmask, wl, hl, attn_scale):
    """Point ``base`` of every row: its top-left corner (x0, y0), the fractions (fx, fy), its attention weight and
    whether any corner lies on the map (pixel = loc * size - 0.5)."""
    x = tl.load(loc_ptr + base * 2, mask=rmask, other=0).to(tl.float32)
    y = tl.load(loc_ptr + base * 2 + 1, mask=rmask, other=0).to(tl.float32)
    aw = tl.load(attn_ptr + base, mask=rmask, other=0).to(tl.float32) * attn_scale
    return _point_corner(x, y, aw, rmask, wl, hl)


@triton.jit
def _point_corner(x, y, aw, rmask, wl, hl):
    """(x0, y0, fx, fy, aw, inside) of normalised locations (x, y) on a wl x hl map: pixel = loc * size - 0.5."""
    x = x * wl - 0.5
    y = y * hl - 0.5
    inside = rmask & (x > -1.0) & (y > -1.0) & (x < wl) & (y < hl)
    x0f = tl.floor(x)
    y0f = tl.floor(y)
    return x0f.to(tl.int32), y0f.to(tl.int32), x - x0f, y - y0f, aw, inside


@triton.jit
def _memory_row(k, S, NH, NQ, INV_NH, INV_NQ, HEAD_MAJOR: tl.constexpr, FQ: tl.constexpr):
    """(row, key base) of the k-th row in program order. The row: the (batch, query, head) row of the locations,
    weights and output, k itself or with HEAD_MAJOR the k-th of the order (batch, head, query), so that the programs
    running at once share one (batch, head) and its slab of the head-major value. The key base: where the row's
    (batch, head) keys start in the value of S keys (_level), (batch * NH + head) * S head-major, batch * S * NH +
    head in key order; one register across the level loop instead of head and batch. INV_NH / INV_NQ: 1 / NH, 1 / NQ
    for triton_util.quotient (FQ: its fp32 path, four instructions instead of a run-time division's ~25)."""
    if HEAD_MAJOR:
        bh = quotient(k, NQ, INV_NQ, FQ)
        b = quotient(bh, NH, INV_NH, FQ)
        return (b * NQ + k - bh * NQ) * NH + bh - b * NH, bh * S
    kh = quotient(k, NH, INV_NH, FQ)
    return k, quotient(kh, NQ, INV_NQ, FQ) * (S * NH) + k - kh * NH


@triton.jit
def _row_lanes(ROWS, S, NH, NQ, INV_NH, INV_NQ, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, NCH: tl.constexpr,
               VW: tl.constexpr, HEAD_MAJOR: tl.constexpr, FQ: tl.constexpr):
    """This program's lanes: SPLIT neighbouring lanes per (batch, query, head) row r (_memory_row); per lane its
    row, its part of the row, the row mask, its key base and its [lanes, NCH, VW] element offsets within the row.
    The tail program's spare lanes (masked) take row ROWS - 1, so that their addresses stay in bounds."""
    q = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    k = q // SPLIT
    r, kbase = _memory_row(tl.minimum(k, ROWS - 1), S, NH, NQ, INV_NH, INV_NQ, HEAD_MAJOR, FQ)
    part = q % SPLIT
    c = (part * (NCH * VW))[:, None, None] + tl.arange(0, NCH)[None, :, None] * VW + tl.arange(0, VW)[None, None, :]
    return r, part, k < ROWS, kbase, c


@triton.jit
def _zero_accumulators(BLOCK_R: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr, MODE: tl.constexpr,
                       INT: tl.constexpr = False):
    """acc0..acc3 (int8: one per byte of a word; else only acc0 is used; INT: int32 sums, dot_byte_pairs) and wsum,
    the corner weights' sum for the int8 +128 offset."""
    acc_dt = tl.int32 if INT else (tl.float16 if MODE == 1 else tl.float32)
    zero = tl.zeros([BLOCK_R, NCH, VW], dtype=acc_dt)
    return zero, zero, zero, zero, tl.zeros([BLOCK_R], dtype=tl.float32)


@triton.jit
def _level(shapes_ptr, starts_ptr, lvl, kbase, NH, ROW_BYTES: tl.constexpr, HEAD_MAJOR: tl.constexpr,
           L1_BYTES: tl.constexpr):
    """Level lvl's height and width, and where each row's keys are: key (x, y) of the level is value row
    kb + (y * W + x) * ks, in the value (batch, key, head) or, HEAD_MAJOR, (batch, head, key), from the row's key
    base (_memory_row). Last, whether the level streams (its slab, the bytes one (batch, head) reads with
    HEAD_MAJOR, else all heads', exceeds L1_BYTES; 0: never)."""
    hl = tl.load(shapes_ptr + lvl * 2)
    wl = tl.load(shapes_ptr + lvl * 2 + 1)
    start = tl.load(starts_ptr + lvl)
    if HEAD_MAJOR:
        kb = kbase + start
        ks = 1
        slab = hl * wl * ROW_BYTES
    else:
        kb = kbase + start * NH
        ks = NH
        slab = hl * wl * ROW_BYTES * NH
    if L1_BYTES > 0:
        stream = slab > L1_BYTES
    else:
        stream = False
    return hl, wl, kb, ks, stream


@triton.jit
def _level_corners(value_ptr, loc_ptr, attn_ptr, r, lvl, L, P, rmask, wl, hl, kb, ks, attn_scale, c, cmask,
                   ROW: tl.constexpr, MODE: tl.constexpr, STREAM: tl.constexpr, acc0, acc1, acc2, acc3, wsum):
    """Add the P points of level lvl of every row, four corner loads each, to the accumulators."""
    for pt in range(P):
        x0, y0, fx, fy, aw, inside = _sample_point(loc_ptr, attn_ptr, r * (L * P) + lvl * P + pt, rmask, wl, hl,
                                                   attn_scale)
        gx = 1.0 - fx
        wy0 = (1.0 - fy) * aw
        wy1 = fy * aw
        acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, kb, ks, x0, y0, 0, 0, wl, hl, gx * wy0, inside, c, cmask,
                                               ROW, MODE, STREAM, acc0, acc1, acc2, acc3, wsum)
        acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, kb, ks, x0, y0, 1, 0, wl, hl, fx * wy0, inside, c, cmask,
                                               ROW, MODE, STREAM, acc0, acc1, acc2, acc3, wsum)
        acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, kb, ks, x0, y0, 0, 1, wl, hl, gx * wy1, inside, c, cmask,
                                               ROW, MODE, STREAM, acc0, acc1, acc2, acc3, wsum)
        acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, kb, ks, x0, y0, 1, 1, wl, hl, fx * wy1, inside, c, cmask,
                                               ROW, MODE, STREAM, acc0, acc1, acc2, acc3, wsum)
    return acc0, acc1, acc2, acc3, wsum


@triton.jit
def _ms_deform_attn_kernel(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
    S, NQ, NH, C, L, P, ROWS, attn_scale, out_scale, INV_NH, INV_NQ,
    MODE: tl.constexpr, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr,
    ROW: tl.constexpr, EVEN: tl.constexpr, HEAD_MAJOR: tl.constexpr = False, L1_BYTES: tl.constexpr = 0,
    FQ: tl.constexpr = False,
):
    """One program per BLOCK_R lanes; SPLIT neighbouring lanes share one (batch, query, head) row, each lane
    keeping NCH * VW of its channels (16-byte chunks) in registers and walking the L * P points itself, so
    there is no cross-lane reduction. SPLIT trades per-lane point math (coordinates, weights, masks, done by
    every lane of a row) against L1 wavefronts: one warp load covers whole rows when a lane holds 16 bytes
    (SPLIT = row bytes / 16), but a lane holding the whole row (SPLIT = 1) makes every load instruction touch
    32 different lines. The [lanes, NCH, VW] tile puts the lane dimension on the threads. HEAD_MAJOR: the value
    is (batch, head, key, C) and the programs walk the rows head by head (_memory_row); L1_BYTES: levels whose
    slab exceeds it are gathered through L2 only (_level)."""
    r, part, rmask, kbase, c = _row_lanes(ROWS, S, NH, NQ, INV_NH, INV_NQ, BLOCK_R, SPLIT, NCH, VW, HEAD_MAJOR, FQ)
    cmask = (c < ROW) | EVEN
    acc0, acc1, acc2, acc3, wsum = _zero_accumulators(BLOCK_R, NCH, VW, MODE)
    ebytes: tl.constexpr = value_ptr.dtype.element_ty.primitive_bitwidth // 8
    for lvl in range(L):
        hl, wl, kb, ks, stream = _level(shapes_ptr, starts_ptr, lvl, kbase, NH, ROW * ebytes, HEAD_MAJOR, L1_BYTES)
        if stream:  # constexpr False without L1_BYTES
            acc0, acc1, acc2, acc3, wsum = _level_corners(value_ptr, loc_ptr, attn_ptr, r, lvl, L, P, rmask, wl, hl,
                                                          kb, ks, attn_scale, c, cmask, ROW, MODE, True,
                                                          acc0, acc1, acc2, acc3, wsum)
        else:
            acc0, acc1, acc2, acc3, wsum = _level_corners(value_ptr, loc_ptr, attn_ptr, r, lvl, L, P, rmask, wl, hl,
                                                          kb, ks, attn_scale, c, cmask, ROW, MODE, False,
                                                          acc0, acc1, acc2, acc3, wsum)
    m = rmask[:, None, None] & cmask
    if MODE == 2:  # word w of a row holds channels 4w .. 4w+3 (fp16 out): one 8-byte store per word
        store_packed_int8_words(out_ptr, r[:, None, None] * (C // 4) + c, acc0, acc1, acc2, acc3, wsum[:, None, None],
                                out_scale, m)
    else:
        res = acc0.to(tl.float32) * out_scale
        tl.store(out_ptr + r[:, None, None] * C + c, res.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _neighbours_prep_kernel(src_ptr, dst_ptr, shapes_ptr, starts_ptr, S, NH, L, N, INV_S, INV_NH, RW: tl.constexpr,
                            KY: tl.constexpr, BIAS: tl.constexpr, BLOCK: tl.constexpr, HEAD_MAJOR: tl.constexpr = False,
                            FQ: tl.constexpr = False):
    """One pass over the value as int32 words: row i = (batch, key s, head) of RW words becomes the entry of its
    2 * KY corners (k = 2 dy + dx: v[s + dx + dy * W] of the key's level), each zero where it falls off the
    map (s in the last column for dx = 1, in the last map row for dy = 1). BIAS: int8 bytes stored as q ^ 0x80
    (a zero as 0x80), which the int8 kernel would otherwise compute per load. Reads and writes run along i, so
    both are coalesced; the neighbours' reads hit L2. HEAD_MAJOR: the entries are written (batch, head, key).
    The row's batch, key and head, and the key's column in its level, are quotients by 1 / S, 1 / NH and each
    level's 1 / W (triton_util.quotient; FQ its fp32 path) rather than run-time divisions per row."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < N
    ih = quotient(i, NH, INV_NH, FQ)  # batch * S + key
    b = quotient(ih, S, INV_S, FQ)
    s = ih - b * S
    start = tl.zeros([BLOCK], dtype=tl.int32)
    wl = tl.full([BLOCK], 1, tl.int32)
    hl = tl.full([BLOCK], 1, tl.int32)
    inv_wl = tl.full([BLOCK], 1.0, tl.float32)
    for lvl in range(L):  # level_start_index ascends: the last start <= s is the key's level
        st = tl.load(starts_ptr + lvl)
        w_lvl = tl.load(shapes_ptr + lvl * 2 + 1)
        sel = s >= st
        start = tl.where(sel, st, start)
        hl = tl.where(sel, tl.load(shapes_ptr + lvl * 2), hl)
        wl = tl.where(sel, w_lvl, wl)
        inv_wl = tl.where(sel, tl.math.div_rn(1.0, w_lvl.to(tl.float32)), inv_wl)  # once per program and level
    t = s - start  # the key's place in its level, y * W + x
    has_x = t - quotient(t, wl, inv_wl, FQ) * wl != wl - 1
    has_y = t < (hl - 1) * wl
    col = tl.arange(0, RW)[None, :]
    if HEAD_MAJOR:
        e = (b * NH + i - ih * NH) * S + s
    else:
        e = i
    dst = dst_ptr + e[:, None] * (2 * KY * RW) + col
    for dy in tl.static_range(KY):
        for dx in tl.static_range(2):
            ok = m
            if dx == 1:
                ok = ok & has_x
            if dy == 1:
                ok = ok & has_y
            v = tl.load(src_ptr + (i + (dx + dy * wl) * NH)[:, None] * RW + col, mask=ok[:, None], other=0)
            if BIAS:
                v = bias_int8_words(v)
            tl.store(dst + (2 * dy + dx) * RW, v, mask=m[:, None])


@triton.jit
def _axis_weight(d, near, f):
    """Bilinear weight along one axis of the entry slot d (0 or 1) for a point whose first corner is ``near``
    the map's start (x0 = -1: the entry is that of key 0, so slot 0 holds the point's second corner)."""
    return tl.where(d == 1, tl.where(near, 0.0, f), tl.where(near, f, 1.0 - f))


@triton.jit
def _column(tile, k: tl.constexpr, N: tl.constexpr):
    """Column k of an integer [rows, N] tile that each thread holds whole: with k known, the select and the
    sum fold to one register (integer adds of zero fold; float ones would not)."""
    return tl.sum(tl.where(tl.arange(0, N)[None, :] == k, tile, 0), axis=1)


@triton.jit
def _level_point(locw, attw, k: tl.constexpr, N: tl.constexpr, rmask, wl, hl, attn_scale, ATTN_F16: tl.constexpr):
    """As _sample_point, for point k of a level whose locations (int32 words: x, y fp16) and weights (int16
    bits of fp16, or int8) were loaded for all N points at once (_ms_deform_attn_neighbours_kernel, LVL)."""
    w = _column(locw, k, N)
    x = (w & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    y = (w >> 16).to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32)
    aw = _attn_value(_column(attw.to(tl.int32), k, N), ATTN_F16, attn_scale)
    return _point_corner(x, y, aw, rmask, wl, hl)


@triton.jit
def _attn_value(a, ATTN_F16: tl.constexpr, attn_scale):
    """Attention weights from their loaded integers (fp16 bits as int16 / int32, or int8) as fp32."""
    if ATTN_F16:
        return a.to(tl.int16).to(tl.float16, bitcast=True).to(tl.float32) * attn_scale
    return a.to(tl.float32) * attn_scale


@triton.jit
def _weight_max(attn_ptr, rc, L, P, LVL: tl.constexpr, NP: tl.constexpr, ATTN_F16: tl.constexpr, attn_scale):
    """max |attention weight| over the L * P points of every row rc (IDOT's fixed-point scale): a level's NP
    weights per vector load (LVL, loaded as _level_entries does), else point by point."""
    m = tl.zeros(rc.shape, dtype=tl.float32)
    if LVL:
        for lvl in range(L):
            pts = (rc * (L * NP) + lvl * NP)[:, None] + tl.arange(0, NP)[None, :]
            m = tl.maximum(m, tl.max(tl.abs(_attn_value(tl.load(attn_ptr + pts), ATTN_F16, attn_scale)), axis=1))
    else:
        for i in range(L * P):
            m = tl.maximum(m, tl.abs(tl.load(attn_ptr + rc * (L * P) + i).to(tl.float32) * attn_scale))
    return m


@triton.jit
def _pair_row(ey: tl.constexpr, y0, fy, hl):
    """Map row y0 + ey of an x-pair point and its bilinear weight along y (zero, and row 0, off the map)."""
    yy = y0 + ey
    ok = (yy >= 0) & (yy < hl)
    if ey == 1:
        wy = tl.where(ok, fy, 0.0)
    else:
        wy = tl.where(ok, 1.0 - fy, 0.0)
    return tl.where(ok, yy, 0), wy


@triton.jit
def _neighbour_point(nb_ptr, x0, y0, fx, fy, aw, inside, kb, ks, wl, hl, dx, dy, c,
                     acc0, acc1, acc2, acc3, wsum, MODE: tl.constexpr, ROW: tl.constexpr, KY: tl.constexpr,
                     STREAM: tl.constexpr, IDOT: tl.constexpr, wscale, ASM: tl.constexpr):
    """Add one point of every row (its corner x0, y0, fractions, weight, inside: _sample_point), read from its
    neighbour entries (slot 2 dy + dx of each lane; the entry of key (x, y) is kb + (y * wl + x) * ks: _level),
    to the accumulators. Entry indices are clamped onto the map and the weights of corners off it are zero, so
    the loads need no mask; x0 = -1 (y0 = -1) reads the entry of column (row) 0 with the weights shifted. IDOT
    (int8 x-pairs): the lane's rows y0 and y1 are summed together by integer dot products (dot_byte_pairs) with
    the weights scaled by wscale and rounded to int16; the entries then hold signed bytes (no 0x80 bias)."""
    wxa = _axis_weight(dx, x0 < 0, fx) * tl.where(inside, aw, 0.0)
    e = tl.where(inside, tl.maximum(x0, 0), 0)
    if IDOT:
        tl.static_assert(KY == 1 and MODE == 2)
        wf = wxa * wscale
        ya, wya = _pair_row(0, y0, fy, hl)
        yb, wyb = _pair_row(1, y0, fy, hl)
        va = _gather(nb_ptr + ((kb + (e + ya * wl) * ks) * (2 * ROW))[:, None, None] + c, None, STREAM)
        vb = _gather(nb_ptr + ((kb + (e + yb * wl) * ks) * (2 * ROW))[:, None, None] + c, None, STREAM)
        acc0, acc1, acc2, acc3 = dot_byte_pairs(va, vb, fixed_pair(wf * wya, wf * wyb)[:, None, None],
                                                acc0, acc1, acc2, acc3, ASM)
    else:
        for ey in tl.static_range(2 // KY):  # pairs: one entry per map row y0, y0 + 1; quads: one entry
            if KY == 2:
                wy = _axis_weight(dy, y0 < 0, fy)
                yy = tl.where(inside, tl.maximum(y0, 0), 0)
            else:
                yy, wy = _pair_row(ey, y0, fy, hl)
            v = _gather(nb_ptr + ((kb + (e + yy * wl) * ks) * (2 * KY * ROW))[:, None, None] + c, None, STREAM)
            acc0, acc1, acc2, acc3, wsum = _accumulate(v, wxa * wy, MODE, acc0, acc1, acc2, acc3, wsum, BIASED=True)
    return acc0, acc1, acc2, acc3, wsum


@triton.jit
def _level_entries(nb_ptr, loc_ptr, attn_ptr, r, lvl, L, P, rmask, wl, hl, kb, ks, attn_scale, dx, dy, c,
                   acc0, acc1, acc2, acc3, wsum, MODE: tl.constexpr, ROW: tl.constexpr, KY: tl.constexpr,
                   LVL: tl.constexpr, NP: tl.constexpr, ATTN_F16: tl.constexpr, STREAM: tl.constexpr,
                   IDOT: tl.constexpr, wscale, ASM: tl.constexpr):
    """Add the P points of level lvl of every row, read from neighbour entries, to the accumulators."""
    if LVL:  # the level's NP (= P) locations and weights in one vector load each
        pts = (r * (L * NP) + lvl * NP)[:, None] + tl.arange(0, NP)[None, :]
        locw = tl.load(loc_ptr + pts)
        attw = tl.load(attn_ptr + pts)
        for k in tl.static_range(NP):
            x0, y0, fx, fy, aw, inside = _level_point(locw, attw, k, NP, rmask, wl, hl, attn_scale, ATTN_F16)
            acc0, acc1, acc2, acc3, wsum = _neighbour_point(nb_ptr, x0, y0, fx, fy, aw, inside, kb, ks, wl, hl, dx,
                                                            dy, c, acc0, acc1, acc2, acc3, wsum, MODE, ROW, KY, STREAM,
                                                            IDOT, wscale, ASM)
    else:
        for pt in range(P):
            x0, y0, fx, fy, aw, inside = _sample_point(loc_ptr, attn_ptr, r * (L * P) + lvl * P + pt, rmask, wl, hl,
                                                       attn_scale)
            acc0, acc1, acc2, acc3, wsum = _neighbour_point(nb_ptr, x0, y0, fx, fy, aw, inside, kb, ks, wl, hl, dx,
                                                            dy, c, acc0, acc1, acc2, acc3, wsum, MODE, ROW, KY, STREAM,
                                                            IDOT, wscale, ASM)
    return acc0, acc1, acc2, acc3, wsum


@triton.jit
def _ms_deform_attn_neighbours_kernel(
    nb_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
    S, NQ, NH, C, L, P, ROWS, attn_scale, out_scale, INV_NH, INV_NQ,
    MODE: tl.constexpr, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr,
    ROW: tl.constexpr, KY: tl.constexpr, LVL: tl.constexpr, NP: tl.constexpr, ATTN_F16: tl.constexpr,
    HEAD_MAJOR: tl.constexpr = False, L1_BYTES: tl.constexpr = 0, IDOT: tl.constexpr = False,
    FIXED: tl.constexpr = 32767.0, ASM: tl.constexpr = True, FQ: tl.constexpr = False,
):
    """As _ms_deform_attn_kernel, but the value comes as neighbour entries (value_neighbours): 2 * KY corner rows
    of ROW elements per (key, head), slot k = 2 dy + dx. The SPLIT lanes of a (batch, query, head) row cover one
    whole entry, each lane NCH * VW elements of one slot, so a point costs 2 / KY entry loads (pairs: map rows y0
    and y0 + 1; quads: one) instead of 4 corner loads. LVL: each level's NP (= P) locations and weights come in one
    vector load each (the points unrolled, _level_point) instead of three scalar loads per point, whose L1
    wavefronts (a row's points lie 4 * L * P bytes apart from the next row's) bounded the kernel once the entries
    had cut the L2 requests. The slots of a row are summed once at the end. HEAD_MAJOR, L1_BYTES: as
    _ms_deform_attn_kernel (the entries then (batch, head, key, slot, ROW)). IDOT (int8 x-pairs, signed entries):
    each row's weights are scaled so that its largest |attention weight| (fp16 weights; int8 ones: their bound
    128 * attn_scale) becomes FIXED (<= 32767, and small enough that the int32 sums cannot overflow) and rounded to
    int16; the two map rows of a point are summed exactly in int32 by dot_byte_pairs (ASM: inline dp2a), and the
    sums scaled back once at the end."""
    r, part, rmask, kbase, c = _row_lanes(ROWS, S, NH, NQ, INV_NH, INV_NQ, BLOCK_R, SPLIT, NCH, VW, HEAD_MAJOR, FQ)
    slot = (part * (NCH * VW)) // ROW
    dx = slot % 2
    dy = slot // 2
    acc0, acc1, acc2, acc3, wsum = _zero_accumulators(BLOCK_R, NCH, VW, MODE, IDOT)
    if IDOT:  # int32 sums of int16 weights (wsum stays unused)
        if ATTN_F16:  # each row scaled to its own largest weight
            wscale = FIXED / tl.maximum(_weight_max(attn_ptr, r, L, P, LVL, NP, ATTN_F16, attn_scale), 1e-30)
        else:  # int8 weights: |w| <= 128 * attn_scale in every row, no pass over them needed
            wscale = tl.full([BLOCK_R], FIXED, tl.float32) / tl.maximum(128.0 * attn_scale, 1e-30)
    else:
        wscale = 1.0
    ebytes: tl.constexpr = nb_ptr.dtype.element_ty.primitive_bitwidth // 8
    for lvl in range(L):
        hl, wl, kb, ks, stream = _level(shapes_ptr, starts_ptr, lvl, kbase, NH, 2 * KY * ROW * ebytes, HEAD_MAJOR,
                                        L1_BYTES)
        if stream:  # constexpr False without L1_BYTES
            acc0, acc1, acc2, acc3, wsum = _level_entries(nb_ptr, loc_ptr, attn_ptr, r, lvl, L, P, rmask, wl, hl,
                                                          kb, ks, attn_scale, dx, dy, c, acc0, acc1, acc2, acc3, wsum,
                                                          MODE, ROW, KY, LVL, NP, ATTN_F16, True, IDOT, wscale, ASM)
        else:
            acc0, acc1, acc2, acc3, wsum = _level_entries(nb_ptr, loc_ptr, attn_ptr, r, lvl, L, P, rmask, wl, hl,
                                                          kb, ks, attn_scale, dx, dy, c, acc0, acc1, acc2, acc3, wsum,
                                                          MODE, ROW, KY, LVL, NP, ATTN_F16, False, IDOT, wscale, ASM)
    if IDOT:  # back to real sums
        back = (1.0 / wscale)[:, None, None]
        acc0 = acc0.to(tl.float32) * back
        acc1 = acc1.to(tl.float32) * back
        acc2 = acc2.to(tl.float32) * back
        acc3 = acc3.to(tl.float32) * back
    _store_slot_sums(out_ptr, acc0, acc1, acc2, acc3, wsum[:, None, None], C, NH, NQ, INV_NH, INV_NQ, ROWS,
                     out_scale, MODE, BLOCK_R, SPLIT, ROW, 2 * KY, HEAD_MAJOR, IDOT, FQ)


@triton.jit
def _slot_sum(x, RB: tl.constexpr, K: tl.constexpr, ROW: tl.constexpr):
    """[lanes, NCH, VW] in row-major lane order is [rows, K slots, ROW]: sum the slots of every row."""
    return tl.sum(tl.reshape(x, [RB, K, ROW]), axis=1)


@triton.jit
def _store_slot_sums(out_ptr, acc0, acc1, acc2, acc3, wsum, C, NH, NQ, INV_NH, INV_NQ, ROWS, out_scale,
                     MODE: tl.constexpr, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, ROW: tl.constexpr,
                     K: tl.constexpr, HEAD_MAJOR: tl.constexpr, REAL: tl.constexpr, FQ: tl.constexpr):
    """Sum the K slot accumulators of each row and store the rows of this program. REAL (int8): the accumulators
    already hold the sums w * q (int_dot), not add_packed_int8's biased ones."""
    RB: tl.constexpr = BLOCK_R // SPLIT
    k = tl.program_id(0) * RB + tl.arange(0, RB)
    rr, _ = _memory_row(tl.minimum(k, ROWS - 1), 1, NH, NQ, INV_NH, INV_NQ, HEAD_MAJOR, FQ)  # no key base used: S 1
    cc = tl.arange(0, ROW)[None, :]
    m = (k < ROWS)[:, None]
    if MODE == 2:  # per chunk: sum w * q = 2^23 * acc - 128 * sum w (the chunk's own weights), then the slots;
        # word w of a row holds channels 4w .. 4w+3 (fp16 out): one 8-byte store per word
        if not REAL:
            acc0 = packed_int8_result(acc0, wsum, 1.0)
            acc1 = packed_int8_result(acc1, wsum, 1.0)
            acc2 = packed_int8_result(acc2, wsum, 1.0)
            acc3 = packed_int8_result(acc3, wsum, 1.0)
        store_half_quads(out_ptr, rr[:, None] * (C // 4) + cc, _slot_sum(acc0, RB, K, ROW) * out_scale,
                         _slot_sum(acc1, RB, K, ROW) * out_scale, _slot_sum(acc2, RB, K, ROW) * out_scale,
                         _slot_sum(acc3, RB, K, ROW) * out_scale, m)
    else:
        res = _slot_sum(acc0.to(tl.float32), RB, K, ROW) * out_scale
        tl.store(out_ptr + rr[:, None] * C + cc, res.to(out_ptr.dtype.element_ty), mask=m)


def _prepare(value, locs, weights, precision, scales):
    """Storage tensors and the scales of one variant: (value, locations, weights, attn_scale, out_scale)."""
    if precision != "int8":
        return (*(float_storage(t, precision) for t in (value, locs, weights)), 1.0, 1.0)
    qv, sv = int8_input(OP, value, "value", scales)
    if weights.dtype == torch.int8 or (scales and "attention_weights" in scales):
        qw, sw = int8_input(OP, weights, "attention_weights", scales)
    else:
        qw, sw = weights.to(torch.float16).contiguous(), 1.0
    return qv, locs.to(torch.float16).contiguous(), qw, sw, sv


def value_neighbours(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                     corners: int = 2, bias: bool = False, head_major: bool = False) -> torch.Tensor:
    """The value as neighbour entries (bs, S, heads, corners, C), or (bs, heads, S, corners, C) with
    ``head_major``: entry[:, s, :, 2 dy + dx] = value[:, s + dx + dy * W]
    (W: the width of key s's level; dy only for corners = 4), zeros where that neighbour is off the map (s in the
    last column, or in the last map row). Pairs (2) and quads (4) cost 2x and 4x the value's memory. Indexed by the
    key itself (no per-level padding), so no host-side shape arithmetic and no device sync: the op stays
    capturable in a CUDA graph. Needs a contiguous value whose rows are whole int32 words (C * element size % 4
    == 0). ``bias`` (int8): every byte stored as q ^ 0x80, zeros too (what the int8 float path reads; int_dot
    reads the signed bytes)."""
    if corners not in (2, 4):
        raise ValueError(f"value_neighbours: corners must be 2 or 4, not {corners}")
    bs, s, nh, c = value.shape
    rw = c * value.element_size() // 4
    shape = (bs, nh, s, corners, rw) if head_major else (bs, s, nh, corners, rw)
    out = torch.empty(shape, dtype=torch.int32, device=value.device)
    n = bs * s * nh
    if n:
        block = max(1, 2048 // rw)
        _neighbours_prep_kernel[(triton.cdiv(n, block),)](
            value.view(torch.int32), out, spatial_shapes.to(torch.int32).contiguous(),
            level_start_index.to(torch.int32).contiguous(), s, nh, spatial_shapes.shape[0], n, reciprocal(s),
            reciprocal(nh), RW=rw, KY=corners // 2, BIAS=bias, BLOCK=block, HEAD_MAJOR=head_major,
            FQ=float_quotients(n), num_warps=4,
        )
    return out.view(value.dtype)


def launch_entries(v: torch.Tensor, shapes: torch.Tensor, starts: torch.Tensor, launch: Mapping) -> torch.Tensor:
    """The neighbour entries that the entry kernel of ``launch`` (_neighbour_launch) reads, from the value in its
    storage dtype (int32 words for int8): the op's prep pass, which benchmarks/msda_prep.py also times alone."""
    nb = value_neighbours(v, shapes, starts, 2 * launch["KY"], bias=launch["MODE"] == 2 and not launch["IDOT"],
                          head_major=launch["HEAD_MAJOR"])
    return nb.view(torch.int32) if launch["MODE"] == 2 else nb


def _neighbour_launch(cfg: Mapping, precision: str, v: torch.Tensor, nlevels: int, npts: int) -> dict | None:
    """Launch shape of the neighbour-entry kernel, or None where it does not apply: TUNING "corners" 1, fp32 (a
    128-B row is a line of its own anyway), int8 with C % 4 != 0, rows that are not a power of two of 4-byte int8
    words / fp16 elements, or tensors too large for 32-bit offsets once copied."""
    corners, c = cfg.get("corners", 1), v.shape[-1]
    if corners == 1 or precision == "fp32" or (c * v.element_size()) % 4 or v.data_ptr() % 4:
        return None
    elem = 4 if precision == "int8" else 2  # int8: packed int32 words
    row = c * v.element_size() // elem
    block_r = 32 * cfg["num_warps"]
    per_lane = max(1, min(row, cfg["lane_bytes"] // elem))  # a lane holds part of one slot (wider: measured slower)
    vw = min(per_lane, 16 // elem)
    split = corners * row // per_lane
    if (row != next_pow2(row) or per_lane != next_pow2(per_lane) or split > block_r
            or corners * v.numel() >= 2**31):
        return None
    lvl = bool(cfg.get("level_loads")) and npts == next_pow2(npts) and npts <= 32
    idot = bool(cfg.get("int_dot")) and precision == "int8" and corners == 2
    # IDOT's weight scale: a point's rounded corner weights sum to at most FIXED + 2 (|bytes| <= 128), so that a
    # row's int32 sum stays within L * P * (FIXED + 2) * 128 < 2^31
    fixed = float(min(32767, (2**31 - 1) // (128 * nlevels * npts) - 2))
    return dict(MODE=2 if precision == "int8" else _MODE[precision], BLOCK_R=block_r, SPLIT=split,
                NCH=per_lane // vw, VW=vw, ROW=row, KY=corners // 2, LVL=lvl, NP=npts if lvl else 1,
                **_order(cfg), IDOT=idot, FIXED=fixed, ASM=not interpreting(),
                num_warps=cfg["num_warps"])


def _order(cfg: Mapping) -> dict:
    """The kernels' HEAD_MAJOR and L1_BYTES from TUNING "head_major" and "l1_bytes" (see TUNING)."""
    return dict(HEAD_MAJOR=bool(cfg.get("head_major", False)), L1_BYTES=int(cfg.get("l1_bytes", 0)))


def ms_deform_attn_cuda(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Multi-scale deformable attention with the Triton kernel of one precision; returns (bs, nq, heads * C)."""
    check_launch(OP, precision, [value, sampling_locations, attention_weights])
    bs, s, nh, c = value.shape
    _, nq, _, nl, npts, _ = sampling_locations.shape
    v, loc, w, attn_scale, out_scale = _prepare(value, sampling_locations, attention_weights, precision, scales)
    out = torch.empty((bs, nq, nh * c), dtype=out_dtype(precision), device=value.device)
    if out.numel() == 0:
        return out
    shapes = spatial_shapes.to(torch.int32).contiguous()
    starts = level_start_index.to(torch.int32).contiguous()
    cfg = tuned(TUNING, precision)
    launch = _neighbour_launch(cfg, precision, v, nl, npts)
    if launch is not None:
        nb = launch_entries(v, shapes, starts, launch)
        grid = (triton.cdiv(bs * nq * nh * launch["SPLIT"], launch["BLOCK_R"]),)
        launch["ATTN_F16"] = w.dtype == torch.float16  # else int8 (with its scale)
        if launch["LVL"]:  # locations as int32 words (x, y), fp16 weights as their int16 bits (_level_point)
            loc = loc.view(torch.int32)
            w = w.view(torch.int16) if launch["ATTN_F16"] else w
        _ms_deform_attn_neighbours_kernel[grid](nb, shapes, starts, loc, w, out, s, nq, nh, c, nl, npts,
                                                bs * nq * nh, attn_scale, out_scale, reciprocal(nh), reciprocal(nq),
                                                FQ=float_quotients(bs * nq * nh), **launch)
        return out
    # the key order and L1 limit tune the kernel they were chosen for: a fallback from entries (rows that are not a
    # power of two) reads the value in key order (head-major measured slower for this kernel's fp16 / int8 rows)
    order = _order(cfg if cfg.get("corners", 1) == 1 else {})
    if order["HEAD_MAJOR"]:
        v = v.transpose(1, 2).contiguous()  # (bs, heads, S, C)
    packed = precision == "int8" and c % 4 == 0 and v.data_ptr() % 16 == 0
    if packed:
        v = v.view(torch.int32)  # 4 channels per word, unpacked in registers
    row = c // 4 if packed else c
    elem = 4 if packed else v.element_size()  # bytes per loaded element (packed int8: one int32 word)
    row_p2 = max(next_pow2(row), 2)
    per_lane = max(1, min(row_p2, cfg["lane_bytes"] // elem))  # elements of a row per lane
    vw = min(per_lane, 16 // elem)  # 16-byte loads
    rows = bs * nq * nh
    lanes = rows * (row_p2 // per_lane)
    block_r = 32 * cfg["num_warps"]
    _ms_deform_attn_kernel[(triton.cdiv(lanes, block_r),)](
        v, shapes, starts, loc, w, out, s, nq, nh, c, nl, npts, rows, attn_scale, out_scale, reciprocal(nh),
        reciprocal(nq), FQ=float_quotients(rows), MODE=2 if packed else _MODE[precision], BLOCK_R=block_r,
        SPLIT=row_p2 // per_lane, NCH=per_lane // vw, VW=vw, ROW=row, EVEN=row == row_p2, **order,
        num_warps=cfg["num_warps"],
    )
    return out
