"""Triton kernels of rotate (a BEV feature map turned by an angle about a centre), one per precision.

Entry point (called by op.py on CUDA tensors)::

    rotate_cuda(img, angle, center=None, interpolation=0, precision="fp32", scales=None) -> like img

img (..., H, W), every leading plane turned alike; angle in degrees, counter-clockwise positive (a float or a
one-element tensor, read in the kernel so that a device angle needs no host sync); center (x, y) in pixels
(None: the image centre); interpolation 0/'bilinear' or 1/'nearest'; zeros outside. Semantics of
torchvision.transforms.functional.rotate on tensors (inverse affine map, then grid_sample with
align_corners=False), which BEVFormer uses to align prev_bev with the ego motion.

Layouts: "linear", or a channel-vectorized layout of layouts.py (TensorRT's kCHW4, kCHW2, ...) for img and
output alike, where each corner gather loads a vector of channels (grid_sampler/kernels.py says why).

The linear bilinear fp16 / fp16x2 / int8 rows stage each program's input footprint in shared memory
(_rotate_staged_kernel, TUNING "staged"; GPU only, the unstaged kernel elsewhere).

Variants: fp32; fp16 (fp16 storage, fp32 sum, fp16 out); fp16x2 (corner weights and sum in fp16);
int8 (img int8 with scales["img"], fp32 sum, fp16 out). The rotation matrix is always computed in fp32.
"""

import math
from collections.abc import Mapping, Sequence

import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.hwc_stage import (
    half2_bilinear,
    hwc_chunk,
    hwc_corners,
    hwc_launchable,
    hwc_stage_plan,
    hwc_transpose,
    hwc_warps,
    store_half2_quads,
)
from bevdeploy.plugins.trt_ops.layouts import physical_vector
from bevdeploy.plugins.trt_ops.triton_util import (
    PITCH_STEPS,
    bilinear_corner,
    bilinear_weights,
    box_or_runs,
    box_pixels,
    box_tile,
    check_launch,
    corner_pair,
    float_quotients,
    float_storage,
    half2_splat,
    int8_input,
    interleave_asm,
    interpreting,
    out_dtype,
    packed_words,
    pair_row,
    pitch_words,
    plane_strides,
    plane_tiles,
    quotient,
    reciprocal,
    sampler_add,
    sampler_add_pair,
    sampler_result,
    sampler_store_words,
    sampler_zeros,
    shared_base,
    shared_commit,
    shared_stage_plan,
    shared_sync,
    stage_box_async,
    stage_words_sync,
    staged_bilinear,
    staged_interleave,
    staged_pitch,
    staged_word_bilinear,
    staged_words,
    tile_ptrs,
    tl,
    to_f32,
    triton,
    tuned,
    vector_key,
    vector_tile,
    word_store,
)

OP = "rotate"
# launch shape; benchmarks/ops.py --sweep varies it ("vec_*" keys: the vectorized layouts' shape, one vector or a
# VB-channel part of one per program; several short vectors per program measured slower, NOTES-ops.md run 8)
# per precision: shapes that won in both the run 5 and the run 12 sweeps (H200): int8 16 x 128 (0.023 vs 0.029
# ms), fp16 8 x 512 on 8 warps (0.024 vs 0.025), fp32 8 x 512 on 8 warps (0.030 - 0.031 vs 0.031 - 0.032)
# run 16 sweeps (H200): 32-byte vector loads (kCHW32 in int8 / fp16) fastest at one pixel per thread ("vec_wide_*":
# int8 0.0123 - 0.0124 ms at 64 - 128 pixels vs 0.0127 - 0.0131 at 256 or on 8 warps; fp16 / fp16x2 0.0134 /
# 0.0127 at 256 pixels on 8 warps vs 0.0136 / 0.0131 at 128 on 4)
# run 18 sweep (H200): int8 kCHW4 with 4 vectors per program ("vec_vectors", triton_util.vector_tile): 0.0183 ->
# 0.0127 ms (2 vectors 0.0147, 8 vectors 0.0158). fp16 / fp16x2 kCHW2 gain 9 / 14% with 4 (0.0295 -> 0.0268,
# 0.0288 -> 0.0247, per_precision cleared) but stay slower than linear fp16 (element loads; session 11's word
# gathers below changed that)
# session 11 (H200, two runs each, same machine): int8 kCHW4 with each word's four fp16 results in one 8-byte store
# ("vec_word_store", triton_util.sampler_store_words) 0.0124 -> 0.0115 ms (62.9% of copy; the grid sampler's
# gained too once its store was held to one pixel per lane). Sweep (ops-sweep-run21): fp16 / fp16x2 kCHW2 as int32
# words ("vec_half_words", triton_util.add_half_pairs) with 4 vectors per program 0.0287 -> 0.0158 ms, 0.0265 ->
# 0.0153 (256 pixels on 4 warps; fp16's default runs 512 on 8, the same per thread; run 21: 0.0158 / 0.0153)
# session 12 A/B (H200, results/ab-s12-2.jsonl): in-bounds corner pairs without masks ("pairs" / "vec_pairs", as in
# the grid sampler) faster for int8 (linear 0.0229 -> 0.0207 ms, kCHW4 0.0116 -> 0.0109) and the fp16 / fp16x2 vectors
# (-1 .. -5%), slower for fp32 and fp16 linear (+8 / +7%; no launch shape of the sweep recovered them)
# session 15 sweep (H200, ops-sweep-s15a): the plane size as a compile-time constant ("static_strides",
# triton_util.tile_ptrs) fp32 0.0307 -> 0.0289 ms, fp16 0.0241 -> 0.0218, fp16x2 0.0258 -> 0.0247; int8 0.0207 ->
# 0.0345 (off; not looked into)
# session 16 (H200, ops-sweep-s16a / -s16b, ncu-s16): that int8 loss is L2 traffic. With constant strides ptxas keeps
# Triton's load order, all 16 channels of a corner and then all 16 of its x-neighbour, and the second load of a
# sector misses L1 again while the first is in flight (ncu: L1 hit 69% -> 30%, L2 104 -> 202 MB, 88% busy; 0.0344 -
# 0.0345 ms in two calls). With 8 channels per program the pair is 8 loads apart (61%); 8 channels x 512 pixels on
# 8 warps with constant strides: 0.0179 ms (16 x 128 dynamic, the old default: 0.0207). Forcing each pair's loads
# back to back (inline PTX) took 16 x 128 to 0.0247 (L1 hit 53%) and was slower elsewhere: not kept (NOTES-ops 27)
# ("vec_num_warps": the kCHW4 rows keep their 4 warps; with int8's 8 they measured 0.0109 -> 0.0114 in run 29)
# session 18 (H200, rotate_staged-s18.json, NOTES-ops 29): linear bilinear fp16 / fp16x2 through shared memory
# ("staged", _rotate_staged_kernel; "stage_*" its box, planes per block, blocks per program, rows per copy step,
# warps): 0.0216 -> 0.0188 ms / 0.0243 -> 0.0189 at 16 x 32 boxes, 4 planes x 4 blocks (2 blocks 0.0192, 1 block
# 0.0218; 8 x 32 boxes 0.0219); int8 0.0179 -> 0.0196 (slower: stays unstaged)
# session 19 (H200, scratch driver; NOTES-ops item 30): the copy as one flat run of whole rows per plane with the
# lanes past it predicated off (before: a lane per (row, chunk slot), the spare slots writing one spare chunk; ncu:
# 2.26 M excess shared wavefronts, all in the cp.async) fp16 0.0196 -> 0.0184 ms, fp16x2 0.0197 -> 0.0185; int8
# staged now 0.0179 -> 0.0165, with 8 planes x 2 blocks 0.0156 (on). A fixed wider row pitch moves the ld.shared
# bank conflicts (1.42 wavefronts per load at 7.3 degrees) but measured slower there (0.0193 - 0.0355); the conflicts
# depend on the angle (fp16 0.0161 ms at 0 degrees, 0.0218 at 3, 0.0599 at 90), so each program now takes its row
# pitch from a table by angle (triton_util.shared_pitch_table, up to "stage_pad" chunks wider, in a plane a little
# larger): with 3, fp16 at 2 - 5 degrees 0.0205 - 0.0220 -> 0.0178 - 0.0188 ms, 90 degrees 0.0603 -> 0.0372, int8
# at 20 / 90 / -7.3 degrees 0.0218 / 0.0348 / 0.0197 -> 0.0167 / 0.0230 / 0.0161; the table lookup cost the 7.3-
# degree anchor 0.0182 -> 0.0187 as a device tensor (scratch driver), 0.0185 as compile-time words (run 37)
# session 20 (H200, results/rotate_angles-s20.md, NOTES-ops item 31): int8 staged 4 channels to a shared word
# ("stage_words", triton_util.stage_words_sync: through registers, a byte permute, st.shared.v4), so that one
# ld.shared reads a corner of 4 channels: at 8 x 32 boxes and 4 blocks of 8 planes 0.0151 - 0.0156 ms from 0 to 10
# degrees (planes: 0.0150 - 0.0171), 0.0166 at 20 (0.0168), 0.0222 / 0.0246 at 45 / 90 (0.0220 / 0.0228); 16 x 32
# boxes ran 0.0143 - 0.0147 up to 7.3 degrees but 0.0179 - 0.0180 at 10 - 20, where the copy needs a second step.
# fp16 / fp16x2 pairs were slower at every angle but 90 (0.0201 - 0.0227 ms at 0 - 7.3 degrees against 0.0166 -
# 0.0186): they stay on cp.async planes
# session 21 (H200, results/rotate_angles-s21.md, NOTES-ops item 32): each staged row copied only as far as the
# footprint's x extent reaches ("stage_fit_x", _footprint; the plan's NCH chunks cover the box's diagonal): fp16 at 2 /
# 3 / 5 / 90 degrees 0.0175 / 0.0179 / 0.0184 / 0.0371 -> 0.0170 / 0.0173 / 0.0179 / 0.0358 ms, 0 and 7.3 degrees
# unchanged (fp16x2 alike); int8's synchronous word copy 1 - 3% slower at 0 - 5 and -7.3 degrees, 7% faster at 90
# (0.0245 -> 0.0228): off for int8, whose anchor is the small angles. fp16 staged channels-last ("stage_hwc",
# _rotate_hwc_kernel: ldmatrix gathers of 8 channels) was correct but slower at every angle but 90 (0.0267 - 0.0310 ms
# against 0.0166 - 0.0239; 90 degrees 0.0304 against 0.0358): its 16 x 16 boxes read a footprint ~3.4x the box and it
# waits on its copies (ncu, results/ncu-s21); off
# session 27 (H200 and H100, results/tune-s27-*.md, rotate_angles-s27-*.md; NOTES-ops item 39): 2 blocks per program
# for every staged row (was 4) and int8 in 16 x 32 boxes (was 8 x 32): int8 at 7.3 degrees 0.0157 -> 0.0147 ms warm,
# 0.0187 -> 0.0166 cold on the H200 (H100: 0.0174 -> 0.0156, 0.0203 -> 0.0181), and faster at 0 - 7.3 and 45 - 90
# degrees on both, but slower at 10 - 20 (H200 0.0155 -> 0.0179 at 10: the 16-row box's copy takes a second step
# there, as in session 20); fp16 / fp16x2 within 1% on the H200 (+1% at 0 - 5 degrees, -2 to -4% at 20 - 90) and 1 -
# 5% faster on the H100
# session 36 (results/tune-s36-parity-*.md, two rounds, warm and cold): fp32 with each pixel's even row gathered
# first ("row_parity", triton_util.even_row_first) 0.0344 -> 0.0339 ms on the H100, 0.0285 -> 0.0279 on the H200;
# the vectors level or slower with it (fp16 kCHW2 +3% warm on the H200, int8 kCHW4 +14%): off there
TUNING = {"block_c": 4, "block_p": 256, "num_warps": 4, "one_pix": True, "vec_block_p": 256, "vec_wide_block_p": 128,
          "vec_wide_num_warps": 4, "vec_num_warps": None, "vec_vectors": 1, "vec_word_store": False,
          "vec_half_words": False, "pairs": False, "vec_pairs": False, "ptr_first": False, "static_strides": False,
          "staged": False, "stage_by": 16, "stage_bx": 32, "stage_block_c": 4, "stage_blocks": 2, "stage_step": 64,
          "stage_pad": 3, "stage_num_warps": 4, "stage_words": False, "stage_word_step": 256,
          "stage_fit_x": True, "stage_hwc": False, "stage_hwc_box": (16, 16), "stage_hwc_blocks": 4,
          "stage_hwc_qpitch": 48, "stage_hwc_maxnreg": None, "row_parity": False, "vec_row_parity": False,
          # session 38 (results/tune-s38-rotate-*.md, rotate_angles-s38-chw32-*.md; NOTES-ops item 48): the 32-byte
          # vectors (kCHW32 fp16 / fp16x2 / int8) in boxes of 16 rows, two rounds: H100 -5.5 / -2.7 / -1.9% warm,
          # -2.9 / -2.6 / -5.2% cold; H200 +0.8 / -1.6 / +0.5% warm, -2.8 / -2.1 / -4.0% cold; as fast or faster at
          # every angle from 0 to 90 degrees (fp16 at 45: -10%). kCHW2 / kCHW4 / linear lost in every box (+2 ..
          # +31%): runs
          "vec_wide_row_parity": None, "tile_y": 0, "vec_tile_y": 0, "vec_wide_tile_y": 16,
          "per_precision": {"int8": {"block_c": 8, "block_p": 512, "num_warps": 8, "vec_num_warps": 4, "vec_vectors": 4,
                                     "vec_word_store": True, "pairs": True, "vec_pairs": True, "static_strides": True,
                                     "staged": True, "stage_block_c": 8, "stage_words": True, "stage_fit_x": False},
                            "fp16": {"block_c": 8, "block_p": 512, "num_warps": 8, "vec_block_p": 512,
                                     "vec_wide_block_p": 256, "vec_wide_num_warps": 8, "vec_half_words": True,
                                     "vec_vectors": 4, "vec_pairs": True, "static_strides": True, "staged": True},
                            # session 25 (results/tune-s25-*.md): kCHW2 in fp16's 512 pixels on 8 warps, 0.0161 ->
                            # 0.0145 ms warm, 0.0181 -> 0.0167 cold (three rounds alike)
                            "fp16x2": {"vec_block_p": 512, "vec_num_warps": 8,
                                       "vec_wide_block_p": 256, "vec_wide_num_warps": 8, "vec_half_words": True,
                                       "vec_vectors": 4, "vec_pairs": True, "static_strides": True, "staged": True},
                            "fp32": {"block_c": 8, "block_p": 512, "num_warps": 8, "static_strides": True, "row_parity": True}}}
# every entry up to session 14's clears per_precision so that it measures the shape it names
SWEEP = [{**cfg, "per_precision": {}} for cfg in (
    {"one_pix": False}, {"one_pix": True}, {"block_c": 8, "block_p": 256}, {"block_c": 16, "block_p": 128},
    {"block_c": 8, "block_p": 512, "num_warps": 8},
    {"vec_block_p": 256}, {"vec_block_p": 128}, {"vec_block_p": 512, "num_warps": 8},
    {"vec_block_p": 128, "num_warps": 2}, {"vec_block_p": 256, "num_warps": 2},
    {"vec_wide_block_p": 64, "vec_wide_num_warps": 2}, {"vec_wide_block_p": 128}, {"vec_wide_block_p": 256},
    {"vec_wide_block_p": 256, "vec_wide_num_warps": 8}, {"vec_wide_block_p": 128, "vec_wide_num_warps": 8},
    {"vec_vectors": 2}, {"vec_vectors": 4}, {"vec_vectors": 8}, {"vec_vectors": 4, "vec_block_p": 128},
    {"vec_vectors": 4, "vec_block_p": 128, "num_warps": 2},
    {"vec_vectors": 4, "vec_word_store": True}, {"vec_vectors": 4, "vec_word_store": False},
    *({"vec_half_words": h, "vec_vectors": v} for h in (False, True) for v in (1, 2, 4, 8)),
    {"pairs": False, "vec_pairs": False}, {"pairs": True, "vec_pairs": True})] + [
    # session 15, over the per-precision defaults: per-pixel pointers, the plane size as a constant (tile_ptrs)
    {"ptr_first": True}, {"static_strides": True},
    # session 18: the linear bilinear rows with the input staged in shared memory (_rotate_staged_kernel)
    {"staged": False}, {"staged": True}, {"staged": True, "stage_blocks": 2}, {"staged": True, "stage_block_c": 2},
    {"staged": True, "stage_block_c": 8, "stage_blocks": 2}, {"staged": True, "stage_step": 32},
    # session 19: the row pitch (bank conflicts) and int8's planes per block
    {"staged": True, "stage_pad": 0}, {"staged": True, "stage_pad": 1}, {"staged": True, "stage_pad": 3},
    {"staged": True, "stage_pad": 7}, {"staged": True, "stage_step": 128},
    {"staged": True, "stage_block_c": 8, "stage_blocks": 2},
    # session 20: IL channels to a staged word (fp16 2, int8 4), staged through registers (stage_words_sync)
    *({"staged": True, "stage_words": True, "stage_word_step": s} for s in (128, 256, 512)),
    {"staged": True, "stage_words": True, "stage_block_c": 8, "stage_blocks": 2},
    {"staged": True, "stage_words": True, "stage_block_c": 4, "stage_blocks": 4},
    {"staged": True, "stage_words": True, "stage_by": 8, "stage_blocks": 4},
    {"staged": True, "stage_words": True, "stage_by": 16, "stage_blocks": 2},
    # session 21: fitted row copies; the channels-last staging (_rotate_hwc_kernel, fp16 / fp16x2)
    {"staged": True, "stage_fit_x": False}, {"staged": True, "stage_fit_x": True},
    *({"stage_hwc": True, "stage_hwc_blocks": b} for b in (2, 4)), {"stage_hwc": True, "stage_hwc_maxnreg": 80},
    # session 36: each pixel's even row gathered first (triton_util.even_row_first)
    {"row_parity": True}, {"vec_row_parity": True}]


@triton.jit
def _rint(x):
    f = tl.floor(x)
    d = x - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) != 0
    return tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)


@triton.jit
def _cos_sin_degrees(deg):
    """(cos, sin) of an angle in degrees, in fp32 to about an ulp: whole quarter turns taken off exactly (|deg| <
    2^16), then Cephes' minimax polynomials of sinf / cosf on [-pi/4, pi/4]. About 20 instructions per thread;
    tl.cos / tl.sin (libdevice) each bring a range reduction of their own and, in code, a slow path for huge
    arguments (offline sm_90 SASS: ~40 executed instructions for the pair)."""
    q = tl.floor(deg * (1.0 / 90.0) + 0.5)
    x = (deg - q * 90.0) * 0.017453292519943295
    z = x * x
    s = x + x * z * ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1)
    c = 1.0 - 0.5 * z + z * z * ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2)
    n = q.to(tl.int32)
    odd = (n & 1) != 0  # a quarter turn more: (cos, sin) -> (-sin, cos)
    cs = tl.where(odd, -s, c)
    sn = tl.where(odd, c, s)
    half = (n & 2) != 0  # a half turn more: both negated
    return tl.where(half, -cs, cs), tl.where(half, -sn, sn)


@triton.jit
def _inverse_rotation(angle_ptr, center_ptr, H, W):
    """(cos, sin, kx, ky, W / 2, H / 2) of the map from output pixels back to source pixels (torchvision's inverse
    affine matrix in centre-relative coordinates), read from the device angle (degrees) and centre (x, y)."""
    cs, sn = _cos_sin_degrees(-tl.load(angle_ptr).to(tl.float32))
    hw = W * 0.5
    hh = H * 0.5
    cx = tl.load(center_ptr).to(tl.float32) - hw
    cy = tl.load(center_ptr + 1).to(tl.float32) - hh
    return cs, sn, cx - cs * cx - sn * cy, cy + sn * cx - cs * cy, hw, hh


@triton.jit
def _source_xy(xo, yo, cs, sn, kx, ky, hw, hh):
    """The source pixel (x, y) of centre-relative output coordinates (xo, yo) under _inverse_rotation's map."""
    return cs * xo + sn * yo + kx + hw - 0.5, -sn * xo + cs * yo + ky + hh - 0.5


@triton.jit
def _footprint(oy0, ox0, BY: tl.constexpr, BX: tl.constexpr, cs, sn, kx, ky, hw, hh, EC: tl.constexpr,
               FH: tl.constexpr, NCH: tl.constexpr):
    """(first row, first pixel (down to a chunk of EC pixels), rows, chunks per row) of the source footprint of the
    BY x BX output box at (oy0, ox0): the bounds of _source_xy over the box's corners, a pixel of margin absorbing
    the rounding, the rows capped at the plan's FH and the chunks at its NCH (the box's diagonal, which the x extent
    never exceeds; at small angles it is a chunk or two less, and copying only those saves L2 traffic)."""
    xa = ox0.to(tl.float32) + 0.5 - hw  # the box's corner pixels, centre-relative
    xb = xa + (BX - 1)
    ya = oy0.to(tl.float32) + 0.5 - hh
    yb = ya + (BY - 1)
    sx = tl.minimum(cs * xa, cs * xb) + tl.minimum(sn * ya, sn * yb) + kx + hw - 0.5
    ex = tl.maximum(cs * xa, cs * xb) + tl.maximum(sn * ya, sn * yb) + kx + hw - 0.5
    sy = tl.minimum(-sn * xa, -sn * xb) + tl.minimum(cs * ya, cs * yb) + ky + hh - 0.5
    ey = tl.maximum(-sn * xa, -sn * xb) + tl.maximum(cs * ya, cs * yb) + ky + hh - 0.5
    fy0 = tl.floor(sy).to(tl.int32) - 1
    fxe = tl.floor(sx).to(tl.int32) - 1
    fx0 = fxe - ((fxe % EC) + EC) % EC  # down to a chunk
    ncx = tl.minimum((tl.floor(ex).to(tl.int32) + 2 + EC - fx0) // EC, NCH)  # up to pixel floor(ex) + 2
    return fy0, fx0, tl.minimum(tl.floor(ey).to(tl.int32) + 3 - fy0, FH), ncx


@triton.jit
def _source_cell(oy, ox, cs, sn, kx, ky, hw, hh, fy0, fx0, XMAX: tl.constexpr, YMAX: tl.constexpr):
    """Output pixel (oy, ox)'s source position under _inverse_rotation's map as (fx, fy, xs, ys): its fractions within
    the source pixel, and that pixel relative to a staged footprint at (fy0, fx0), clamped so that its corners stay
    inside the XMAX x YMAX pixels staged."""
    ix, iy = _source_xy(ox.to(tl.float32) + 0.5 - hw, oy.to(tl.float32) + 0.5 - hh, cs, sn, kx, ky, hw, hh)
    x0f = tl.floor(ix)
    y0f = tl.floor(iy)
    xs = tl.minimum(tl.maximum(x0f.to(tl.int32) - fx0, 0), XMAX - 2)
    ys = tl.minimum(tl.maximum(y0f.to(tl.int32) - fy0, 0), YMAX - 2)
    return ix - x0f, iy - y0f, xs, ys


@triton.jit
def _rotate_kernel(
    in_ptr, out_ptr, angle_ptr, center_ptr, H, W, out_scale,
    NEAREST: tl.constexpr, HALF_MATH: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr, ONE_PIX: tl.constexpr,
    NPLANES, VEC: tl.constexpr, PACKED: tl.constexpr = 0, WORD_STORE: tl.constexpr = False,
    PAIRS: tl.constexpr = False, SIZE1: tl.constexpr = False, PTR_FIRST: tl.constexpr = False,
    SPLANE: tl.constexpr = 0, ROW_PARITY: tl.constexpr = False, INV_W=1.0, FQ: tl.constexpr = False,
    TY: tl.constexpr = 0, INV_NX=1.0, INV_NY=1.0,
):
    """[pixels, channels] tile: neighbouring output pixels (neighbouring source addresses) on neighbouring
    lanes, the inverse-mapped position computed once per pixel for the channel block. VEC > 1: input and output
    in the channel-vectorized layout (NPLANES / VEC, H, W, VEC) of layouts.py, the channel block inside one
    vector (one vector load per corner), NPLANES counting the padded channels. PACKED (bilinear, channels per int32
    word: 4 for int8, 2 for fp16 pairs; triton_util.packed_words): in_ptr holds int32 words, summed by
    triton_util.add_packed_int8 / add_half_pairs; WORD_STORE writes the sums word by word
    (triton_util.sampler_store_words) instead of through sampler_result. PAIRS / SIZE1: as in the grid sampler's
    kernel (in-bounds corner pairs without masks; triton_util.corner_pair). PTR_FIRST / SPLANE (linear layout): as
    there, pointers per pixel plus each plane's offset (triton_util.tile_ptrs), SPLANE > 0 the plane size H * W as a
    compile-time constant (NPLANES % BLOCK_C == 0). ROW_PARITY: the even one of a pixel's two rows gathered first
    (triton_util.even_row_first), as in the grid sampler. INV_W / FQ: 1 / W for a pixel's row, through the fp32
    reciprocal where FQ (triton_util.quotient). TY == 0: a program's BLOCK_P output pixels are consecutive; TY > 0:
    a box of TY rows x BLOCK_P / TY columns (triton_util.box_tile, INV_NX / INV_NY its reciprocals), whose source
    footprint is more compact where the turn crosses rows along a run."""
    if TY == 0:
        pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        pmask = pix < H * W
        py = quotient(pix, W, INV_W, FQ)
        px = pix - py * W
    else:
        TX: tl.constexpr = BLOCK_P // TY
        bx, by, bz = box_tile(tl.program_id(0), W, H, TX, TY, INV_NX, INV_NY)
        px, py, _, pmask = box_pixels(bx, by, bz, W, H, 1, TX, TY, 1)
        pix = py * W + px
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)  # VEC > 1: part of a vector, or whole ones
    src = in_ptr
    dst = out_ptr
    if VEC == 1:
        lmask = (c < NPLANES)[None, :]
        if PTR_FIRST:  # the program's first plane as the base, planes relative to it
            c0 = tl.program_id(1) * BLOCK_C
            plane = SPLANE if SPLANE else H * W
            src, dst, cbase, cout = plane_tiles(in_ptr, out_ptr, c0, c, c0, NPLANES, plane, plane, BLOCK_C, SPLANE > 0)
        else:
            cbase = (c * (H * W))[None, :]
            cout = cbase
    else:
        cbase = ((c // VEC) * (H * W) * VEC + c % VEC)[None, :]
        cout = cbase
        lmask = tl.full([1, BLOCK_C], 1, tl.int1)  # no channel mask: it would split the vector load
    STEP: tl.constexpr = VEC // PACKED if PACKED else VEC  # elements (PACKED: words) per pixel
    ibase = cbase  # offsets of the program's channels (PACKED: words) in input and output, pixel 0
    if PACKED:  # the same channels in int32 words
        j = tl.program_id(1) * (BLOCK_C // PACKED) + tl.arange(0, BLOCK_C // PACKED)
        ibase = ((j // STEP) * (H * W) * STEP + j % STEP)[None, :]
    cs, sn, kx, ky, hw, hh = _inverse_rotation(angle_ptr, center_ptr, H, W)
    ix, iy = _source_xy(px.to(tl.float32) + 0.5 - hw, py.to(tl.float32) + 0.5 - hh, cs, sn, kx, ky, hw, hh)
    if NEAREST:
        x = _rint(ix).to(tl.int32)
        y = _rint(iy).to(tl.int32)
        ok = pmask & (x >= 0) & (x < W) & (y >= 0) & (y < H)
        v = tl.load(tile_ptrs(src, cbase, (y * W + x) * VEC, PTR_FIRST), mask=lmask & ok[:, None], other=0)
        res = to_f32(v) * out_scale
    else:
        x0f = tl.floor(ix)
        y0f = tl.floor(iy)
        a0, a1, a2, a3, wsum = sampler_zeros(BLOCK_P, BLOCK_C, PACKED, HALF_MATH)
        if PAIRS:  # in-bounds corner pairs (triton_util.corner_pair), channels clamped to the last one: no masks
            xb, wx0, wx1 = corner_pair(x0f.to(tl.int32), ix - x0f, W)
            yb, wy0, wy1 = corner_pair(y0f.to(tl.int32), iy - y0f, H)
            cl = ibase if VEC > 1 or PACKED or PTR_FIRST else (tl.minimum(c, NPLANES - 1) * (H * W))[None, :]
            row = tile_ptrs(src, cl, (yb * W + xb) * STEP, PTR_FIRST)
            for dy in tl.static_range(2):  # the corner rows, each a pair along x
                yoff, wr = pair_row(dy, yb, wy0, wy1, W * STEP, ROW_PARITY)
                a0, a1, a2, a3, wsum = sampler_add_pair(row + yoff, STEP, wr * wx0, wr * wx1,
                                                        H > 1 if dy == 1 else True, W, a0, a1, a2, a3, wsum, SIZE1,
                                                        PACKED, HALF_MATH)
        else:  # each corner masked where it lies off the map
            fx = ix - x0f
            fy = iy - y0f
            x0 = x0f.to(tl.int32)
            y0 = y0f.to(tl.int32)
            for k in tl.static_range(4):
                x, y, w, ok = bilinear_corner(k, x0, y0, fx, fy, W, H, pmask, ROW_PARITY)
                a0, a1, a2, a3, wsum = sampler_add(tile_ptrs(src, ibase, (y * W + x) * STEP, PTR_FIRST), w,
                                                   ok[:, None] & (True if PACKED else lmask), a0, a1, a2, a3, wsum,
                                                   PACKED, HALF_MATH)
        if not WORD_STORE:
            res = sampler_result(a0, a1, a2, a3, wsum, out_scale, BLOCK_P, BLOCK_C, PACKED)
    if WORD_STORE:  # the output's words at the input's word offsets; one pixel per lane, as in the gathers
        pix = tl.max_contiguous(pix, 1)
        sampler_store_words(out_ptr, ibase + (pix * STEP)[:, None], a0, a1, a2, a3, wsum, out_scale, pmask[:, None],
                            PACKED)
    else:
        if ONE_PIX and VEC == 1:  # one pixel per lane: a vectorised store gives each lane several pixels and spreads the gathers
            pix = tl.max_contiguous(pix, 1)
        optr = tile_ptrs(dst, cout, pix * VEC, PTR_FIRST)
        tl.store(optr, res.to(out_ptr.dtype.element_ty), mask=lmask & pmask[:, None])


@triton.jit
def _rotate_staged_kernel(
    in_ptr, out_ptr, angle_ptr, center_ptr, H, W, out_scale, NPLANES,
    BY: tl.constexpr, BX: tl.constexpr, BLOCK_C: tl.constexpr, NCB: tl.constexpr, HALF_MATH: tl.constexpr,
    SPLANE: tl.constexpr, FH: tl.constexpr, NCH: tl.constexpr, PLANEC: tl.constexpr, CHUNK: tl.constexpr,
    EC: tl.constexpr, BUF: tl.constexpr, STEP: tl.constexpr, CPASM: tl.constexpr, DECL: tl.constexpr,
    LD4: tl.constexpr, LDT: tl.constexpr, TAB: tl.constexpr, NTAB: tl.constexpr, IL: tl.constexpr = 1,
    ILASM: tl.constexpr = "", FITX: tl.constexpr = True,
):
    """Bilinear rotate of the linear layout with the input staged in shared memory (triton_util.stage_box_async).
    A program takes a BY x BX box of output pixels and NCB blocks of BLOCK_C planes. Its input footprint (the box
    mapped back, a pixel of margin each side; never more than the box's diagonal, whatever the angle) is copied
    into shared memory one plane block at a time, the next block's copy in flight while this one is gathered from
    the other of two buffers, with the row pitch that the table TAB (triton_util.shared_pitch_table) gives
    the angle: the fewest shared-memory bank conflicts for a warp's row of pixels. Each pixel then reads its four
    corners with ld.shared (LD4); corners off the map read the zeros the staging wrote, so zeros padding needs no
    masks. The per-pixel work (source position, weights, shared addresses) is done once for all NCB blocks. Weights
    and sum in fp32, or in fp16 where HALF_MATH (fp16x2). The rest of shared_stage_plan's constexprs: FH .. LDT;
    TAB / NTAB: the table (triton_util.pitch_words) and its entries (modelled for warps of 32 pixels of one output
    row: BX >= 32). IL > 1: in_ptr holds words of 4 pixels and each block's planes are staged IL to a shared word
    (triton_util.stage_words_sync, ILASM its permute; the plan is then of 4-byte elements and BLOCK_C / IL planes),
    so that one ld.shared reads a corner of IL channels (staged_word_bilinear). FITX: copy only the chunks of each
    row that the footprint's x extent covers (_footprint), not all NCH."""
    tiles_x = tl.cdiv(W, BX)
    oy0 = (tl.program_id(0) // tiles_x) * BY
    ox0 = (tl.program_id(0) % tiles_x) * BX
    cbase = tl.program_id(1) * (BLOCK_C * NCB)
    cs, sn, kx, ky, hw, hh = _inverse_rotation(angle_ptr, center_ptr, H, W)
    fy0, fx0, rows, ncx = _footprint(oy0, ox0, BY, BX, cs, sn, kx, ky, hw, hh, EC, FH, NCH)
    # without FITX every row's NCH chunks, as the plan sizes them (the copy before session 21); the copies below take
    # `ncx if FITX else NCH` inline, as a constexpr assigned to a local would become a run-time value (and the copy
    # then tests every chunk against it: triton_util._live_slots)
    # the staged row pitch for the direction a warp's pixels (one output row) walk the source: fewest bank conflicts
    pitch = staged_pitch(cs, -sn, rows, NCH, PLANEC, TAB, NTAB)
    base = shared_base(DECL)
    cc = tl.arange(0, BLOCK_C)
    NS: tl.constexpr = BLOCK_C // IL  # staged planes per block
    sc = tl.arange(0, NS)
    if IL == 1:
        stage_box_async(in_ptr, base, (cbase + cc) * SPLANE, cbase + cc < NPLANES, fy0, fx0, rows, pitch, H, W,
                        BLOCK_C, PLANEC, NCH, STEP, CHUNK, EC, CPASM, ncx if FITX else NCH)
        shared_commit()
    else:
        stage_words_sync(in_ptr, base, (cbase + sc * IL) * (SPLANE // 4), SPLANE // 4, NPLANES - cbase - sc * IL,
                         fy0, fx0, rows, pitch, H, W, NS, IL, PLANEC, NCH, STEP, ILASM, ncx if FITX else NCH)
        shared_sync(-1)
    p = tl.arange(0, BY * BX)
    oy = oy0 + p // BX
    ox = ox0 + p % BX
    pmask = (oy < H) & (ox < W)
    fx, fy, xs, ys = _source_cell(oy, ox, cs, sn, kx, ky, hw, hh, fy0, fx0, NCH * EC, FH)
    w00, w01, w10, w11 = bilinear_weights(fx, fy, out_scale)  # [pixels]; [:, None] against a [pixels, planes] tile
    ESIZE: tl.constexpr = CHUNK // EC
    paddr = base + (ys * (pitch * EC) + xs) * ESIZE
    saddr = paddr[:, None] + (sc * (PLANEC * CHUNK))[None, :]
    opix = out_ptr + cbase * SPLANE + tl.max_contiguous(oy * W + ox, 1)  # one pixel per lane
    hx = fx[:, None].to(tl.float16)  # fp16x2's fractions
    hy = fy[:, None].to(tl.float16)
    for k in tl.static_range(NCB):
        c0 = cbase + k * BLOCK_C
        if IL > 1:  # gather this block, then stage the next one into the other buffer through registers
            for g in tl.static_range(NS):  # per staged plane, on [pixels] vectors: one layout from load to store
                r0, r1, r2, r3 = staged_word_bilinear(LD4, paddr + ((k % 2) * BUF + g * PLANEC * CHUNK),
                                                      pitch * CHUNK, w00, w01, w10, w11, IL, HALF_MATH)
                for j in tl.static_range(IL):
                    if j == 0:
                        r = r0
                    elif j == 1:
                        r = r1
                    elif j == 2:
                        r = r2
                    else:
                        r = r3
                    ch = c0 + g * IL + j
                    tl.store(opix + (ch - cbase) * SPLANE, r.to(out_ptr.dtype.element_ty),
                             mask=pmask & (ch < NPLANES))
            if k + 1 < NCB:
                stage_words_sync(in_ptr, base + ((k + 1) % 2) * BUF, (c0 + BLOCK_C + sc * IL) * (SPLANE // 4),
                                 SPLANE // 4, NPLANES - c0 - BLOCK_C - sc * IL, fy0, fx0, rows, pitch, H, W, NS, IL,
                                 PLANEC, NCH, STEP, ILASM, ncx if FITX else NCH)
                shared_sync(-1)
        elif k + 1 < NCB:  # the next block's copy into the other buffer, then wait for this block's
            stage_box_async(in_ptr, base + ((k + 1) % 2) * BUF, (c0 + BLOCK_C + cc) * SPLANE,
                            c0 + BLOCK_C + cc < NPLANES, fy0, fx0, rows, pitch, H, W, BLOCK_C, PLANEC, NCH, STEP,
                            CHUNK, EC, CPASM, ncx if FITX else NCH)
            shared_commit()
            shared_sync(1)
        else:
            shared_sync(0)
        if IL == 1:
            res = staged_bilinear(LD4, LDT, ESIZE, saddr + (k % 2) * BUF, pitch * CHUNK, w00[:, None], w01[:, None],
                                  w10[:, None], w11[:, None], hx, hy, HALF_MATH)
            optr = (opix + k * BLOCK_C * SPLANE)[:, None] + (cc * SPLANE)[None, :]
            tl.store(optr, res.to(out_ptr.dtype.element_ty), mask=pmask[:, None] & ((c0 + cc) < NPLANES)[None, :])
            shared_sync(-1)  # every lane done with this buffer before the next block's copy overwrites it


@triton.jit
def _hwc_lane_pixel(oy0, ox0, cpix, spix, BX: tl.constexpr, cs, sn, kx, ky, hw, hh, fy0, fx0, qbase, dy, dx,
                    NCH: tl.constexpr, FH: tl.constexpr, QP: tl.constexpr, HALF_MATH: tl.constexpr):
    """One group of a lane (hwc_stage): the weights of the box pixel ``cpix`` it receives (fp32, or half2 words for
    HALF_MATH), and the Q address of the corner (dy, dx) of the box pixel ``spix`` it provides."""
    fx, fy, _, _ = _source_cell(oy0 + cpix // BX, ox0 + cpix % BX, cs, sn, kx, ky, hw, hh, fy0, fx0, NCH * 8, FH)
    _, _, xs, ys = _source_cell(oy0 + spix // BX, ox0 + spix % BX, cs, sn, kx, ky, hw, hh, fy0, fx0, NCH * 8, FH)
    w00, w01, w10, w11 = bilinear_weights(fx, fy, 1.0)
    if HALF_MATH:
        w00, w01, w10, w11 = half2_splat(w00), half2_splat(w01), half2_splat(w10), half2_splat(w11)
    return qbase + hwc_chunk((ys + dy) * QP + xs + dx) * 16, w00, w01, w10, w11


@triton.jit
def _rotate_hwc_kernel(
    in_ptr, out_ptr, angle_ptr, center_ptr, H, W, NPLANES,
    BY: tl.constexpr, BX: tl.constexpr, NCB: tl.constexpr, HALF_MATH: tl.constexpr, SPLANE: tl.constexpr,
    FH: tl.constexpr, NCH: tl.constexpr, PLANEC: tl.constexpr, QP: tl.constexpr, QOFF: tl.constexpr,
    STEP: tl.constexpr, CPASM: tl.constexpr, DECL: tl.constexpr,
):
    """Bilinear rotate of linear fp16 planes staged channels-last (hwc_stage): a program takes a BY x BX box of
    output pixels and NCB blocks of 8 planes. Each block's footprint is copied as planes (cp.async, the next block's
    copy in flight while this one is gathered), transposed channels-last into Q, and gathered with one ldmatrix per
    8 pixels' four corners of 8 channels. Lane l of a warp's 32 box pixels [first, first + 32) receives pixels first +
    4 (l // 4) + q for its four groups q (neighbouring pixels: one 8-byte store per channel) and provides corner l // 8
    of pixels first + 4 (l % 8) + q. Sums in fp32 (fp16 out), or half2 (HALF_MATH, fp16x2)."""
    tiles_x = tl.cdiv(W, BX)
    oy0 = (tl.program_id(0) // tiles_x) * BY
    ox0 = (tl.program_id(0) % tiles_x) * BX
    cbase = tl.program_id(1) * (8 * NCB)
    cs, sn, kx, ky, hw, hh = _inverse_rotation(angle_ptr, center_ptr, H, W)
    fy0, fx0, rows, ncx = _footprint(oy0, ox0, BY, BX, cs, sn, kx, ky, hw, hh, 8, FH, NCH)
    base = shared_base(DECL)
    qbase = base + QOFF
    cc = tl.arange(0, 8)
    stage_box_async(in_ptr, base, (cbase + cc) * SPLANE, cbase + cc < NPLANES, fy0, fx0, rows, NCH, H, W, 8, PLANEC,
                    NCH, STEP, 16, 8, CPASM, ncx)
    shared_commit()
    NE: tl.constexpr = BY * BX  # one element per box pixel: a warp's 32 (x 4 groups x 2 channels) cover 32 x 8
    e = tl.arange(0, NE)
    lane = e % 32
    first = (e // 32) * 32
    dy = lane // 16  # the corner this lane provides: lanes 8i .. 8i + 7 give corner i = (dy, dx)
    dx = (lane // 8) % 2
    pc = first + 4 * (lane // 4)  # the first of the four box pixels the lane receives (and stores)
    ps = first + 4 * (lane % 8)  # the first of the four whose corner it provides
    a0, w000, w001, w010, w011 = _hwc_lane_pixel(oy0, ox0, pc + 0, ps + 0, BX, cs, sn, kx, ky, hw, hh, fy0, fx0,
                                                 qbase, dy, dx, NCH, FH, QP, HALF_MATH)
    a1, w100, w101, w110, w111 = _hwc_lane_pixel(oy0, ox0, pc + 1, ps + 1, BX, cs, sn, kx, ky, hw, hh, fy0, fx0,
                                                 qbase, dy, dx, NCH, FH, QP, HALF_MATH)
    a2, w200, w201, w210, w211 = _hwc_lane_pixel(oy0, ox0, pc + 2, ps + 2, BX, cs, sn, kx, ky, hw, hh, fy0, fx0,
                                                 qbase, dy, dx, NCH, FH, QP, HALF_MATH)
    a3, w300, w301, w310, w311 = _hwc_lane_pixel(oy0, ox0, pc + 3, ps + 3, BX, cs, sn, kx, ky, hw, hh, fy0, fx0,
                                                 qbase, dy, dx, NCH, FH, QP, HALF_MATH)
    oy = oy0 + pc // BX
    ox = ox0 + pc % BX
    pix_ok = (oy < H) & (ox < W)  # W is a multiple of 8: the four pixels are on or off the map together
    pair = 2 * (lane % 4)
    opix = out_ptr + tl.multiple_of(oy * W + ox, 4)
    for k in tl.static_range(NCB):
        c0 = cbase + k * 8
        shared_sync(0)  # block k staged (every thread's copies) and every lane done with Q's previous block
        hwc_transpose(base, qbase, rows, NCH, PLANEC, QP, NE)
        shared_sync(-1)  # Q holds block k; the planar stage is free for the next block's copy
        if k + 1 < NCB:
            stage_box_async(in_ptr, base, (c0 + 8 + cc) * SPLANE, c0 + 8 + cc < NPLANES, fy0, fx0, rows, NCH, H, W,
                            8, PLANEC, NCH, STEP, 16, 8, CPASM, ncx)
            shared_commit()
        v00, v01, v10, v11 = hwc_corners(a0)
        r0 = half2_bilinear(v00, v01, v10, v11, w000, w001, w010, w011, HALF_MATH)
        v00, v01, v10, v11 = hwc_corners(a1)
        r1 = half2_bilinear(v00, v01, v10, v11, w100, w101, w110, w111, HALF_MATH)
        v00, v01, v10, v11 = hwc_corners(a2)
        r2 = half2_bilinear(v00, v01, v10, v11, w200, w201, w210, w211, HALF_MATH)
        v00, v01, v10, v11 = hwc_corners(a3)
        r3 = half2_bilinear(v00, v01, v10, v11, w300, w301, w310, w311, HALF_MATH)
        ch = c0 + pair
        store_half2_quads(opix + ch * SPLANE, r0, r1, r2, r3, pix_ok & (ch < NPLANES), pix_ok & (ch + 1 < NPLANES),
                          SPLANE)


def _as_device_vector(v, n: int, device, name: str) -> torch.Tensor:
    t = v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.float32)
    t = t.to(device=device, dtype=torch.float32).reshape(-1)
    if t.numel() != n:
        raise BevDeployError(f"{OP}: {name} must hold {n} number(s), got {t.numel()}.")
    return t.contiguous()


def rotate_cuda(
    img: torch.Tensor,
    angle: float | torch.Tensor,
    center: Sequence[float] | torch.Tensor | None = None,
    interpolation: int | str = 0,
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
    layout: str = "linear",
) -> torch.Tensor:
    """Rotate every (H, W) plane of ``img`` by ``angle`` degrees about ``center`` with one precision's kernel.

    ``layout`` other than "linear": ``img`` is the physical (groups, H, W, vec) tensor of that channel-vectorized
    layout (layouts.to_layout of img[None], batch dim dropped); the output comes in the same layout."""
    check_launch(OP, precision, [img])
    modes = {"bilinear": 0, "nearest": 1}
    mode = modes.get(interpolation, interpolation) if isinstance(interpolation, str) else int(interpolation)
    if mode not in (0, 1):
        raise BevDeployError(f"{OP}: interpolation must be 'bilinear'/0 or 'nearest'/1, got {interpolation!r}.")
    if img.dim() < 2:
        raise BevDeployError(f"{OP}: img must have at least 2 dims (..., H, W), got {tuple(img.shape)}.")
    vec = 1 if layout == "linear" else physical_vector(OP, img[None], layout, 5)
    h, w = (int(img.shape[-2]), int(img.shape[-1])) if vec == 1 else (int(img.shape[1]), int(img.shape[2]))
    if precision == "int8":
        x, out_scale = int8_input(OP, img, "img", scales)
    else:
        x, out_scale = float_storage(img, precision), 1.0
    ang = _as_device_vector(angle, 1, img.device, "angle")
    ctr = _as_device_vector([w * 0.5, h * 0.5] if center is None else center, 2, img.device, "center")
    out = torch.empty(img.shape, dtype=out_dtype(precision), device=img.device)
    planes = math.prod(img.shape[:-2]) if vec == 1 else img.shape[0] * vec
    if out.numel() == 0:
        return out
    cfg = tuned(TUNING, precision)
    if (vec == 1 and mode == 0 and precision in ("fp16", "fp16x2") and cfg["stage_hwc"] and not interpreting()
            and hwc_launchable(x, planes * h * w)):
        by, bx = cfg["stage_hwc_box"]
        plan = hwc_stage_plan(w, by, bx, cfg["stage_step"], cfg["stage_hwc_qpitch"])
        if plan is not None:
            grid = (triton.cdiv(h, by) * triton.cdiv(w, bx), triton.cdiv(planes, 8 * cfg["stage_hwc_blocks"]))
            _rotate_hwc_kernel[grid](
                x, out, ang, ctr, h, w, planes, BY=by, BX=bx, NCB=cfg["stage_hwc_blocks"],
                HALF_MATH=precision == "fp16x2", SPLANE=h * w, num_warps=hwc_warps(by * bx),
                maxnreg=cfg["stage_hwc_maxnreg"],
                **{k: v for k, v in plan.items() if k != "SHARED"},
            )
            return out
    if vec == 1 and mode == 0 and cfg["staged"] and not interpreting():
        il = staged_interleave(cfg, x, cfg["stage_block_c"])
        esize = 4 if il > 1 else x.element_size()
        plan = shared_stage_plan(esize, w, cfg["stage_by"], cfg["stage_bx"], cfg["stage_block_c"] // il,
                                 cfg["stage_word_step"] if il > 1 else cfg["stage_step"], pad=cfg["stage_pad"])
        if plan is not None and planes * h * w < 2**31 and x.data_ptr() % plan["CHUNK"] == 0:
            nc = cfg["stage_block_c"] * cfg["stage_blocks"]
            grid = (triton.cdiv(h, cfg["stage_by"]) * triton.cdiv(w, cfg["stage_bx"]), triton.cdiv(planes, nc))
            pitches = pitch_words(esize, plan["CHUNK"], plan["NCH"], cfg["stage_pad"],
                                  (cfg["stage_by"], cfg["stage_bx"]), plan["PLANEC"])
            _rotate_staged_kernel[grid](
                staged_words(x, il), out, ang, ctr, h, w, out_scale, planes, BY=cfg["stage_by"], BX=cfg["stage_bx"],
                TAB=pitches, NTAB=PITCH_STEPS, IL=il, ILASM=interleave_asm(il) if il > 1 else "",
                FITX=cfg["stage_fit_x"],
                BLOCK_C=cfg["stage_block_c"], NCB=cfg["stage_blocks"], HALF_MATH=precision == "fp16x2", SPLANE=h * w,
                num_warps=cfg["stage_num_warps"], **{k: v for k, v in plan.items() if k != "SHARED"},
            )
            return out
    block_c, block_p, warps = cfg["block_c"], cfg["block_p"], cfg["num_warps"]  # [pixels, channels], see _rotate_kernel
    packed = 0
    parity = vector_key(cfg, "row_parity", vec, x.element_size())
    if vec > 1:  # one vector load of at most 32 bytes per corner
        block_c, block_p, warps = vector_tile(cfg, vec, x.element_size(), img.shape[0])
        packed = packed_words(precision, mode, block_c, x, vec, cfg)
        x = x.reshape(-1).view(torch.int32) if packed else x  # flat: a size-1 dim may carry an odd stride
    words = word_store(cfg, packed, vec)
    box_rows = vector_key(cfg, "tile_y", vec, x.element_size())
    ty, n_pblocks, inv_nx, inv_ny = box_or_runs(h * w, w, h, 1, block_p, box_rows, 1)
    grid = (n_pblocks, triton.cdiv(planes, block_c))
    ptr_first, static = plane_strides(cfg, vec, planes, block_c)
    _rotate_kernel[grid](
        x, out, ang, ctr, h, w, out_scale,
        NEAREST=mode == 1, HALF_MATH=precision == "fp16x2", BLOCK_C=block_c, BLOCK_P=block_p, ONE_PIX=cfg["one_pix"], NPLANES=planes, VEC=vec,
        PACKED=packed, WORD_STORE=words, PAIRS=bool(cfg["vec_pairs" if vec > 1 else "pairs"]), SIZE1=min(h, w) < 2,
        PTR_FIRST=ptr_first, SPLANE=h * w if static else 0, ROW_PARITY=mode == 0 and bool(parity),
        INV_W=reciprocal(w), FQ=float_quotients(h * w), TY=ty, INV_NX=inv_nx, INV_NY=inv_ny, num_warps=warps,
    )
    return out
