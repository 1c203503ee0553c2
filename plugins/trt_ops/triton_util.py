"""Shared plumbing for the Triton kernels of every op: precision names, dtype handling, launch checks.

Triton is an optional dependency (extra ``gpu``): without it the kernels modules still import (so the
CPU-only package works) and every ``<op>_cuda`` call raises one clear ``BevDeployError``.

Precision variants, the same for every op:
- ``fp32``: fp32 storage and arithmetic.
- ``fp16``: fp16 storage, fp32 arithmetic/accumulation, fp16 output.
- ``fp16x2``: fp16 storage and fp16 arithmetic without upcast (the products and sums of the gathered
  values), so the compiler may pair them into half2 instructions; coordinates stay fp32.
- ``int8``: the main data input(s) arrive as int8 with a per-tensor scale (``real = q * scale``, TensorRT's
  convention); they are dequantised in the kernel, accumulated in fp32 (int32 where both factors are
  integers) and written as fp16.
"""

from __future__ import annotations

import functools
import math
import os
import types
from collections.abc import Mapping

import torch
from bevdeploy import BevDeployError

from .layouts import vector_block

PRECISIONS = ("fp32", "fp16", "fp16x2", "int8")
INT8_OUT_DTYPE = torch.float16

try:  # optional: the package works on CPU without Triton
    import triton
    import triton.language as tl

    TRITON_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on the environment
    TRITON_ERROR = str(exc)

    def _missing_jit(fn=None, **_kwargs):
        def wrap(f):
            return f

        return wrap(fn) if fn is not None else wrap

    triton = types.SimpleNamespace(jit=_missing_jit, cdiv=lambda a, b: -(-a // b), next_power_of_2=None)
    tl = types.SimpleNamespace(constexpr=object)


@triton.jit
def to_f32(v):
    """Widen a loaded tensor to fp32; int8 through the exponent trick (an add on the bits of 1.5 * 2^23 and
    one float subtract) instead of the quarter-rate integer-to-float conversion."""
    if v.dtype == tl.int8:
        out = small_int_to_f32(v.to(tl.int32))
    else:
        out = v.to(tl.float32)
    return out


@triton.jit
def small_int_to_f32(v):
    """fp32 of an int32 tensor whose values lie in (-2^22, 2^22) (e.g. int8 values): the exponent trick of to_f32."""
    return (v + 0x4B400000).to(tl.float32, bitcast=True) - 12582912.0


# Packed int8: four int8 channels read as one int32 word and summed without a conversion instruction. Each word is
# XORed with 0x80808080 once (byte k becomes q + 128 in [0, 255]); byte k is then the fp32 denormal
# (q + 128) * 2^-149 after one shift-and-mask (byte_as_denormal), and the weight, pre-scaled by 2^126, makes every
# product a normal number w * (q + 128) * 2^-23, exact to fp32 rounding. The sum of the weights (wsum) removes
# the +128 at the end (packed_int8_result). A masked-off word reads 0, i.e. q = 0 for all four channels, so it is
# counted in wsum like any other. By hand count about 2.75 instructions per byte and corner instead of 4 - 5
# through to_f32; measured (ncu, rotate int8 kCHW32, NOTES-ops run 17): 20% fewer instructions per call.


@triton.jit
def bias_int8_words(words):
    """Each int8 byte q of the int32 words as the unsigned byte q + 128 (XOR 0x80808080)."""
    return words ^ -2139062144  # 0x80808080


@triton.jit
def byte_as_denormal(words, k: tl.constexpr):
    """Byte k of each (already XORed) int32 word as the fp32 denormal (q + 128) * 2^-149: one shift-and-mask."""
    if k == 0:
        bits = words & 0xFF
    elif k == 3:  # a logical shift leaves only the byte
        bits = words.to(tl.uint32, bitcast=True) >> 24
    else:
        bits = (words >> (8 * k)) & 0xFF
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def add_packed_int8(words, w, acc0, acc1, acc2, acc3, BIASED: tl.constexpr = False):
    """acc_k += w * byte k of ``words`` (int32, 4 int8 channels each; w broadcast to words' shape): the sum of
    w * (q + 128) * 2^-23 per channel. The caller adds w to its weight sum too. BIASED: the words already hold
    q ^ 0x80 (= q + 128 as an unsigned byte; bias_int8_words), e.g. written so by a prep pass."""
    if BIASED:
        v = words
    else:
        v = bias_int8_words(words)
    ws = w * 8.507059173023462e37  # 2^126
    acc0 += ws * byte_as_denormal(v, 0)
    acc1 += ws * byte_as_denormal(v, 1)
    acc2 += ws * byte_as_denormal(v, 2)
    acc3 += ws * byte_as_denormal(v, 3)
    return acc0, acc1, acc2, acc3


@triton.jit
def fixed_pair(w_lo, w_hi):
    """Two fp32 weights, already scaled to |w| <= 32767, rounded to the nearest integer and packed as the int16
    halves of one int32 (w_lo in the low half): the 16-bit operand of dp2a (dot_byte_pairs). Adding 1.5 * 2^23
    leaves round(w) in the low mantissa bits (two's complement in the low 16 bits) without a conversion."""
    lo = (w_lo + 12582912.0).to(tl.int32, bitcast=True) & 0xFFFF
    return lo | ((w_hi + 12582912.0).to(tl.int32, bitcast=True) << 16)


@triton.jit
def dot_byte_pairs(a, b, wp, acc0, acc1, acc2, acc3, ASM: tl.constexpr):
    """acc_k += lo16(wp) * byte_k(a) + hi16(wp) * byte_k(b), k = 0 .. 3, for int32 words a, b holding four signed int8
    channels each (the same channels of two rows) and wp = fixed_pair(weight of a, weight of b): int32 sums, exact.
    ASM (the GPU): per word two byte permutes and four dp2a (two-way 16 x 8-bit dot products), where the float path
    (add_packed_int8) spends a shift-and-mask and an FFMA per byte and row; else (Triton's interpreter, which runs no
    inline assembly) the same sums in integer operations."""
    if ASM:
        acc0, acc1, acc2, acc3 = tl.inline_asm_elementwise(
            asm="""{
            .reg .b32 t0, t1;
            prmt.b32 t0, $4, $5, 0x5140;
            prmt.b32 t1, $4, $5, 0x7362;
            dp2a.lo.s32.s32 $0, $6, t0, $7;
            dp2a.hi.s32.s32 $1, $6, t0, $8;
            dp2a.lo.s32.s32 $2, $6, t1, $9;
            dp2a.hi.s32.s32 $3, $6, t1, $10;
            }""",
            constraints="=r,=r,=r,=r,r,r,r,r,r,r,r", args=[a, b, wp, acc0, acc1, acc2, acc3],
            dtype=(tl.int32, tl.int32, tl.int32, tl.int32), is_pure=True, pack=1)
    else:
        wl = (wp << 16) >> 16
        wh = wp >> 16
        acc0 += wl * ((a << 24) >> 24) + wh * ((b << 24) >> 24)
        acc1 += wl * ((a << 16) >> 24) + wh * ((b << 16) >> 24)
        acc2 += wl * ((a << 8) >> 24) + wh * ((b << 8) >> 24)
        acc3 += wl * (a >> 24) + wh * (b >> 24)
    return acc0, acc1, acc2, acc3


@triton.jit
def packed_int8_result(acc, wsum, scale):
    """One accumulator of add_packed_int8 as the real sum: (sum w * q) * scale, with wsum = sum w."""
    return (acc * 8388608.0 - 128.0 * wsum) * scale


@triton.jit
def interleave_bytes(r0, r1, r2, r3, ROWS: tl.constexpr, COLS: tl.constexpr):
    """[ROWS, COLS / 4] results of the four bytes of each word -> [ROWS, COLS] in channel order (4w + k)."""
    return tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), [ROWS, COLS])


@triton.jit
def half_pair_bits(lo, hi):
    """fp32 tensors lo, hi rounded to fp16 (to nearest even) and packed into one int32 each (lo in the low half: a
    half2 in memory). On the GPU one cvt.rn.f16x2.f32, where the two conversions, masks and shift take 4 - 5
    instructions (offline: the int8 kCHW4 sampler rows 32 fewer)."""
    if PTX:
        bits = tl.inline_asm_elementwise("cvt.rn.f16x2.f32 $0, $2, $1;", "=r,r,r", [lo, hi], dtype=tl.int32,
                                         is_pure=True, pack=1)
    else:
        a = lo.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
        bits = a | (hi.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32) << 16)
    return bits


@triton.jit
def store_packed_int8_words(out_ptr, word_offs, acc0, acc1, acc2, acc3, wsum, scale, mask):
    """Store the four add_packed_int8 sums of each word as fp16 channels 4w .. 4w + 3 of an fp16 output with one
    8-byte store per word at out_ptr + 4 * word_offs, without interleave_bytes (whose join and reshape Triton
    does through shared memory, with barriers). Pays where neighbouring lanes' words are neighbours in memory
    (short vectors: kCHW4); where a pixel's words are (kCHW32) the interleave's 16-byte stores measured faster
    (TUNING "vec_word_store", NOTES-ops items 20 - 21)."""
    store_half_quads(out_ptr, word_offs, packed_int8_result(acc0, wsum, scale), packed_int8_result(acc1, wsum, scale),
                     packed_int8_result(acc2, wsum, scale), packed_int8_result(acc3, wsum, scale), mask)


@triton.jit
def store_half_quads(out_ptr, word_offs, r0, r1, r2, r3, mask):
    """Store fp32 tensors r0 .. r3 as the fp16 elements 4w .. 4w + 3 of an fp16 output, w = word_offs: one 8-byte
    store each, where four 2-byte stores of stride 8 bytes would each write part of a sector (the L2 takes every
    such partial write on its own: NOTES-ops item 24)."""
    lo = half_pair_bits(r0, r1)
    hi = half_pair_bits(r2, r3)
    quad = (lo.to(tl.int64) & 0xFFFFFFFF) | (hi.to(tl.int64) << 32)
    tl.store(out_ptr.to(tl.pointer_type(tl.int64)) + word_offs, quad, mask=mask)


@triton.jit
def add_half_pairs(words, w, acc0, acc1, HALF_MATH: tl.constexpr):
    """acc0 += w * the low fp16 of each int32 word, acc1 += w * the high one (a pixel's two channels of kCHW2):
    fp16 products and sums (HALF_MATH, fp16 accumulators and w) or fp32 ones."""
    lo = (words & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True)
    hi = (words >> 16).to(tl.int16).to(tl.float16, bitcast=True)
    if HALF_MATH:
        wh = w.to(tl.float16)
        acc0 += wh * lo
        acc1 += wh * hi
    else:
        acc0 += w * lo.to(tl.float32)
        acc1 += w * hi.to(tl.float32)
    return acc0, acc1


@triton.jit
def sampler_zeros(BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, PACKED: tl.constexpr, HALF_MATH: tl.constexpr):
    """Accumulators (a0, a1, a2, a3, wsum) of a sampling kernel's [pixels, channels] tile. PACKED (channels per
    int32 word, packed_words): a0 .. a(PACKED - 1) are the [pixels, channels / PACKED] sums of each word's channels
    (int8: add_packed_int8, with wsum the weights' sum; fp16: add_half_pairs); else a0 alone is used. fp16
    accumulators for HALF_MATH, fp32 otherwise."""
    COLS: tl.constexpr = BLOCK_C // PACKED if PACKED else BLOCK_C
    if HALF_MATH:
        z = tl.zeros([BLOCK_P, COLS], dtype=tl.float16)
    else:
        z = tl.zeros([BLOCK_P, COLS], dtype=tl.float32)
    return z, z, z, z, tl.zeros([BLOCK_P], dtype=tl.float32)


@triton.jit
def corner_pair(i0, fr, size):
    """One axis of a bilinear / trilinear sample under zeros padding: the corners i0 and i0 + 1 (weights 1 - fr
    and fr; a corner off [0, size) weighs 0) as the in-bounds pair b, b + 1 with b = clamp(i0, 0, size - 2).
    Returns (b, weight at b, weight at b + 1). The gathers then need no masks, and the second corner's address is
    the first's plus a constant, which the load takes as an immediate offset instead of a 64-bit address
    computation of its own (offline sm_90 SASS: 12 - 36% fewer instructions; the samplers' TUNING "pairs" says
    where that measured faster). For size 1, b + 1 is off the map and its weight may be nonzero: the caller must
    not read it (a masked load reads 0)."""
    b = tl.minimum(tl.maximum(i0, 0), tl.maximum(size - 2, 0))
    lo = 1.0 - fr
    w0 = tl.where(i0 == b, lo, tl.where(i0 + 1 == b, fr, 0.0))
    w1 = tl.where(i0 == b, fr, tl.where(i0 == b + 1, lo, 0.0))
    return b, w0, w1


@triton.jit
def tile_ptrs(base, chan, off, PTR_FIRST: tl.constexpr):
    """A sampler's [pixels, channels] pointers base + chan ([1, channels] offsets) + off ([pixels] offsets). Else
    the int32 offsets are summed before one 64-bit pointer add per element (the samplers' run-20 form); PTR_FIRST
    makes a pointer per pixel first and adds the channel offsets to it, which the memory instruction takes as an
    immediate where they are compile-time constants (the channel stride as a constexpr: offline sm_90 SASS of the
    linear grid sampler 25 - 35% fewer instructions)."""
    if PTR_FIRST:
        return (base + off)[:, None] + chan
    else:
        return base + (chan + off[:, None])


@triton.jit
def plane_tiles(in_ptr, out_ptr, first, c, c_start, nchan, plane, oplane, BLOCK_C: tl.constexpr,
                STATIC: tl.constexpr):
    """A linear-layout sampler program's planes for tile_ptrs(PTR_FIRST): (src, dst, input offsets, output offsets),
    src / dst the program's first input / output plane (plane index ``first``, sizes ``plane`` / ``oplane``) and the
    offsets [1, BLOCK_C] of its channels ``c`` = c_start + arange(BLOCK_C) (of ``nchan``) from them. STATIC (plane
    sizes given as constexprs, the blocks dividing the channels): constants, which loads and stores take as
    immediates; else the input's are clamped to the last channel (masked there, or read by unmasked corner pairs
    and not stored)."""
    lane = tl.arange(0, BLOCK_C)
    rel = lane if STATIC else tl.minimum(c, nchan - 1) - c_start
    return in_ptr + first * plane, out_ptr + first * oplane, (rel * plane)[None, :], (lane * oplane)[None, :]


@triton.jit
def near_far(coord, size):
    """One axis of a trilinear sample under zeros padding, the nearer corner first: (near, weight, far, weight) for
    the source coordinate ``coord``, with near = round(coord), far its neighbour on coord's side, both clamped into
    [0, size) and a corner off the map weighing 0, so that no gather needs a mask. The same sum as floor's pair
    (i0, i0 + 1), ordered so that a warp's near gathers stay in one slice where samples sit near slice centres
    (a warp that keeps z, as BEV temporal alignment does): with floor, rounding noise around the centres splits
    every gather of such a warp over two slices."""
    r = tl.floor(coord + 0.5)
    d = coord - r
    near = r.to(tl.int32)
    far = tl.where(d >= 0, near + 1, near - 1)
    ad = tl.abs(d)
    w_near = tl.where((near >= 0) & (near < size), 1.0 - ad, 0.0)
    w_far = tl.where((far >= 0) & (far < size), ad, 0.0)
    hi = tl.maximum(size - 1, 0)
    return tl.minimum(tl.maximum(near, 0), hi), w_near, tl.minimum(tl.maximum(far, 0), hi), w_far


# quotient()'s float path is exact for dividends below this (the error analysis in its docstring)
QUOTIENT_MAX = 1 << 22


def float_quotients(count: int) -> bool:
    """Whether quotient() may take its float path for every dividend below ``count`` (a launch's programs, pixels or
    rows); the launch passes the answer as the kernel's FQ constexpr."""
    return count <= QUOTIENT_MAX


def reciprocal(n: int) -> float:
    """1 / n for quotient()'s ``inv_n`` (1.0 for an empty extent, whose quotients are never used)."""
    return 1.0 / n if n > 0 else 1.0


@triton.jit
def quotient(t, n, inv_n, FLOAT: tl.constexpr):
    """t // n for 0 <= t and 1 <= n, ``inv_n`` = 1 / n (reciprocal) from the launch. A signed integer division by a
    run-time value is ~25 instructions on sm_90 (offline SASS; box_tile's three of them cost grid 3D fp16 kCHW32 38%
    more executed instructions, NOTES-ops item 45). FLOAT (float_quotients): the quotient of the fp32 product
    (t + 0.5) * inv_n, four instructions. Exact: (t + 0.5) / n lies at least 0.5 / n from an integer, and the
    product's error (under 2^-23 of it: inv_n's rounding and the product's) stays below that while t + 0.5 < 2^22
    (QUOTIENT_MAX); t + 0.5 itself is exact in fp32 there. Else the integer division."""
    if FLOAT:
        return ((t.to(tl.float32) + 0.5) * inv_n).to(tl.int32)
    else:
        return t // n


def box_launch(wo: int, ho: int, do: int, tx: int, ty: int, tz: int) -> tuple[int, float, float] | None:
    """(programs, 1 / nx, 1 / ny) of a sampler launch in boxes of tz x ty x tx output pixels over a do x ho x wo
    output (nx, ny: the boxes along a row and a column), for box_tile; None where the programs exceed QUOTIENT_MAX
    (the caller then takes runs of pixels instead)."""
    nx, ny = -(-wo // tx), -(-ho // ty)
    programs = nx * ny * -(-do // tz)
    return (programs, reciprocal(nx), reciprocal(ny)) if float_quotients(programs) else None


def box_or_runs(npix: int, wo: int, ho: int, do: int, block_p: int, ty: int, tz: int) -> tuple[int, int, float, float]:
    """(rows per box, programs, 1 / nx, 1 / ny) of a sampler launch over ``npix`` output pixels (do x ho x wo):
    boxes of tz x ty x (block_p / (ty * tz)) pixels where ``ty`` > 0 and box_launch allows them, else runs of
    ``block_p`` consecutive pixels (rows 0, reciprocals unused)."""
    boxes = box_launch(wo, ho, do, block_p // (ty * tz), ty, tz) if ty else None
    return (ty, *boxes) if boxes else (0, -(-npix // block_p), 1.0, 1.0)


@triton.jit
def box_pixels(bx, by, bz, WO, HO, DO, TX: tl.constexpr, TY: tl.constexpr, TZ: tl.constexpr):
    """The output pixels of box (bx, by, bz) (box_tile), one per lane in x-fastest order: their column, row and
    slice, and whether they lie on the do x ho x wo output (the last boxes along each axis may overhang it; with
    one slice per box, TZ 1, the launch has a box per slice, so z never does)."""
    i = tl.arange(0, TZ * TY * TX)
    ox = bx * TX + i % TX
    if TZ == 1:
        oy = by * TY + i // TX
        oz = bz + tl.zeros_like(i)
        inside = (ox < WO) & (oy < HO)
    else:
        oy = by * TY + (i // TX) % TY
        oz = bz * TZ + i // (TX * TY)
        inside = (ox < WO) & (oy < HO) & (oz < DO)
    return ox, oy, oz, inside


@triton.jit
def box_tile(t, WO, HO, TX: tl.constexpr, TY: tl.constexpr, INV_NX, INV_NY):
    """Program ``t``'s box (x, y, z: which box along a row, a column, the depth) for box_launch's launch, the
    quotients by the run-time box counts from their fp32 reciprocals (quotient; offline SASS of grid 3D fp16 kCHW32
    in 1 x 4 boxes: 424 instructions with integer divisions against 312 in runs of pixels; this way 336)."""
    nx = (WO + (TX - 1)) // TX
    ny = (HO + (TY - 1)) // TY
    q = quotient(t, nx, INV_NX, True)
    tz = quotient(q, ny, INV_NY, True)
    return t - q * nx, q - tz * ny, tz


@triton.jit
def even_row_first(y0):
    """Which of the rows y0 and y0 + 1 a sampler gathers first (0 or 1, per pixel) under TUNING "row_parity": the
    even one. A warp's 32 pixels along an output row cross source rows where the grid turns (a 3-degree yaw crosses
    1.7 rows in 32 pixels), so gathering row y0 touches every row the warp crosses, and so does y0 + 1; gathering
    the even row of the pair first, then the odd one, puts each load on rows of one parity (modelled by
    benchmarks/gather_lines.py: 29% fewer 128-byte lines per load for the 3D anchor's fp16 gathers). Measured
    (NOTES-ops item 45): 19% fewer L1 sectors and 3 - 8% less time for the 2-byte rows; slower for int8 vectors,
    whose L1 hit rate it lowers. The sum is the same, the two rows added in the other order."""
    return y0 & 1


@triton.jit
def pair_row(K: tl.constexpr, yb, wy0, wy1, PITCH, PARITY: tl.constexpr):
    """Row K (0 first, 1 second) of a pixel's in-bounds corner_pair rows yb, yb + 1 along y: (its offset from row
    yb, ``PITCH`` a row's elements or words; its weight). PARITY: the even row first (even_row_first), the offset
    then a [pixels, 1] tile; else row yb + K, the offset a constant."""
    if PARITY:
        first = even_row_first(yb)
        d = first if K == 0 else 1 - first
        return (d * PITCH)[:, None], tl.where(d == 1, wy1, wy0)
    else:
        return K * PITCH, (wy1 if K == 1 else wy0)


@triton.jit
def bilinear_corner(K: tl.constexpr, x0, y0, fx, fy, W, H, pmask, PARITY: tl.constexpr = False):
    """Corner K (0, 1: x0 and x0 + 1 on row y0; 2, 3: on row y0 + 1) of a bilinear sample at (x0 + fx, y0 + fy):
    (x, y, weight, whether it is read: ``pmask`` and on the W x H map). The samplers' masked corners (TUNING "pairs"
    off). PARITY: corners 0, 1 on the even row of the two and 2, 3 on the odd one (even_row_first)."""
    x = x0 + K % 2
    wx = fx if K % 2 == 1 else 1.0 - fx
    if PARITY:
        dy = (K // 2) ^ even_row_first(y0)
        y = y0 + dy
        w = wx * tl.where(dy == 1, fy, 1.0 - fy)
    else:
        y = y0 + K // 2
        w = wx * (fy if K // 2 == 1 else 1.0 - fy)
    return x, y, w, pmask & (x >= 0) & (x < W) & (y >= 0) & (y < H)


@triton.jit
def sampler_add(ptrs, w, mask, a0, a1, a2, a3, wsum, PACKED: tl.constexpr, HALF_MATH: tl.constexpr):
    """Add one interpolation corner to the accumulators of sampler_zeros: ``ptrs`` are the corner's [pixels,
    channels] element pointers (PACKED: [pixels, channels / PACKED] int32 words), ``w`` its weight per pixel (0 for
    a corner off the map), ``mask`` None (read every pointer: all in bounds, corner_pair) or which to read."""
    if mask is None:
        v = tl.load(ptrs)
    else:
        v = tl.load(ptrs, mask=mask, other=0)
    if PACKED == 4:
        a0, a1, a2, a3 = add_packed_int8(v, w[:, None], a0, a1, a2, a3)
        wsum += w
    elif PACKED == 2:
        a0, a1 = add_half_pairs(v, w[:, None], a0, a1, HALF_MATH)
    elif HALF_MATH:
        a0 += w.to(tl.float16)[:, None] * v
    else:
        a0 += w[:, None] * to_f32(v)
    return a0, a1, a2, a3, wsum


@triton.jit
def sampler_add_pair(p, STEP: tl.constexpr, w0, w1, row_ok, W, a0, a1, a2, a3, wsum, SIZE1: tl.constexpr,
                     PACKED: tl.constexpr, HALF_MATH: tl.constexpr):
    """Add one corner_pair pair along x: the corners at pointers ``p`` and ``p + STEP`` ([pixels, channels]) with
    weights ``w0`` / ``w1`` per pixel. SIZE1 (some axis of the map has size 1): read only where ``row_ok`` (a scalar:
    the pair's row and slice exist) and, for the second corner, where W > 1; otherwise every corner is read."""
    m0 = None
    m1 = None
    if SIZE1:
        m0 = tl.full([w0.shape[0], 1], 1, tl.int1) & row_ok
        m1 = m0 & (W > 1)
    a0, a1, a2, a3, wsum = sampler_add(p, w0, m0, a0, a1, a2, a3, wsum, PACKED, HALF_MATH)
    return sampler_add(p + STEP, w1, m1, a0, a1, a2, a3, wsum, PACKED, HALF_MATH)


@triton.jit
def sampler_result(a0, a1, a2, a3, wsum, scale, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
                   PACKED: tl.constexpr):
    """The [pixels, channels] fp32 result of sampler_add's sums, times ``scale`` (PACKED: int8 only; fp16 words
    are stored by sampler_store_words)."""
    if PACKED:
        ws = wsum[:, None]
        res = interleave_bytes(packed_int8_result(a0, ws, scale), packed_int8_result(a1, ws, scale),
                               packed_int8_result(a2, ws, scale), packed_int8_result(a3, ws, scale), BLOCK_P, BLOCK_C)
    else:
        res = a0.to(tl.float32) * scale
    return res


@triton.jit
def sampler_store_words(out_ptr, word_offs, a0, a1, a2, a3, wsum, scale, mask, PACKED: tl.constexpr):
    """Store packed sums word by word into an fp16 output, at its [pixels, channels / PACKED] word offsets (units
    of PACKED channels): int8 with store_packed_int8_words, fp16 pairs as one 4-byte half2 per word."""
    if PACKED == 4:
        store_packed_int8_words(out_ptr, word_offs, a0, a1, a2, a3, wsum[:, None], scale, mask)
    else:
        words = half_pair_bits(a0.to(tl.float32) * scale, a1.to(tl.float32) * scale)
        tl.store(out_ptr.to(tl.pointer_type(tl.int32)) + word_offs, words, mask=mask)


# Shared memory through inline PTX (session 18, NOTES-ops item 29). Triton has no shared-memory gather, but a kernel
# may declare a static .shared array in inline PTX and address it with 32-bit shared-window addresses: ptxas counts it
# in the cubin's static shared memory (so the driver allocates it at every launch, TensorRT's included), next to any
# dynamic shared memory Triton itself asks for. The staging below copies a program's input footprint in with
# cp.async (global to shared without registers; chunks off the map zero-filled) and the kernel then gathers its
# corners with ld.shared. Triton's CPU interpreter cannot run inline PTX: kernels that stage are GPU-only and their
# entry points fall back to a kernel without staging where interpreting() is true.
SHARED_STATIC_MAX = 48 * 1024  # static .shared per kernel that ptxas accepts (sm_90)


@triton.jit
def shared_base(DECL: tl.constexpr):
    """The 32-bit shared-window address of the kernel's staging array, declared by ``DECL`` (shared_stage_plan's
    "DECL"). Call it once per kernel: a second copy of the declaration would not assemble."""
    return tl.inline_asm_elementwise(DECL, "=r", [], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def shared_commit():
    """Close this thread's cp.async copies issued since the last commit into one group (shared_sync waits on them)."""
    tl.inline_asm_elementwise("cp.async.commit_group;\n\tmov.u32 $0, 0;", "=r", [], dtype=tl.int32, is_pure=False,
                              pack=1)


@triton.jit
def shared_sync(WAIT: tl.constexpr):
    """bar.sync the CTA; WAIT 0 / 1 first waits until at most that many groups of this thread's cp.async copies are
    in flight, so that every thread's copies of the older groups are visible after the barrier; WAIT -1 only syncs."""
    if WAIT == 0:
        tl.inline_asm_elementwise("cp.async.wait_group 0;\n\tbar.sync 0;\n\tmov.u32 $0, 0;", "=r", [], dtype=tl.int32,
                                  is_pure=False, pack=1)
    elif WAIT == 1:
        tl.inline_asm_elementwise("cp.async.wait_group 1;\n\tbar.sync 0;\n\tmov.u32 $0, 0;", "=r", [], dtype=tl.int32,
                                  is_pure=False, pack=1)
    else:
        tl.inline_asm_elementwise("bar.sync 0;\n\tmov.u32 $0, 0;", "=r", [], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _live_slots(f, total, ch, nfit):
    """Slots of a staged copy's run (f < total) whose chunk is among its row's first ``nfit``. A constant nfit (a
    plan's NCH, above every chunk index) needs no chunk test, and none is made: the code differs with it (offline
    SASS), and this form is the one measured (benchmarks/NOTES-ops.md item 40)."""
    if isinstance(nfit, int):  # a constexpr: resolved when the kernel is compiled
        return f < total
    else:
        return (f < total) & (ch < nfit)


@triton.jit
def stage_box_async(in_ptr, sbase, plane_off, plane_ok, y0, x0, rows, pitch, H, W, NPL: tl.constexpr,
                    PLANEC: tl.constexpr, NCH: tl.constexpr, STEP: tl.constexpr, CHUNK: tl.constexpr, EC: tl.constexpr,
                    CPASM: tl.constexpr, nfit, NPLP: tl.constexpr = 0):
    """Copy the box of ``rows`` pixel rows from y0 and NCH CHUNK-byte chunks from pixel x0 (x0 a multiple of the
    chunk's pixels; W too, so that a chunk lies wholly on or off the map) of NPL (H, W) planes of ``in_ptr`` into
    shared memory at ``sbase``, plane-major: byte (q * PLANEC + row * pitch + chunk) * CHUNK for plane q, with
    ``pitch`` >= NCH chunks per staged row (shared_pitch_table) and ``rows`` * ``pitch`` <= PLANEC; of each row only
    the first ``nfit`` chunks (NCH, passed as the constexpr itself, or fewer where the program knows its footprint's
    width: less traffic; the rest of the row is left as it was). ``plane_off``
    [NPLP]: each plane's first element in ``in_ptr`` (NPLP: NPL rounded up to a power of two, for a count that is
    not one; the planes from NPL on are not copied); ``plane_ok`` [NPLP]: False for planes that do not exist (past
    the channels, or a slice off a volume), which are zero-filled like the chunks off the map (cp.async with source
    size 0). A plane's rows x NCH chunks are copied as one flat run, STEP chunks per plane at a time (one cp.async
    each, CPASM: predicated on its last operand, so the lanes past the run copy nothing), so that a warp's copies
    cover neighbouring chunks of whole rows. The caller commits them as one group."""
    NQ: tl.constexpr = NPLP if NPLP else NPL
    q = tl.arange(0, NQ)
    src = in_ptr + plane_off[:, None]
    dst = sbase + (q * (PLANEC * CHUNK))[:, None]
    total = rows * NCH
    for f0 in tl.range(0, total, STEP):
        f = f0 + tl.arange(0, STEP)
        r = f // NCH
        ch = f - r * NCH  # rather than f % NCH: rotate int8 2% faster (NOTES-ops item 40)
        y = y0 + r
        xc = x0 + ch * EC
        ok = plane_ok[:, None] & ((y >= 0) & (y < H) & (xc >= 0) & (xc < W))[None, :]
        gptr = tl.where(ok, src + (y * W + xc)[None, :], in_ptr).to(tl.int64, bitcast=True)
        saddr = dst + ((r * pitch + ch) * CHUNK)[None, :]
        live = (_live_slots(f, total, ch, nfit)[None, :] & (q < NPL)[:, None]).to(tl.int32)
        tl.inline_asm_elementwise(CPASM, "=r,r,l,r,r", [saddr, gptr, tl.where(ok, CHUNK, 0), live], dtype=tl.int32,
                                  is_pure=False, pack=1)


# Interleaved staging: IL planes (channels) share each staged 4-byte word, so that one ld.shared of a corner reads
# IL channels (fp16: 2, int8: 4) instead of one. cp.async copies bytes as they lie, one plane's run at a time, so
# the interleave goes through registers: each lane loads the same 4 pixels of a group's IL planes from global
# memory, permutes their bytes (prmt) and stores the 16 bytes of 4 interleaved pixels with one st.shared.v4.
_INTERLEAVE_PERMUTES = {
    # fp16 pairs: the two planes' 8-byte loads ($2, $3) split into words, pixel k's halves side by side
    2: ("mov.b64 {a0, a1}, $2;", "mov.b64 {b0, b1}, $3;", "prmt.b32 o0, a0, b0, 0x5410;",
        "prmt.b32 o1, a0, b0, 0x7632;", "prmt.b32 o2, a1, b1, 0x5410;", "prmt.b32 o3, a1, b1, 0x7632;"),
    # int8 quads: a 4 x 4 byte transpose of the four planes' words ($2 .. $5)
    4: ("prmt.b32 a0, $2, $3, 0x5140;", "prmt.b32 a1, $2, $3, 0x7362;", "prmt.b32 b0, $4, $5, 0x5140;",
        "prmt.b32 b1, $4, $5, 0x7362;", "prmt.b32 o0, a0, b0, 0x5410;", "prmt.b32 o1, a0, b0, 0x7632;",
        "prmt.b32 o2, a1, b1, 0x5410;", "prmt.b32 o3, a1, b1, 0x7632;"),
}


@triton.jit
def _word_slots(words_ptr, dst, group_off, pstride, nvalid, y0, x0, rows, pitch, H, W, f0, IL: tl.constexpr,
                NCH: tl.constexpr, STEP: tl.constexpr, nfit):
    """stage_words_sync's loads of slots f0 .. f0 + STEP (a slot: 4 pixels of a staged row of every group's planes),
    as [groups, slots]: (shared address, live, a, b, c, d), c and d loaded for IL 4 only (else b again)."""
    f = f0 + tl.arange(0, STEP)
    total = rows * NCH
    r = f // NCH
    ch = f - r * NCH  # rather than f % NCH: rotate int8 2% faster (NOTES-ops item 40)
    y = y0 + r
    xw = x0 // 4 + ch
    w4 = W // 4
    run = _live_slots(f, total, ch, nfit)
    onmap = ((y >= 0) & (y < H) & (xw >= 0) & (xw < w4) & run)[None, :]
    ptr = words_ptr + group_off[:, None] + (y * w4 + xw)[None, :]
    saddr = dst + ((r * pitch + ch) * 16)[None, :]
    # groups past the planes are never stored
    live = (run[None, :] & (nvalid > 0)[:, None]).to(tl.int32)
    a = tl.load(ptr, mask=onmap & (nvalid > 0)[:, None], other=0)
    b = tl.load(ptr + pstride, mask=onmap & (nvalid > 1)[:, None], other=0)
    c = b
    d = b
    if IL == 4:
        c = tl.load(ptr + 2 * pstride, mask=onmap & (nvalid > 2)[:, None], other=0)
        d = tl.load(ptr + 3 * pstride, mask=onmap & (nvalid > 3)[:, None], other=0)
    return saddr, live, a, b, c, d


@triton.jit
def _store_word_slots(saddr, live, a, b, c, d, IL: tl.constexpr, ILASM: tl.constexpr):
    if IL == 2:
        tl.inline_asm_elementwise(ILASM, "=r,r,l,l,r", [saddr, a, b, live], dtype=tl.int32, is_pure=False, pack=1)
    else:
        tl.inline_asm_elementwise(ILASM, "=r,r,r,r,r,r,r", [saddr, a, b, c, d, live], dtype=tl.int32, is_pure=False,
                                  pack=1)


@triton.jit
def stage_words_sync(words_ptr, sbase, group_off, pstride, nvalid, y0, x0, rows, pitch, H, W, NG: tl.constexpr,
                     IL: tl.constexpr, PLANEC: tl.constexpr, NCH: tl.constexpr, STEP: tl.constexpr,
                     ILASM: tl.constexpr, nfit):
    """Stage the box of ``rows`` pixel rows from y0 and NCH 4-pixel chunks from pixel x0 (x0 and W multiples of 4)
    of NG groups of IL planes each into shared memory at ``sbase``, each pixel's IL channels interleaved in one
    4-byte word: group g's staged pixel (row, x) at byte (g * PLANEC + row * pitch) * 16 + x * 4, channel k of the
    group in its byte(s) k. ``words_ptr``: the input as words of 4 pixels of one plane (int64 for fp16, int32 for
    int8); ``group_off`` [NG]: the word offset of each group's first plane, the group's planes ``pstride`` words
    apart; ``nvalid`` [NG]: how many of the group's planes exist (the rest, and chunks off the map, are staged as
    zeros; a group with none is not staged at all, its results being masked off by the caller); of each row only the
    first ``nfit`` chunks are staged (as stage_box_async). STEP slots (4 pixels of every group) per step, the next
    step's loads issued before this step's stores so that one memory latency is exposed per call, not one per step. Synchronous (the data passes through registers):
    the stores are done when this returns, so a barrier makes them visible. ILASM: interleave_asm(IL)."""
    dst = sbase + (tl.arange(0, NG) * (PLANEC * 16))[:, None]
    saddr, live, a, b, c, d = _word_slots(words_ptr, dst, group_off, pstride, nvalid, y0, x0, rows, pitch, H, W, 0, IL,
                                          NCH, STEP, nfit)
    for f0 in tl.range(STEP, rows * NCH, STEP):
        saddr2, live2, a2, b2, c2, d2 = _word_slots(words_ptr, dst, group_off, pstride, nvalid, y0, x0, rows, pitch,
                                                    H, W, f0, IL, NCH, STEP, nfit)
        _store_word_slots(saddr, live, a, b, c, d, IL, ILASM)
        saddr, live, a, b, c, d = saddr2, live2, a2, b2, c2, d2
    _store_word_slots(saddr, live, a, b, c, d, IL, ILASM)


def interleave_asm(il: int) -> str:
    """The PTX that stage_words_sync runs per lane for IL interleaved planes (2: fp16 pairs, 4: int8 quads): the
    permutes, then one 16-byte st.shared at $1 predicated on the last operand ($4 for IL 2, $6 for IL 4)."""
    body = "\n\t".join(_INTERLEAVE_PERMUTES[il])
    return (f"{{\n\t.reg .pred p;\n\t.reg .b32 a0, a1, b0, b1, o0, o1, o2, o3;\n\tsetp.ne.b32 p, ${2 + il}, 0;\n\t"
            f"{body}\n\t@p st.shared.v4.b32 [$1], {{o0, o1, o2, o3}};\n\t}}\n\tmov.u32 $0, 0;")


@triton.jit
def half2_splat(w):
    """fp32 w rounded to fp16 in both halves of an int32 (a half2 of (w, w))."""
    h = w.to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    return h | (h << 16)


@triton.jit
def half2_weighted_sum(v00, v01, v10, v11, w00, w01, w10, w11):
    """Four half2 words weighted by four half2 words (half2_splat of each weight) and summed, as one half2 word:
    one packed product and three packed fused adds (fp16x2's arithmetic on two channels at once)."""
    return tl.inline_asm_elementwise(
        """{
        .reg .b32 t;
        mul.rn.f16x2 t, $1, $5;
        fma.rn.f16x2 t, $2, $6, t;
        fma.rn.f16x2 t, $3, $7, t;
        fma.rn.f16x2 $0, $4, $8, t;
        }""", "=r,r,r,r,r,r,r,r,r", [v00, v01, v10, v11, w00, w01, w10, w11], dtype=tl.int32, is_pure=True, pack=1)


@triton.jit
def bilinear_weights(fx, fy, scale):
    """The four bilinear weights (w00, w01, w10, w11) of fractions (fx, fy) within a pixel, times ``scale`` (1.0,
    or a dequantisation scale folded in)."""
    return ((1.0 - fx) * (1.0 - fy) * scale, fx * (1.0 - fy) * scale, (1.0 - fx) * fy * scale, fx * fy * scale)


@triton.jit
def staged_word_bilinear(LD4: tl.constexpr, addr, below, w00, w01, w10, w11, IL: tl.constexpr,
                         HALF_MATH: tl.constexpr):
    """A pixel's four staged corners of stage_words_sync's interleaved words (one ld.shared each for IL channels)
    bilinearly combined: (r0, .., r(IL-1)), channel k of the group in r_k, fp32 (fp16 where HALF_MATH). int8
    (IL 4) through add_packed_int8 with the weights (which may carry the dequantisation scale); fp16 pairs through
    add_half_pairs, or where HALF_MATH (fp16x2) as half2 words, one packed product or fused add per corner for
    both channels (r2, r3: r0, r1 again, unused)."""
    v00, v01, v10, v11 = staged_corners(LD4, "r", 4, addr, below)
    if IL == 4:
        z = tl.zeros(w00.shape, dtype=tl.float32)
        a0, a1, a2, a3 = add_packed_int8(v00, w00, z, z, z, z)
        a0, a1, a2, a3 = add_packed_int8(v01, w01, a0, a1, a2, a3)
        a0, a1, a2, a3 = add_packed_int8(v10, w10, a0, a1, a2, a3)
        a0, a1, a2, a3 = add_packed_int8(v11, w11, a0, a1, a2, a3)
        wsum = w00 + w01 + w10 + w11
        r0 = packed_int8_result(a0, wsum, 1.0)
        r1 = packed_int8_result(a1, wsum, 1.0)
        r2 = packed_int8_result(a2, wsum, 1.0)
        r3 = packed_int8_result(a3, wsum, 1.0)
    elif HALF_MATH:  # both channels at once: half2 products and sums on the words as they are
        res = half2_weighted_sum(v00, v01, v10, v11, half2_splat(w00), half2_splat(w01), half2_splat(w10),
                                 half2_splat(w11))
        r0 = (res & 0xFFFF).to(tl.int16).to(tl.float16, bitcast=True)
        r1 = (res >> 16).to(tl.int16).to(tl.float16, bitcast=True)
        r2 = r0
        r3 = r1
    else:
        z = tl.zeros(w00.shape, dtype=tl.float32)
        r0, r1 = add_half_pairs(v00, w00, z, z, HALF_MATH)
        r0, r1 = add_half_pairs(v01, w01, r0, r1, HALF_MATH)
        r0, r1 = add_half_pairs(v10, w10, r0, r1, HALF_MATH)
        r0, r1 = add_half_pairs(v11, w11, r0, r1, HALF_MATH)
        r2 = r0
        r3 = r1
    return r0, r1, r2, r3


@triton.jit
def staged_corners(LD4: tl.constexpr, LDT: tl.constexpr, ESIZE: tl.constexpr, addr, below):
    """A pixel's four staged corners as loaded by shared_stage_plan's LD4 (staged_bilinear says where): int32 for
    1-byte elements (sign-extended) and for 4-byte ones (the word's bits), fp16 for 2-byte ones."""
    return tl.inline_asm_elementwise(
        LD4, "=" + LDT + ",=" + LDT + ",=" + LDT + ",=" + LDT + ",r,r", [addr, addr + below],
        dtype=(tl.float16 if ESIZE == 2 else tl.int32,) * 4, is_pure=False, pack=1)


@triton.jit
def staged_bilinear(LD4: tl.constexpr, LDT: tl.constexpr, ESIZE: tl.constexpr, addr, below, w00, w01, w10, w11, hx,
                    hy, HALF_MATH: tl.constexpr):
    """A pixel's four staged corners read with shared_stage_plan's LD4 / LDT at ``addr`` ((y, x), (y, x + 1) and
    the same two a staged row below, ``below`` bytes on; ESIZE bytes each) and bilinearly combined: with the fp32
    weights w00 .. w11 (which may carry a dequantisation scale), or in fp16 with the fractions hx, hy where HALF_MATH
    (fp16x2)."""
    v00, v01, v10, v11 = staged_corners(LD4, LDT, ESIZE, addr, below)
    if ESIZE == 4:  # read as 32-bit words
        v00, v01 = v00.to(tl.float32, bitcast=True), v01.to(tl.float32, bitcast=True)
        v10, v11 = v10.to(tl.float32, bitcast=True), v11.to(tl.float32, bitcast=True)
    if HALF_MATH:
        top = v00 + (v01 - v00) * hx
        bot = v10 + (v11 - v10) * hx
        res = top + (bot - top) * hy
    else:
        if ESIZE == 1:  # ld.shared.s8 gives int32
            f00, f01, f10, f11 = (small_int_to_f32(v00), small_int_to_f32(v01), small_int_to_f32(v10),
                                  small_int_to_f32(v11))
        else:
            f00, f01, f10, f11 = v00.to(tl.float32), v01.to(tl.float32), v10.to(tl.float32), v11.to(tl.float32)
        res = f00 * w00 + f01 * w01 + f10 * w10 + f11 * w11
    return res


def copy_async_asm(chunk: int) -> str:
    """stage_box_async's CPASM: one cp.async of ``chunk`` bytes (16, 8 or 4) from $2 to shared $1, $3 of them read
    (0: zero-fill), predicated on $4."""
    cp = f"cp.async.{'cg' if chunk == 16 else 'ca'}.shared.global [$1], [$2], {chunk}, $3;"
    return f"{{\n\t.reg .pred p;\n\tsetp.ne.b32 p, $4, 0;\n\t@p {cp}\n\t}}\n\tmov.u32 $0, 0;"


def shared_decl(nbytes: int) -> str:
    """shared_base's DECL: the kernel's one static .shared staging array of ``nbytes`` bytes, 16-byte aligned."""
    return f".shared .align 16 .b8 bd_stage[{nbytes}];\n\tmov.u32 $0, bd_stage;"


@functools.cache
def shared_stage_plan(element_size: int, width: int, box_h: int, box_w: int, block_c: int, step: int,
                      buffers: int = 2, pad: int = 0, margin: int | None = None, full_pitch: bool = False,
                      reserve: int = 0) -> dict | None:
    """The constexprs of a bilinear sampler that stages, for every program, the footprint of a ``box_h`` x ``box_w``
    output box for ``block_c`` planes of a linear input of ``width`` pixels per row, in ``buffers`` buffers. The
    footprint is the box under any rotation (at most its diagonal plus margins on each side) where ``margin`` is None,
    else the box plus ``margin`` pixels each side (a kernel that checks its footprint at run time and falls back where
    it does not fit). FH (rows), NCH (chunks copied per row), PLANEC (chunks per staged plane: FH x NCH; with
    ``pad``, room for rows up to ``pad`` chunks wider, which a kernel may pick per program from shared_pitch_table
    to move the rows' shared-memory banks where its rows x pitch fit: a little more, or FH x (NCH + ``pad``) with
    ``full_pitch``, every row count at every pitch), EC (pixels per chunk), CHUNK (bytes per cp.async: 16, else 8
    or 4 as the row's bytes allow; cp.async has no smaller copy), STEP (``step`` chunks per plane per copy step),
    CPASM, BUF (bytes per buffer), DECL (the .shared declaration) and LD4 / LDT (ld.shared of a pixel's four
    corners: two at (y, x), two at the address of the staged row below, and their register class); SHARED is the
    bytes declared. None where rows are not 4-byte multiples or the buffers would exceed SHARED_STATIC_MAX less
    ``reserve``: the shared memory the kernel's Triton code takes itself (e.g. cross-warp reductions), which the
    driver adds to the static array; over 48 KiB together, the launch fails. Cached per launch geometry: callers
    must not change the dict."""
    row_bytes = width * element_size
    chunk = next((c for c in (16, 8, 4) if row_bytes % c == 0), 0)
    if not chunk:
        return None
    per_chunk = chunk // element_size
    if margin is None:  # the box's diagonal, a corner's second pixel, a margin each side
        fh = span = math.ceil(math.hypot(box_h, box_w)) + 4
    else:
        fh, span = box_h + 2 * margin + 1, box_w + 2 * margin + 1
    nch = -(-(span + per_chunk - 1) // per_chunk)  # x0 rounds down to a chunk: up to per_chunk - 1 more pixels
    planec = fh * nch if not pad else fh * (nch + pad) if full_pitch else -(-fh * nch // 16) * 16 + 32
    buf = block_c * planec * chunk
    nbytes = buffers * buf
    if nbytes + reserve > SHARED_STATIC_MAX:
        return None
    kind = {1: ("ld.shared.s8", "r"), 2: ("ld.shared.b16", "h"), 4: ("ld.shared.b32", "r")}[element_size]
    t, e = kind[0], element_size
    return dict(
        FH=fh, NCH=nch, PLANEC=planec, CHUNK=chunk, EC=per_chunk, BUF=buf, STEP=step, CPASM=copy_async_asm(chunk),
        DECL=shared_decl(nbytes),
        LD4=f"{t} $0, [$4];\n\t{t} $1, [$4+{e}];\n\t{t} $2, [$5];\n\t{t} $3, [$5+{e}];",
        LDT=kind[1], SHARED=nbytes,
    )


PITCH_BITS, PITCH_PER_WORD = 3, 21  # a table entry (pitch - NCH, at most 7) packed 21 to a 64-bit word
PITCH_STEPS = 181  # shared_pitch_table's entries: dy from -1 to 1


@triton.jit
def staged_pitch(dx, dy, rows, NCH: tl.constexpr, PLANEC: tl.constexpr, TAB: tl.constexpr, NTAB: tl.constexpr):
    """The row pitch (chunks) that shared_pitch_table gives a warp whose pixels walk the source along the unit vector
    (dx, dy) per lane: the entry of dy, the vector folded to dx >= 0 (a line, not a ray); NCH where ``rows`` rows at
    that pitch would not fit a plane's PLANEC chunks. TAB: the table's NTAB entries as pitch_words packs them,
    compile-time constants, so that the lookup is a few instructions and no memory load."""
    fy = tl.where((dx < 0) | ((dx == 0) & (dy < 0)), -dy, dy)
    j = tl.minimum(tl.maximum(((fy + 1.0) * ((NTAB - 1) * 0.5) + 0.5).to(tl.int32), 0), NTAB - 1)
    word = tl.zeros([], dtype=tl.int64)
    for w in tl.static_range(len(TAB)):  # 21, 3, 7: PITCH_PER_WORD, PITCH_BITS and its mask
        word = tl.where(j // 21 == w, TAB[w], word)
    pitch = NCH + ((word >> ((j % 21) * 3)) & 7).to(tl.int32)
    return tl.where(rows * pitch <= PLANEC, pitch, NCH)


WIDER_PITCH_GAIN = 0.8  # shared_pitch_table takes a wider pitch where it costs at most this share of the narrowest


@functools.cache
def shared_pitch_table(element_size: int, chunk: int, nch: int, pad: int, box: tuple = (), planec: int = 0,
                       lanes: int = 32, steps: int = PITCH_STEPS) -> tuple:
    """Row pitches (chunks) for a staged sampler whose warps read ``lanes`` neighbouring output pixels of a row, by
    the direction (dx, dy) those pixels walk through the source, folded to dx >= 0 (so that dy = -1 and 1 are one
    line): entry j for dy = -1 + 2 * j / (steps - 1), i.e. the angle asin(dy) (staged_pitch reads it without an
    arctangent; entries are finest near dy = 0, the small angles). Each entry is the pitch in nch ..
    nch + pad whose ld.shared reads of the four corners need the fewest wavefronts (distinct 4-byte words that
    share a bank), counted over sub-pixel starts and chunk alignments: neighbouring rows of a warp's run must not
    land on the same banks, and which pitch avoids that depends on how many pixels a row's run spans. Measured on
    the H200 (NOTES-ops item 30): at 3 degrees a 96-byte pitch costs 2.2 wavefronts per read and rotate fp16 takes
    0.0218 ms, at 0 degrees 1.0 and 0.0161 ms; at 90 degrees 8 and 0.0599 ms."""
    import numpy as np

    epc = chunk // element_size
    phi = np.arcsin(np.linspace(-1.0, 1.0, steps))[:, None, None]
    g = np.arange(4) / 4.0
    ox, oy, xo = (a.reshape(1, -1, 1) for a in np.meshgrid(g, g, np.arange(0, epc, max(1, epc // 4)), indexing="ij"))
    i = np.arange(lanes).reshape(1, 1, -1)
    x = np.floor(xo + ox + np.cos(phi) * i).astype(np.int64)
    y = np.floor(oy + np.sin(phi) * i).astype(np.int64)
    x -= ((x.min(axis=2, keepdims=True) - xo) // epc) * epc + xo  # the box starts on a chunk
    y -= y.min(axis=2, keepdims=True)
    cost = []
    for pitch in range(nch, nch + pad + 1):
        total = 0.0
        for dy in (0, 1):
            for dx in (0, 1):
                word = ((y + dy) * pitch * chunk + (x + dx) * element_size) // 4
                key = np.sort((word % 32) * (1 << 40) + word, axis=2)
                first = np.concatenate([np.ones_like(key[..., :1], dtype=bool), key[..., 1:] != key[..., :-1]], axis=2)
                per_bank = np.zeros(key.shape[:2] + (32,))
                np.add.at(per_bank, (np.arange(key.shape[0])[:, None, None], np.arange(key.shape[1])[None, :, None],
                                     key >> 40), first)
                total = total + per_bank.max(axis=2).mean(axis=1)
        cost.append(total)
    cost = np.stack(cost)
    if box:  # the staged rows of a (box_h, box_w) box turned by phi (rotate's bound) x pitch must fit planec,
        # for every angle that reads the entry (the largest sine and cosine within half a step)
        half = 1.0 / (steps - 1)
        dy = np.abs(np.linspace(-1.0, 1.0, steps))
        sin, cos = np.minimum(dy + half, 1.0), np.sqrt(1.0 - np.maximum(dy - half, 0.0) ** 2)
        rows = np.floor((box[1] - 1) * sin + (box[0] - 1) * cos + 1e-6) + 5
        pitches = np.arange(nch, nch + pad + 1)[:, None]
        cost = np.where((rows[None, :] * pitches <= planec) | (pitches == nch), cost, np.inf)
    best = np.argmin(cost, axis=0)
    # a wider pitch only for a clear gain: the count is a model (item 30: at 7.3 degrees it rated 144-byte rows 12%
    # cheaper than 96-byte ones, and they measured 4% slower; where it rates them 2x cheaper they measured 13 - 38%
    # faster)
    keep = cost[best, np.arange(cost.shape[1])] > WIDER_PITCH_GAIN * cost[0]
    return tuple(int(nch + k) for k in np.where(keep, 0, best))


@functools.cache
def pitch_words(element_size: int, chunk: int, nch: int, pad: int, box: tuple = (), planec: int = 0) -> tuple:
    """shared_pitch_table's entries as staged_pitch's TAB: each pitch - nch in PITCH_BITS bits, PITCH_PER_WORD to a
    64-bit word (as Python ints, below 2**63)."""
    if pad >= 1 << PITCH_BITS:
        raise ValueError(f"pitch_words: pad {pad} needs more than {PITCH_BITS} bits per entry")
    table = shared_pitch_table(element_size, chunk, nch, pad, box, planec)
    words = []
    for start in range(0, len(table), PITCH_PER_WORD):
        words.append(sum((p - nch) << (PITCH_BITS * k) for k, p in enumerate(table[start:start + PITCH_PER_WORD])))
    return tuple(words)


def staged_interleave(cfg: Mapping, x: torch.Tensor, block_c: int) -> int:
    """Planes per staged word (stage_words_sync) for a staged sampler of ``x`` (linear, (..., H, W)) with TUNING
    "stage_words": 2 for fp16, 4 for int8, where W is a multiple of 4 pixels, ``x`` is contiguous and 16-byte
    aligned and ``block_c`` planes make whole groups; else 1 (each plane staged on its own by cp.async)."""
    il = {1: 4, 2: 2}.get(x.element_size(), 1) if cfg.get("stage_words") else 1
    if il == 1 or x.shape[-1] % 4 or not x.is_contiguous() or x.data_ptr() % 16 or block_c % il:
        return 1
    return il


def staged_words(x: torch.Tensor, il: int) -> torch.Tensor:
    """``x`` as stage_words_sync reads it for ``il`` planes per staged word: words of 4 pixels (int64 for 2-byte
    elements, int32 for 1-byte ones); ``x`` itself for il 1."""
    if il == 1:
        return x
    return x.view(torch.int64 if x.element_size() == 2 else torch.int32)


def packed_words(precision: str, mode: int, block_c: int, x: torch.Tensor, vec: int, cfg: Mapping) -> int:
    """Channels per int32 word that a sampler's bilinear gathers read in a vectorized layout of ``vec`` channels,
    or 0 (element loads): 4 for int8 (add_packed_int8) with channel blocks of 4+ bytes; 2 for fp16 / fp16x2
    (add_half_pairs) with vectors under 32 bytes (kCHW2) and ``cfg["vec_half_words"]``, so that a thread holds
    whole words of several vectors (TUNING "vec_vectors") for one pixel. Both need a word-aligned, contiguous
    input. Nearest sampling has one corner and keeps element loads."""
    if mode != 0 or not x.is_contiguous() or x.data_ptr() % 16:
        return 0
    if precision == "int8" and block_c % 4 == 0 and x.shape[-1] % 4 == 0:
        return 4
    if (precision in ("fp16", "fp16x2") and cfg.get("vec_half_words") and vec * 2 < 32 and block_c % 2 == 0
            and x.shape[-1] % 2 == 0):
        return 2
    return 0


def tuned(tuning: Mapping, precision: str, shape: str = "") -> dict:
    """A kernels module's launch TUNING with its per-precision overrides applied: ``tuning["per_precision"][p]``,
    then, for a ``shape`` class the op names (e.g. the grid sampler's "2d" / "3d"), ``[f"{p}:{shape}"]``. The sweep
    in benchmarks/ops.py found different best shapes per element size, and some per dimension too."""
    per = tuning.get("per_precision", {})
    merged = {k: v for k, v in tuning.items() if k != "per_precision"}
    merged.update(per.get(precision, {}))
    if shape:
        merged.update(per.get(f"{precision}:{shape}", {}))
    return merged


def plane_strides(cfg: Mapping, vec: int, channels: int, block_c: int) -> tuple[bool, bool]:
    """(PTR_FIRST, constant strides) of a sampler launch from TUNING "ptr_first" / "static_strides": both apply to
    the linear layout only (tile_ptrs), and the strides are constants only where the channel blocks divide the
    channels (plane_tiles' STATIC); otherwise a static_strides launch falls back to dynamic per-pixel pointers."""
    ptr_first = vec == 1 and bool(cfg["ptr_first"] or cfg["static_strides"])
    return ptr_first, ptr_first and bool(cfg["static_strides"]) and channels % block_c == 0


def word_store(cfg: Mapping, packed: int, vec: int) -> bool:
    """Whether a sampler writes its packed sums (packed_words) word by word (sampler_store_words): always for fp16
    pairs; for int8, vectors shorter than 32 bytes (e.g. kCHW4) with ``cfg["vec_word_store"]``."""
    return packed == 2 or (packed == 4 and vec < 32 and bool(cfg.get("vec_word_store", False)))


def wide_vector(vec: int, element_size: int) -> bool:
    """Whether a sampler's corner gather in a layout of ``vec`` channels is a full 32-byte load (kCHW32 in int8 /
    fp16, or any vector of 32+ bytes): such rows take their launch shape from the "vec_wide_*" TUNING keys."""
    return vector_block(vec, element_size) * element_size == 32


def vector_tile(cfg: Mapping, vec: int, element_size: int, groups: int = 1) -> tuple[int, int, int]:
    """(channels, pixels, warps) of a sampling kernel's program in a vectorized layout of ``vec`` channels: one
    vector load per corner (layouts.vector_block); when that load is a full 32 bytes (kCHW32 in int8 / fp16, or
    any vector of 32+ bytes), ``cfg["vec_wide_block_p"]`` pixels on ``cfg["vec_wide_num_warps"]`` warps, else
    ``cfg["vec_block_p"]`` on ``cfg["vec_num_warps"]`` (where set, else ``cfg["num_warps"]``). The run-16 sweeps
    (H200, NOTES-ops.md) found 32-byte loads want one or two threads per pixel (grid 2D fp16 kCHW32 0.0143 ms at 64
    pixels on 4 warps vs 0.0153 at 256 on 4) and 4-byte ones two pixels per thread (int8 kCHW4 0.0162 at 256 on 4
    vs 0.0176 at 128).

    Short vectors (under 32 bytes, read whole): a program takes ``cfg["vec_vectors"]`` of them (of the layout's
    ``groups``, which it must divide), so that a thread's per-pixel coordinate math serves that many vectors."""
    block_c = vector_block(vec, element_size)
    if wide_vector(vec, element_size):
        return block_c, cfg["vec_wide_block_p"], cfg["vec_wide_num_warps"]
    many = cfg.get("vec_vectors", 1)
    if block_c == vec and many > 1 and groups % many == 0 and vec * many * element_size <= 32:
        block_c *= many
    return block_c, cfg["vec_block_p"], cfg.get("vec_num_warps") or cfg["num_warps"]


def vector_key(cfg: Mapping, name: str, vec: int, element_size: int):
    """A sampler launch setting for its layout: ``cfg[name]`` in the linear layout (``vec`` 1); in a vectorized one
    ``cfg["vec_" + name]``, or for 32-byte vector loads (wide_vector, as in vector_tile) ``cfg["vec_wide_" + name]``
    where the TUNING sets it (not None). The sweeps kept finding a setting that speeds up a kCHW32 row slowing its
    kCHW2 sibling, which shared the "vec_" key (boxes: NOTES-ops items 26 - 27; register caps: item 39; "row_parity":
    item 45)."""
    if vec == 1:
        return cfg.get(name)
    wide = cfg.get(f"vec_wide_{name}")
    return wide if wide_vector(vec, element_size) and wide is not None else cfg.get(f"vec_{name}")


def vector_box(cfg: Mapping, vec: int, element_size: int) -> tuple[int, int]:
    """(rows, slices) of a vectorized-layout program's output box (rows 0: a run of pixels, not a box): the
    "tile_y" / "tile_z" settings of vector_key."""
    return vector_key(cfg, "tile_y", vec, element_size), vector_key(cfg, "tile_z", vec, element_size)


def vector_maxnreg(cfg: Mapping, vec: int, element_size: int) -> int | None:
    """The register cap of a sampler launch in a vectorized layout: the "maxnreg" setting of vector_key (0 or None:
    no cap; "vec_wide_maxnreg" 0 lifts the shared cap for 32-byte loads). Session 27 (H200 and H100): grid 3D fp16x2
    kCHW2 ran 2 - 6% faster at 72 registers and its kCHW32 sibling 3 - 6% slower."""
    return vector_key(cfg, "maxnreg", vec, element_size) or None


def resident_programs(device: torch.device, per_sm: int) -> int:
    """Programs for a kernel that walks its work in a fixed number of programs: ``per_sm`` per multiprocessor of
    ``device``, or ``per_sm`` alone where there is no CUDA device (Triton's CPU interpreter), so that the tests still
    see programs that take several items each."""
    if device.type != "cuda":
        return per_sm
    return per_sm * torch.cuda.get_device_properties(device).multi_processor_count


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# inline PTX in jitted helpers that also run in Triton's CPU interpreter (which cannot run it), as a constexpr
# global they may read: Triton fixes interpreter mode when it is imported, so this holds for the whole process
PTX = False if TRITON_ERROR else tl.constexpr(not interpreting())


def require_triton(op: str) -> None:
    """Raise the one-line user error when Triton cannot be imported."""
    if TRITON_ERROR:
        raise BevDeployError(
            f"{op}: the GPU kernels need Triton ({TRITON_ERROR}); install it with `pip install bevdeploy[gpu]`."
        )


def check_launch(op: str, precision: str, tensors: list[torch.Tensor], allowed: tuple[str, ...] = PRECISIONS) -> None:
    """Validate the precision name and the tensors' device before a launch."""
    require_triton(op)
    if precision not in allowed:
        raise BevDeployError(f"{op}: precision {precision!r} is not available; choose one of {', '.join(allowed)}.")
    for t in tensors:
        if t.device.type != "cuda" and not interpreting():
            raise BevDeployError(
                f"{op}: the Triton kernels need CUDA tensors (got {t.device}); use the reference on the CPU."
            )
        if t.numel() >= 2**31:
            raise BevDeployError(f"{op}: tensors over 2^31 elements are not supported by the kernels; split the batch.")


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (Triton block shapes must be powers of two)."""
    return 1 << max(0, int(n) - 1).bit_length()


def channel_tiles(c: int, cap: int, split: bool) -> tuple[int, int]:
    """(C1, C2) channel tiles covering min(c, cap) channels in one program: one padded power-of-two tile (C2 = 0),
    or with ``split`` the largest power of two that fits plus a second tile for the rest (80 = 64 + 16, no padded
    lanes). Wider inputs take several such blocks (a second program axis). bev_pool_columns' tiles; the
    bev_pool_v2 floor study (benchmarks/bev_pool_floor.py) tries both."""
    width = min(c, cap)
    if not split:
        return max(16, next_pow2(width)), 0
    c1 = max(16, 1 << (width.bit_length() - 1))
    rest = width - c1
    return c1, (0 if rest <= 0 else max(16, next_pow2(rest)))


def float_storage(x: torch.Tensor, precision: str) -> torch.Tensor:
    """The tensor in the storage dtype of a float variant, contiguous."""
    dtype = torch.float32 if precision == "fp32" else torch.float16
    return x.to(dtype).contiguous()


def out_dtype(precision: str) -> torch.dtype:
    """Output dtype of a variant: fp32 for fp32, fp16 for every other."""
    return torch.float32 if precision == "fp32" else torch.float16


def quantize_per_tensor(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Symmetric per-tensor INT8 quantisation (round to nearest even, clamp to [-128, 127])."""
    return torch.clamp(torch.round(x.float() / scale), -128, 127).to(torch.int8)


def scale_for(x: torch.Tensor) -> float:
    """Max-calibrated per-tensor scale (amax / 127), the simplest TensorRT-style calibration."""
    amax = float(x.detach().abs().max())
    return amax / 127.0 if amax > 0 else 1.0


def int8_input(op: str, x: torch.Tensor, name: str, scales: Mapping[str, float] | None) -> tuple[torch.Tensor, float]:
    """An int8 tensor and its scale for an ``int8`` launch; float inputs are quantised with the given scale."""
    if not scales or name not in scales:
        raise BevDeployError(f"{op}: precision 'int8' needs scales[{name!r}] (real = q * scale) for input {name!r}.")
    scale = float(scales[name])
    if not scale > 0:
        raise BevDeployError(f"{op}: scales[{name!r}] must be a positive number, got {scale}.")
    q = x if x.dtype == torch.int8 else quantize_per_tensor(x, scale)
    return q.contiguous(), scale
