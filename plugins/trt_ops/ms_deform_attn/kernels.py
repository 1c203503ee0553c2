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

x-pairs (TUNING "pairs"; off by default, selectable for int8 / fp16 / fp16x2, never used for fp32): with random
sampling locations every gathered corner row is its own L2 request, and for 32-byte int8 rows the request count,
not bytes, bounds the kernel (Nsight Compute: L2 ~87% busy at 245 M corner requests on the anchor). A prep
kernel (one pass over the value, part of the op's time) writes pairs[b, s, h] = (v[s], v[s + 1]) with zeros
after the last column of each map row (value_pairs); the pairs kernel then fetches both x-corners of a map row
with one load: 2 requests per point instead of 4 (a 64-byte int8 C=32 pair never straddles a 128-byte line).
Cost (SASS compiled offline for sm_90, int8 C=32, 16 B per lane): the point loop is 151 instructions per lane
with 2 128-bit loads vs 252 with 4 in the four-corner kernel, but a row takes 4 lanes instead of 2, so a row's
instructions per point rise 504 -> 604 (~1.1 ms of issue at the anchor if nothing else bounds it) while its
L2 requests halve. Memory: the pairs buffer is twice the value tensor, allocated per call. Applies where a row is a power of two of
int32 words (int8, C % 4 == 0) or fp16 elements; elsewhere the four-corner kernel runs. Measured on the H200
(session 5, run 7): int8 1.89 ms with pairs vs 1.87 ms without; Nsight Compute shows the L2 busy falling from 88%
to 69% and the instructions rising from 1.01 G to 1.26 G, i.e. the bound moved from L2 requests to issue, as the
count above predicted. Pairs pay only together with a cut in the per-lane point math.
"""

from collections.abc import Mapping

import torch
from bevdeploy.plugins.trt_ops.triton_util import (
    add_packed_int8,
    check_launch,
    float_storage,
    int8_input,
    next_pow2,
    out_dtype,
    packed_int8_result,
    tl,
    to_f32,
    triton,
    tuned,
)

OP = "ms_deform_attn"
_MODE = {"fp32": 0, "fp16": 0, "fp16x2": 1, "int8": 0}  # int8 uses mode 2 (packed words) when C % 4 == 0
# launch shape; benchmarks/ops.py --sweep varies it
# lane_bytes: bytes of a row per lane (16: a warp load covers whole rows; 128: one lane per 32-channel fp32 row)
# pairs: read the value as x-pairs (value_pairs, _ms_deform_attn_pairs_kernel) where it applies. Off: the run 7
# sweep (H200, session 5) measured int8 1.89 ms with pairs vs 1.87 without (1.83 with 32 bytes per lane): the L2
# requests halve (ncu: L2 throughput 88% -> 69%) but the kernel becomes issue-bound on the per-lane point math
# (1.26 G vs 1.01 G instructions), so it is not worth twice the value's memory
TUNING = {"num_warps": 4, "lane_bytes": 16, "pairs": False}
# "per_precision": {} keeps a per-precision default from overriding what an entry names
SWEEP = [{"lane_bytes": 16}, {"lane_bytes": 16, "num_warps": 8}, {"lane_bytes": 32}, {"lane_bytes": 64},
         {"lane_bytes": 128}, {"pairs": False, "per_precision": {}}, {"pairs": True, "per_precision": {}},
         {"pairs": True, "num_warps": 8, "per_precision": {}}]


@triton.jit
def _corner(value_ptr, row0, h, NH, x, y, dx: tl.constexpr, dy: tl.constexpr, wl, hl, w, inside, c, cmask,
            ROW: tl.constexpr, MODE: tl.constexpr, acc0, acc1, acc2, acc3, wsum):
    """Add one bilinear corner of every row (a (batch, query, head) pair) to the accumulators."""
    xx = x + dx
    yy = y + dy
    valid = inside & (xx >= 0) & (xx < wl) & (yy >= 0) & (yy < hl)
    idx = ((row0 + yy * wl + xx) * NH + h) * ROW
    v = tl.load(value_ptr + idx[:, None, None] + c, mask=valid[:, None, None] & cmask, other=0)
    return _accumulate(v, w, MODE, acc0, acc1, acc2, acc3, wsum)


@triton.jit
def _accumulate(v, w, MODE: tl.constexpr, acc0, acc1, acc2, acc3, wsum):
    """Add the loaded rows v, weighted by w (one weight per lane), to the accumulators of a MODE."""
    w3 = w[:, None, None]
    if MODE == 2:  # int8 packed 4 channels per int32 word (triton_util.add_packed_int8)
        acc0, acc1, acc2, acc3 = add_packed_int8(v, w3, acc0, acc1, acc2, acc3)
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
    x = tl.load(loc_ptr + base * 2, mask=rmask, other=0).to(tl.float32) * wl - 0.5
    y = tl.load(loc_ptr + base * 2 + 1, mask=rmask, other=0).to(tl.float32) * hl - 0.5
    aw = tl.load(attn_ptr + base, mask=rmask, other=0).to(tl.float32) * attn_scale
    inside = rmask & (x > -1.0) & (y > -1.0) & (x < wl) & (y < hl)
    x0f = tl.floor(x)
    y0f = tl.floor(y)
    return x0f.to(tl.int32), y0f.to(tl.int32), x - x0f, y - y0f, aw, inside


@triton.jit
def _row_lanes(ROWS, NH, NQ, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr):
    """This program's lanes: SPLIT neighbouring lanes per (batch, query, head) row r; per lane its row, its
    part of the row, the row mask, head, batch and its [lanes, NCH, VW] element offsets within the row."""
    q = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    r = q // SPLIT
    part = q % SPLIT
    c = (part * (NCH * VW))[:, None, None] + tl.arange(0, NCH)[None, :, None] * VW + tl.arange(0, VW)[None, None, :]
    return r, part, r < ROWS, r % NH, r // (NH * NQ), c


@triton.jit
def _zero_accumulators(BLOCK_R: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr, MODE: tl.constexpr):
    """acc0..acc3 (int8: one per byte of a word; else only acc0 is used) and wsum, the corner weights' sum for
    the int8 +128 offset."""
    acc_dt = tl.float16 if MODE == 1 else tl.float32
    zero = tl.zeros([BLOCK_R, NCH, VW], dtype=acc_dt)
    return zero, zero, zero, zero, tl.zeros([BLOCK_R], dtype=tl.float32)


@triton.jit
def _level(shapes_ptr, starts_ptr, lvl, b, S):
    """Level lvl's height, width and first key of every row's batch."""
    return tl.load(shapes_ptr + lvl * 2), tl.load(shapes_ptr + lvl * 2 + 1), b * S + tl.load(starts_ptr + lvl)


@triton.jit
def _ms_deform_attn_kernel(
    value_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
    S, NQ, NH, C, L, P, ROWS, attn_scale, out_scale,
    MODE: tl.constexpr, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr,
    ROW: tl.constexpr, EVEN: tl.constexpr,
):
    """One program per BLOCK_R lanes; SPLIT neighbouring lanes share one (batch, query, head) row, each lane
    keeping NCH * VW of its channels (16-byte chunks) in registers and walking the L * P points itself, so
    there is no cross-lane reduction. SPLIT trades per-lane point math (coordinates, weights, masks, done by
    every lane of a row) against L1 wavefronts: one warp load covers whole rows when a lane holds 16 bytes
    (SPLIT = row bytes / 16), but a lane holding the whole row (SPLIT = 1) makes every load instruction touch
    32 different lines. The [lanes, NCH, VW] tile puts the lane dimension on the threads."""
    r, part, rmask, h, b, c = _row_lanes(ROWS, NH, NQ, BLOCK_R, SPLIT, NCH, VW)
    cmask = (c < ROW) | EVEN
    acc0, acc1, acc2, acc3, wsum = _zero_accumulators(BLOCK_R, NCH, VW, MODE)
    for lvl in range(L):
        hl, wl, row0 = _level(shapes_ptr, starts_ptr, lvl, b, S)
        for pt in range(P):
            x0, y0, fx, fy, aw, inside = _sample_point(loc_ptr, attn_ptr, r * (L * P) + lvl * P + pt, rmask, wl, hl,
                                                       attn_scale)
            gx = 1.0 - fx
            wy0 = (1.0 - fy) * aw
            wy1 = fy * aw
            acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, row0, h, NH, x0, y0, 0, 0, wl, hl, gx * wy0, inside, c,
                                             cmask, ROW, MODE, acc0, acc1, acc2, acc3, wsum)
            acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, row0, h, NH, x0, y0, 1, 0, wl, hl, fx * wy0, inside, c,
                                             cmask, ROW, MODE, acc0, acc1, acc2, acc3, wsum)
            acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, row0, h, NH, x0, y0, 0, 1, wl, hl, gx * wy1, inside, c,
                                             cmask, ROW, MODE, acc0, acc1, acc2, acc3, wsum)
            acc0, acc1, acc2, acc3, wsum = _corner(value_ptr, row0, h, NH, x0, y0, 1, 1, wl, hl, fx * wy1, inside, c,
                                             cmask, ROW, MODE, acc0, acc1, acc2, acc3, wsum)
    m = rmask[:, None, None] & cmask
    if MODE == 2:  # word w of a row holds channels 4w .. 4w+3
        optr = out_ptr + r[:, None, None] * C + 4 * c
        odt = out_ptr.dtype.element_ty
        ws = wsum[:, None, None]
        tl.store(optr, packed_int8_result(acc0, ws, out_scale).to(odt), mask=m)
        tl.store(optr + 1, packed_int8_result(acc1, ws, out_scale).to(odt), mask=m)
        tl.store(optr + 2, packed_int8_result(acc2, ws, out_scale).to(odt), mask=m)
        tl.store(optr + 3, packed_int8_result(acc3, ws, out_scale).to(odt), mask=m)
    else:
        res = acc0.to(tl.float32) * out_scale
        tl.store(out_ptr + r[:, None, None] * C + c, res.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _pairs_prep_kernel(src_ptr, dst_ptr, shapes_ptr, starts_ptr, S, NH, L, N, RW: tl.constexpr,
                       BLOCK: tl.constexpr):
    """One pass over the value as int32 words: row i = (batch, key s, head) of RW words becomes the pair
    (v[s], v[s + 1]), the second row zero where s is the last column of its map row (or of the value).
    Reads and writes run along i, so both are coalesced."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < N
    s = (i // NH) % S
    start = tl.zeros([BLOCK], dtype=tl.int32)
    wl = tl.full([BLOCK], 1, tl.int32)
    for lvl in range(L):  # level_start_index ascends: the last start <= s is the key's level
        st = tl.load(starts_ptr + lvl)
        sel = s >= st
        start = tl.where(sel, st, start)
        wl = tl.where(sel, tl.load(shapes_ptr + lvl * 2 + 1), wl)
    nxt = m & ((s - start) % wl != wl - 1) & (s + 1 < S)
    col = tl.arange(0, RW)[None, :]
    v0 = tl.load(src_ptr + i[:, None] * RW + col, mask=m[:, None], other=0)
    v1 = tl.load(src_ptr + (i + NH)[:, None] * RW + col, mask=nxt[:, None], other=0)
    dst = dst_ptr + i[:, None] * (2 * RW) + col
    tl.store(dst, v0, mask=m[:, None])
    tl.store(dst + RW, v1, mask=m[:, None])


@triton.jit
def _pair_row(pairs_ptr, e, h, NH, wl, yy, hl, w, inside, c, ROW: tl.constexpr, MODE: tl.constexpr,
              acc0, acc1, acc2, acc3, wsum):
    """Add both x-corners of map row yy (one pair: one L2 request) to the accumulators; w is the lane's
    weight (its half of the pair). Only y needs a validity test: the pair holds zeros outside the map in x."""
    valid = inside & (yy >= 0) & (yy < hl)
    idx = ((e + yy * wl) * NH + h) * (2 * ROW)
    v = tl.load(pairs_ptr + idx[:, None, None] + c, mask=valid[:, None, None], other=0)
    return _accumulate(v, w, MODE, acc0, acc1, acc2, acc3, wsum)


@triton.jit
def _half_sum(x, RB: tl.constexpr, ROW: tl.constexpr):
    """[lanes, NCH, VW] in row-major lane order is [rows, 2 halves, ROW]: sum the two halves of every row."""
    return tl.sum(tl.reshape(x, [RB, 2, ROW]), axis=1)


@triton.jit
def _ms_deform_attn_pairs_kernel(
    pairs_ptr, shapes_ptr, starts_ptr, loc_ptr, attn_ptr, out_ptr,
    S, NQ, NH, C, L, P, ROWS, attn_scale, out_scale,
    MODE: tl.constexpr, BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, NCH: tl.constexpr, VW: tl.constexpr,
    ROW: tl.constexpr,
):
    """As _ms_deform_attn_kernel, but the SPLIT lanes of a row cover a whole x-pair (2 * ROW elements, see
    value_pairs), so one warp load fetches both x-corners of a map row: 2 loads per point instead of 4. The
    first SPLIT / 2 lanes hold v[x0] and weight it with 1 - fx, the others v[x0 + 1] with fx; x0 = -1 reads the
    pair of key 0 with the weights shifted (fx on v[0], 0 on v[1]). The halves are summed once per row."""
    r, part, rmask, h, b, c = _row_lanes(ROWS, NH, NQ, BLOCK_R, SPLIT, NCH, VW)
    second = part >= SPLIT // 2
    acc0, acc1, acc2, acc3, wsum = _zero_accumulators(BLOCK_R, NCH, VW, MODE)
    for lvl in range(L):
        hl, wl, row0 = _level(shapes_ptr, starts_ptr, lvl, b, S)
        for pt in range(P):
            x0, y0, fx, fy, aw, inside = _sample_point(loc_ptr, attn_ptr, r * (L * P) + lvl * P + pt, rmask, wl, hl,
                                                       attn_scale)
            left = x0 < 0
            wx = tl.where(second, tl.where(left, 0.0, fx), tl.where(left, fx, 1.0 - fx)) * aw
            e = row0 + tl.maximum(x0, 0)
            acc0, acc1, acc2, acc3, wsum = _pair_row(pairs_ptr, e, h, NH, wl, y0, hl, wx * (1.0 - fy), inside, c,
                                                     ROW, MODE, acc0, acc1, acc2, acc3, wsum)
            acc0, acc1, acc2, acc3, wsum = _pair_row(pairs_ptr, e, h, NH, wl, y0 + 1, hl, wx * fy, inside, c,
                                                     ROW, MODE, acc0, acc1, acc2, acc3, wsum)
    _store_halves(out_ptr, acc0, acc1, acc2, acc3, wsum, C, ROWS, out_scale, MODE, BLOCK_R, SPLIT, ROW)


@triton.jit
def _store_halves(out_ptr, acc0, acc1, acc2, acc3, wsum, C, ROWS, out_scale, MODE: tl.constexpr,
                  BLOCK_R: tl.constexpr, SPLIT: tl.constexpr, ROW: tl.constexpr):
    """Sum the two halves of each row's pair accumulators and store the rows of this program."""
    rr = tl.program_id(0) * (BLOCK_R // SPLIT) + tl.arange(0, BLOCK_R // SPLIT)
    cc = tl.arange(0, ROW)[None, :]
    m = (rr < ROWS)[:, None]
    odt = out_ptr.dtype.element_ty
    if MODE == 2:  # per lane: sum w * q = 2^23 * acc - 128 * sum w (the lane's own weights), then the halves
        ws = wsum[:, None, None]
        optr = out_ptr + rr[:, None] * C + 4 * cc
        tl.store(optr, (_half_sum(packed_int8_result(acc0, ws, 1.0), BLOCK_R // SPLIT, ROW) * out_scale).to(odt), mask=m)
        tl.store(optr + 1, (_half_sum(packed_int8_result(acc1, ws, 1.0), BLOCK_R // SPLIT, ROW) * out_scale).to(odt),
                 mask=m)
        tl.store(optr + 2, (_half_sum(packed_int8_result(acc2, ws, 1.0), BLOCK_R // SPLIT, ROW) * out_scale).to(odt),
                 mask=m)
        tl.store(optr + 3, (_half_sum(packed_int8_result(acc3, ws, 1.0), BLOCK_R // SPLIT, ROW) * out_scale).to(odt),
                 mask=m)
    else:
        res = _half_sum(acc0.to(tl.float32), BLOCK_R // SPLIT, ROW) * out_scale
        tl.store(out_ptr + rr[:, None] * C + cc, res.to(odt), mask=m)

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


def value_pairs(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor) -> torch.Tensor:
    """The value as x-pairs (bs, S, heads, 2, C): pairs[:, s, :, 0] = value[:, s], pairs[:, s, :, 1] = value[:, s + 1]
    or zeros where key s ends its map row. Indexed by the key itself (no per-level column of padding), so no
    host-side shape arithmetic and no device sync: the op stays capturable in a CUDA graph. Needs a contiguous
    value whose rows are whole int32 words (C * element size % 4 == 0) and a power-of-two number of words."""
    bs, s, nh, c = value.shape
    rw = c * value.element_size() // 4
    pairs = torch.empty((bs, s, nh, 2, rw), dtype=torch.int32, device=value.device)
    n = bs * s * nh
    if n:
        block = max(1, 2048 // rw)
        _pairs_prep_kernel[(triton.cdiv(n, block),)](
            value.view(torch.int32), pairs, spatial_shapes.to(torch.int32).contiguous(),
            level_start_index.to(torch.int32).contiguous(), s, nh, spatial_shapes.shape[0], n, RW=rw, BLOCK=block,
            num_warps=4,
        )
    return pairs.view(value.dtype)


def _pair_launch(cfg: Mapping, precision: str, v: torch.Tensor) -> dict | None:
    """Launch shape of the x-pair kernel, or None where it does not apply: TUNING "pairs" off, fp32 (a pair of
    128-B rows is two lines anyway), int8 with C % 4 != 0, rows that are not a power of two of 4-byte int8 words
    / fp16 elements, or tensors too large for 32-bit offsets once doubled."""
    c = v.shape[-1]
    if not cfg.get("pairs") or precision == "fp32" or (c * v.element_size()) % 4 or v.data_ptr() % 4:
        return None
    elem = 4 if precision == "int8" else 2  # int8: packed int32 words
    row = c * v.element_size() // elem
    block_r = 32 * cfg["num_warps"]
    per_lane = max(1, min(row, cfg["lane_bytes"] // elem))  # a lane never straddles the two rows of a pair
    vw = min(per_lane, 16 // elem)
    split = 2 * row // per_lane
    if row != next_pow2(row) or per_lane != next_pow2(per_lane) or split > block_r or 2 * v.numel() >= 2**31:
        return None
    return dict(MODE=2 if precision == "int8" else _MODE[precision], BLOCK_R=block_r, SPLIT=split,
                NCH=per_lane // vw, VW=vw, ROW=row, num_warps=cfg["num_warps"])


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
    launch = _pair_launch(cfg, precision, v)
    if launch is not None:
        pairs = value_pairs(v, shapes, starts)
        pairs = pairs.view(torch.int32) if precision == "int8" else pairs
        grid = (triton.cdiv(bs * nq * nh * launch["SPLIT"], launch["BLOCK_R"]),)
        _ms_deform_attn_pairs_kernel[grid](pairs, shapes, starts, loc, w, out, s, nq, nh, c, nl, npts,
                                           bs * nq * nh, attn_scale, out_scale, **launch)
        return out
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
        v, shapes, starts, loc, w, out, s, nq, nh, c, nl, npts, rows, attn_scale, out_scale,
        MODE=2 if packed else _MODE[precision], BLOCK_R=block_r, SPLIT=row_p2 // per_lane, NCH=per_lane // vw,
        VW=vw, ROW=row, EVEN=row == row_p2, num_warps=cfg["num_warps"],
    )
    return out
