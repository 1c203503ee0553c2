"""Channels-last staging for the samplers' linear fp16 rows: a footprint gathered with the warp's matrix loads.

In the linear layout a corner gather reads one channel, whatever the element size: the staged samplers of
triton_util (cp.async planes, then one ld.shared per corner and channel) are bound by those loads (NOTES-ops items
29 - 31). Here the footprint is restaged channels-last, 8 fp16 channels of a pixel in one 16-byte row, so that one
``ldmatrix .x4`` reads 8 pixels' four corners of 8 channels: each lane provides one row address (lanes 8i .. 8i + 7:
corner i of the group's 8 pixels) and receives pixel lane // 4's four corners of channels 2 (lane % 4) and + 1, as
half2 words (the mma fragment). A load of 512 bytes in 4 shared wavefronts where it is free of bank conflicts,
against 32 loads of 2 bytes.

Per block of 8 channels: stage_box_async copies the 8 planes of the footprint (rows x NCH chunks of 8 pixels) into
shared memory as they lie (P, asynchronous, a block ahead), and hwc_transpose rewrites them channels-last (Q):
``ldmatrix`` of 4 chunks of the 8 planes (rows: a chunk of one plane), ``stmatrix .trans`` of their columns (a
pixel's 8 channels) to the pixels' rows in Q. The staged pixel (row r, x) lies in 16-byte row hwc_chunk(r * QP + x)
of Q: QP pixels per staged row and an XOR swizzle (bits 2 - 4 of the index into bits 0 - 2), so that the 8 rows of
one matrix fall in 8 different bank groups both for a chunk's 8 pixels (the transpose) and for pixels 4 apart (the
gathers: a lane's four groups are neighbouring output pixels, stored with one 8-byte store per channel). A bank
model of the rotate anchor (16 x 16 boxes, QP 48) gives 1.0 - 1.35 wavefronts per matrix from 0 to 10 degrees.

The lane of each tensor element matters here (the matrix instructions exchange data between lanes): the kernels
index their per-lane work by ``arange % 32`` on 1-D tensors of a whole number of warps, which Triton lays out one
element per lane and then per warp (tests/trt_ops/test_hwc_stage.py checks the compiled layout). ``stmatrix`` needs
sm_90; GPU-only, like every inline-PTX staging.
"""

from __future__ import annotations

import functools
import math

from .triton_util import (
    SHARED_STATIC_MAX,
    add_half_pairs,
    copy_async_asm,
    half2_weighted_sum,
    half_pair_bits,
    shared_decl,
    tl,
    triton,
)

HWC_CHANNELS = 8  # fp16 channels per staged 16-byte pixel row

@functools.cache
def hwc_stage_plan(width: int, box_h: int, box_w: int, step: int, qpitch: int = 48) -> dict | None:
    """The constexprs of a sampler staging channels-last (this module) the footprint of a ``box_h`` x ``box_w``
    output box under any rotation (its diagonal plus margins, as triton_util.shared_stage_plan) for fp16 rows of
    ``width`` pixels: FH (rows), NCH (8-pixel chunks per row), PLANEC (chunks per plane of the planar stage P: FH x
    NCH and the 3 a transpose slot may read past them, odd so that a chunk's 8 planes fall in 8 bank groups), QP
    (pixels per row of Q, a multiple of 8, at least ``qpitch``), QOFF (Q's byte offset), STEP (``step`` chunks per
    plane per copy step), CPASM, DECL; SHARED is the bytes declared. None where the rows are not whole chunks or
    the stage would exceed SHARED_STATIC_MAX. Cached per launch geometry: callers must not change the dict."""
    if width % HWC_CHANNELS:
        return None
    fh = span = math.ceil(math.hypot(box_h, box_w)) + 4
    nch = -(-(span + 7) // 8)
    planec = (fh * nch + 3) | 1
    qp = max(-(-qpitch // 8) * 8, nch * 8)
    qoff = HWC_CHANNELS * planec * 16
    nbytes = qoff + (fh + 3) * qp * 16  # a transpose slot may write up to 3 chunks, so a row, past the rows
    if nbytes > SHARED_STATIC_MAX:
        return None
    return dict(FH=fh, NCH=nch, PLANEC=planec, QP=qp, QOFF=qoff, STEP=step, CPASM=copy_async_asm(16),
                DECL=shared_decl(nbytes), SHARED=nbytes)


def hwc_launchable(x, numel: int) -> bool:
    """Whether a linear fp16 input ``x`` of ``numel`` elements can be staged channels-last on its device: rows of
    whole 16-byte chunks, contiguous and 16-byte aligned (cp.async), int32 offsets, and sm_90 (stmatrix)."""
    import torch

    return (x.dtype == torch.float16 and x.shape[-1] % HWC_CHANNELS == 0 and x.is_contiguous()
            and x.data_ptr() % 16 == 0 and numel < 2**31 and x.is_cuda
            and torch.cuda.get_device_capability(x.device) >= (9, 0))


def hwc_warps(box_pixels: int) -> int:
    """Warps of a channels-last staged program of ``box_pixels`` output pixels (one per-lane tensor element each): 4
    where they fill whole rounds of 4 warps of 32 lanes, fewer for small boxes (a lane's elements must be its own;
    a tensor smaller than the warps would be replicated across lanes)."""
    for warps in (4, 2, 1):
        if box_pixels % (32 * warps) == 0:
            return warps
    raise ValueError(f"a channels-last staged box needs a multiple of 32 pixels, got {box_pixels}")


@triton.jit
def hwc_chunk(c):
    """The 16-byte row of Q that holds staged pixel index c (row * QP + x): the module's swizzle."""
    return c ^ ((c >> 2) & 7)


@triton.jit
def hwc_transpose(pbase, qbase, rows, NCH: tl.constexpr, PLANEC: tl.constexpr, QP: tl.constexpr, NE: tl.constexpr):
    """Rewrite the planar stage at ``pbase`` (plane j's chunk o = row * NCH + x // 8 at byte (j * PLANEC + o) * 16,
    as stage_box_async copies ``rows`` rows of NCH chunks with pitch NCH) channels-last at ``qbase`` (pixel (row, x)
    at hwc_chunk(row * QP + x) * 16, its channel j at byte 2 j). Slots of 4 chunks, one per warp and step; NE: the
    elements of the per-lane tensors (32 per warp and slot). Synchronous: a barrier makes Q visible."""
    e = tl.arange(0, NE)
    t = e % 32
    corner = t // 8  # which chunk of the slot this lane addresses (matrix), and which plane (row) / pixel (column)
    j = t % 8
    nslots = tl.cdiv(rows * NCH, 4)
    for s0 in tl.range(0, nslots, NE // 32):
        slot = s0 + e // 32
        o = slot * 4 + corner
        src = pbase + (j * PLANEC + o) * 16
        dst = qbase + hwc_chunk((o // NCH) * QP + (o % NCH) * 8 + j) * 16
        tl.inline_asm_elementwise(
            """{
            .reg .pred p;
            .reg .b32 a, b, c, d;
            setp.ne.b32 p, $3, 0;
            @p ldmatrix.sync.aligned.m8n8.x4.shared.b16 {a, b, c, d}, [$1];
            @p stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [$2], {a, b, c, d};
            }
            mov.u32 $0, 0;""", "=r,r,r,r", [src, dst, (slot < nslots).to(tl.int32)], dtype=tl.int32,
            is_pure=False, pack=1)  # ldmatrix of 4 chunks of the 8 planes, stmatrix .trans of them to Q


@triton.jit
def hwc_corners(addr):
    """ldmatrix .x4 at this lane's row address: (c00, c01, c10, c11), the four corners of pixel lane // 4 of the
    warp's group, channels 2 (lane % 4) and + 1 as half2 words (where lanes 8i .. 8i + 7 give corner i of the
    group's pixels 0 .. 7). Not pure: Q is rewritten between blocks at the same addresses."""
    return tl.inline_asm_elementwise("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {$0, $1, $2, $3}, [$4];",
                                     "=r,=r,=r,=r,r", [addr], dtype=(tl.int32,) * 4, is_pure=False, pack=1)


@triton.jit
def half2_bilinear(c00, c01, c10, c11, w00, w01, w10, w11, HALF_MATH: tl.constexpr):
    """The bilinear sum of four half2 corner words as one half2 word. HALF_MATH (fp16x2): w00 .. w11 are half2 words
    of the weights (half2_splat) and the sum is triton_util.half2_weighted_sum; else fp32 weights, each channel
    converted and summed in fp32 (add_half_pairs), then rounded to fp16 once and packed."""
    if HALF_MATH:
        return half2_weighted_sum(c00, c01, c10, c11, w00, w01, w10, w11)
    z = tl.zeros(w00.shape, dtype=tl.float32)
    lo, hi = add_half_pairs(c00, w00, z, z, False)
    lo, hi = add_half_pairs(c01, w01, lo, hi, False)
    lo, hi = add_half_pairs(c10, w10, lo, hi, False)
    lo, hi = add_half_pairs(c11, w11, lo, hi, False)
    return half_pair_bits(lo, hi)


@triton.jit
def store_half2_quads(lo_ptr, r0, r1, r2, r3, lo_ok, hi_ok, SPLANE: tl.constexpr):
    """Store four half2 words (a lane's four neighbouring pixels, low half channel c, high c + 1) as two 8-byte
    stores: the four low halves at ``lo_ptr`` (fp16 pointers of channel c's first pixel, 8-byte aligned), the high
    ones a plane (SPLANE elements) on; each where its mask holds."""
    lo = lo_ptr.to(tl.int64, bitcast=True)
    tl.inline_asm_elementwise(
        """{
        .reg .pred p, q;
        .reg .b32 l0, l1, h0, h1;
        setp.ne.b32 p, $7, 0;
        setp.ne.b32 q, $8, 0;
        prmt.b32 l0, $3, $4, 0x5410;
        prmt.b32 l1, $5, $6, 0x5410;
        prmt.b32 h0, $3, $4, 0x7632;
        prmt.b32 h1, $5, $6, 0x7632;
        @p st.global.v2.b32 [$1], {l0, l1};
        @q st.global.v2.b32 [$2], {h0, h1};
        }
        mov.u32 $0, 0;""", "=r,l,l,r,r,r,r,r,r",
        [lo, lo + SPLANE * 2, r0, r1, r2, r3, lo_ok.to(tl.int32), hi_ok.to(tl.int32)], dtype=tl.int32,
        is_pure=False, pack=1)
