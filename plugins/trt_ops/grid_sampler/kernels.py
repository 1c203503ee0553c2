"""Triton kernels of grid sampler 2D and 3D (torch.nn.functional.grid_sample semantics), one per precision.

Entry point (called by op.py on CUDA tensors)::

    grid_sampler_cuda(input, grid, interpolation_mode=0, padding_mode=0, align_corners=False,
                      precision="fp32", scales=None) -> (N, C, Ho, Wo) or (N, C, Do, Ho, Wo)

input (N, C, H, W) with grid (N, Ho, Wo, 2), or input (N, C, D, H, W) with grid (N, Do, Ho, Wo, 3); grid in
[-1, 1] as (x, y[, z]). interpolation_mode 0/'bilinear' (trilinear in 3D) or 1/'nearest' (round half to
even, as PyTorch); padding_mode 0/'zeros', 1/'border', 2/'reflection'. One program per (sample, block of
output pixels, block of channels): the source coordinates are computed once per pixel and reused for the
channel block; stores are contiguous along the output pixels. The tile is [pixels, channels] so that Triton
puts neighbouring pixels (neighbouring source addresses) on neighbouring lanes: with [channels, pixels] the
gathers had no contiguity to go by and each warp load touched 16 channel planes (32 lines per load).

Layouts: "linear" (N, C, *S), or a channel-vectorized layout of layouts.py (TensorRT's kCHW4, kCHW2, kHWC8, ...)
for input and output alike: each corner gather then loads a vector of channels (up to 32 bytes) instead of one
channel, so the 1- and 2-byte variants need fewer gather instructions (ncu: the linear int8 / fp16 kernels are
bound by instruction issue).

The linear bilinear fp16 / fp16x2 2D and int8 3D rows stage each program's input footprint in shared memory where
the grid is locally smooth (_grid_sampler_staged_kernel, TUNING "staged"; GPU only; a program whose corners do not
fit gathers from global memory, and the interpreter runs the unstaged kernel).

Variants: fp32; fp16 (fp16 input and grid, fp32 weights and sum, fp16 out); fp16x2 (the corner weights
and the weighted sum in fp16); int8 (input int8 with scales["input"], grid fp16, fp32 sum, fp16 out).
"""

from collections.abc import Mapping

import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.layouts import physical_vector
from bevdeploy.plugins.trt_ops.triton_util import (
    PITCH_STEPS,
    bilinear_corner,
    bilinear_weights,
    box_launch,
    box_or_runs,
    box_pixels,
    box_tile,
    check_launch,
    corner_pair,
    float_storage,
    int8_input,
    interpreting,
    near_far,
    out_dtype,
    packed_words,
    pair_row,
    pitch_words,
    plane_strides,
    plane_tiles,
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
    staged_bilinear,
    staged_pitch,
    tile_ptrs,
    tl,
    to_f32,
    triton,
    tuned,
    vector_box,
    vector_key,
    vector_maxnreg,
    vector_tile,
    word_store,
)

OP = "grid_sampler"
_MODES = {"bilinear": 0, "nearest": 1}
_PADS = {"zeros": 0, "border": 1, "reflection": 2}
# launch shape; benchmarks/ops.py --sweep varies it ("vec_*" keys: the vectorized layouts' shape, one vector or a
# VB-channel part of one per program; several short vectors per program measured slower, NOTES-ops.md run 8)
# run 4 sweep (H200): 8 channels x 256 pixels was the fastest vectorised-store shape for every precision
# run 10 sweep (H200): 4-row x 2-slice boxes (64 x 4 in 2D) cut fp32 by 9% (3D 0.0376 -> 0.0342 ms, 2D 0.0319 ->
# 0.0290) but slowed the 2D fp16 / int8 rows, so boxes are the fp32 default only
# run 16 sweeps (H200, ops-sweep-run16): 32-byte vector loads (kCHW32 in int8 / fp16) fastest at two threads per
# pixel, 64 pixels on 4 warps ("vec_wide_*": 2D fp16 0.0143 ms vs 0.0152 at one thread per pixel, 3D int8 0.0166 vs
# 0.0180, 3D fp16x2 0.0189 vs 0.0224)
# run 18 sweep (H200, ops-sweep-run18): int8 kCHW4 with 4 vectors (16 channels) per program, so that a thread's
# coordinate math serves 4 vectors ("vec_vectors", triton_util.vector_tile): 2D 0.0143 -> 0.0117 ms, 3D 0.0199 ->
# 0.0157 (8 vectors: 0.0152 / 0.0182); fp16 / fp16x2 kCHW2 are slower with 2 (2D 0.0206 -> 0.0232), so they keep 1
# session 11 sweep (H200, ops-sweep-run21): each kCHW4 word's four fp16 results in one 8-byte store ("vec_word_store",
# one pixel per lane) int8 kCHW4 2D 0.0116 -> 0.0107 ms, 3D 0.0162 -> 0.0145 (before the one-pixel-per-lane hint it was
# 5 / 17% slower); fp16 / fp16x2 kCHW2 as int32 words ("vec_half_words") with 4 vectors per program: 2D 0.0207 ->
# 0.0147, 0.0187 -> 0.0144; 3D 0.0302 -> 0.0188, 0.0265 -> 0.0177 (element loads with several vectors: slower);
# linear fp16 / fp16x2 with 4 channels per program: 3D 0.0365 -> 0.0330, 0.0395 -> 0.0332, 2D -2% / +2% (16 on 8
# warps was better in 2D and worse in 3D, and num_warps also sets the short-vector rows' warps)
# session 12 A/B (H200, results/ab-s12-2.jsonl): in-bounds corner pairs without masks (triton_util.corner_pair;
# "pairs" for linear, "vec_pairs" for vectorized layouts), 12 - 36% fewer instructions (offline SASS), faster for
# int8 (2D linear 0.0225 -> 0.0184 ms, kCHW4 0.0107 -> 0.0100, kCHW32 0.0099 -> 0.0090; 3D -4 / -16 / -9%) and the 3D
# fp16 / fp16x2 vectors (kCHW2 -6 / -2%, fp16x2 kCHW32 0.0204 -> 0.0176), slower for fp32 (2D with boxes +17%),
# linear fp16 (+4 .. +10%) and the 2D fp16 vectors (+6 .. +12%): on where it measured faster ("fp16:3d" etc. are
# per-dimension overrides, tuned())
# session 15 sweep (H200, ops-sweep-s15a; defaults of that call in ops-s15a-samplers.md): the channel stride as a
# compile-time constant ("static_strides", triton_util.tile_ptrs: 25 - 35% fewer instructions offline) 2D int8 linear
# 0.0184 -> 0.0153 ms, fp16x2 0.0228 -> 0.0209, fp32 0.0288 -> 0.0276 (2D fp16 0.0212 -> 0.0217: off); 3D z corners
# nearer slice first ("near_z" / "vec_near_z", triton_util.near_far) with it: 3D fp32 0.0349 -> 0.0299, fp16 0.0335
# -> 0.0302 (near_z alone), fp16x2 0.0328 -> 0.0290, int8 0.0350 -> 0.0305 (4 channels per program); vectors: fp16
# kCHW32 0.0186 -> 0.0176, fp16x2 kCHW2 0.0173 -> 0.0157, kCHW32 0.0175 -> 0.0167 (int8 kCHW4 / kCHW32 +2%: off).
# Register caps ("maxnreg" / "vec_maxnreg", 32 - 64) were slower everywhere but one row (3D fp16 kCHW32 with near_z
# at 40: 0.0162), which shares its key with kCHW2 (0.0210 there), and within 2% elsewhere (3D fp32 at 72, the one cap
# that spills nothing: 0.0296 -> 0.0291, ops-sweep-s15c): not set. 3D fp16x2 linear in 2-row x 4-slice boxes: 0.0288
# -> 0.0276 (-s15b, -s15c; fp32 / fp16 / int8 within 1% or slower); the vectorized rows now have boxes of their own
# ("vec_tile_y" / "vec_tile_z", 0 / 1): the shared key had given them fp16x2's boxes too, kCHW2 0.0152 -> 0.0177 ms
# and kCHW32 0.0166 -> 0.0156 in the call after (a per-vector-width key would be needed to take only the second)
# session 16 sweeps (H200, ops-sweep-s16b / -s16c): 2D fp16 linear with constant strides and 8 channels per program
# 0.0219 -> 0.0196 ms (4 channels, dynamic: the old default; constant strides with 4: 0.0215); 3D fp16 the same
# 0.0305 -> 0.0296 (within the spread: not taken). Taller z boxes (1 x 8, 1 x 4, 2 x 4 rows x slices) were slower
# for every 3D row but fp16x2 kCHW32 (0.0166 -> 0.0154 at 1 x 4; kCHW2 +12%, the shared key again)
# session 17 sweep (H200, ops-sweep-s17a): boxes of their own for 32-byte vector loads ("vec_wide_tile_y" /
# "vec_wide_tile_z", triton_util.vector_box): 3D fp16x2 kCHW32 0.0167 -> 0.0154 ms at 1 x 4 (kCHW2 keeps its runs);
# every box slower for 3D fp16 / int8 kCHW32 (0.0174 -> 0.0178+, 0.0119 -> 0.0132+). 3D fp32 register caps, three
# rounds in turn (-s17b): none 0.0298 ms (mean), 72 0.0293, 80 0.0291. 80 is what the kernel allocates anyway (79
# uncapped: same occupancy), yet ptxas' code differs (offline: the same 800 instructions, its 7 P2R predicate saves
# gone); the other linear 3D rows were 3 - 12% slower under 72 / 80 (-s17a), so the cap is fp32's alone
# session 19 (H200, scratch driver, CUDA graphs, two rounds each; NOTES-ops item 30): the linear bilinear rows with
# each program's footprint staged in shared memory ("staged", _grid_sampler_staged_kernel; "stage_*" its boxes,
# channels per block, blocks per program, copy step, margin, warps, register cap): 3D int8 0.0305 -> 0.0265 ms (on);
# slower elsewhere: 2D fp16 0.0198 -> 0.0222, fp16x2 0.0206 -> 0.0221, int8 0.0153 -> 0.0189, 3D fp16 0.0302 ->
# 0.0347, fp16x2 0.0277 -> 0.0347 (8 x 2 or 2 x 8 channel blocks, 8 x 32 boxes in 2D, 16 x 32 / 4 x 32 in 3D and
# register caps of 64 - 80 all within 2% or slower); unlike rotate's box, the footprint is known only after the
# grid is read and reduced, so each program's first copy waits on that. ncu (2D fp16): 2.06 wavefronts per ld.shared
# (the 3-degree warp's rows on the same banks) and 108 registers (4 CTAs per SM). With the row pitch from rotate's
# table by the direction of the box's first row ("stage_pad" 3) and an 80-register cap: 2D fp16 0.0198 -> 0.0194,
# fp16x2 0.0207 -> 0.0192 (on); int8 0.0153 -> 0.0186 and 3D (0.034, pad 7 too large for a plan) stay as they were
# session 36 (results/tune-s36-parity-*.md, two rounds each, warm and cold, H100 and H200): each pixel's even row
# gathered first ("row_parity" / "vec_row_parity" / "vec_wide_row_parity", triton_util.even_row_first): 3D fp16
# linear 0.0277 -> 0.0264 ms warm on the H100 (0.0270 -> 0.0250 on the H200), fp16x2 -2% (-6%), fp16 kCHW32 -1 to
# -3% on both, 2D fp16 kCHW2 / kCHW32 and fp16x2 kCHW2 / kCHW32 -1 to -8% warm and cold on both: on there. Not on:
# 3D fp16 kCHW2 (H200 +3 / +4% warm), fp16x2 vectors (kCHW2 +1%), int8 vectors (kCHW4 +6 to +14%), fp32 (+1 - 2%)
TUNING = {"block_c": 8, "block_p": 256, "num_warps": 4, "one_pix": True, "vec_block_p": 256, "vec_wide_block_p": 64,
          "vec_wide_num_warps": 4, "tile_y": 0, "tile_z": 1, "vec_tile_y": 0, "vec_tile_z": 1, "vec_vectors": 1,
          "vec_word_store": False, "vec_half_words": False, "pairs": False, "vec_pairs": False, "near_z": False,
          "vec_near_z": False, "maxnreg": None, "vec_maxnreg": None, "ptr_first": False, "static_strides": False,
          "vec_num_warps": None, "vec_wide_tile_y": None, "vec_wide_tile_z": None, "vec_wide_maxnreg": None,
          "staged": False, "stage_box": (1, 16, 32), "stage_box_3d": (1, 8, 32), "stage_block_c": 4, "stage_blocks": 4,
          "stage_step": 64, "stage_margin": 2, "stage_num_warps": 4, "stage_maxnreg": None, "stage_pad": 0,
          "stage_fit_x": True, "row_parity": False, "vec_row_parity": False, "vec_wide_row_parity": None,
          "per_precision": {"fp32": {"tile_y": 4, "tile_z": 2, "static_strides": True},
                            "int8": {"vec_vectors": 4, "vec_word_store": True, "pairs": True, "vec_pairs": True,
                                     "static_strides": True},
                            "fp16": {"block_c": 4, "vec_half_words": True, "vec_vectors": 4},
                            # session 25 (results/tune-s25-*.md, warm and cold, three rounds alike): 2D int8
                            # linear 512 pixels on 8 warps, kCHW4 128 pixels (0.0155 -> 0.0148 ms warm, 0.0182 ->
                            # 0.0168 cold; 0.0099 -> 0.0095, 0.0132 -> 0.0121); 2D fp16 kCHW2 128 pixels (0.0143 ->
                            # 0.0144 warm, 0.0173 -> 0.0158 cold), fp16x2 kCHW2 512 on 8 warps (0.0138 -> 0.0133,
                            # 0.0169 -> 0.0163); the 3D int8 rows were level with the int8 shapes (the 2-byte ones not timed in 3D)
                            "int8:2d": {"block_p": 512, "num_warps": 8, "vec_block_p": 128, "vec_num_warps": 4},
                            # session 37 (tune-s37-2d-vec-boxes-*.md, warm and cold, H100 and H200): kCHW32 in
                            # 8-row boxes (8 x 8 pixels) once boxes lost their divisions: fp16 / fp16x2 H100 -8 /
                            # -8% warm, -6 / -5% cold, H200 -10 / -10%, -6 / -6% (kCHW2 +1 .. +24%: runs kept)
                            "fp16:2d": {"block_c": 8, "static_strides": True, "staged": True, "stage_pad": 3,
                                        "stage_maxnreg": 80, "vec_block_p": 128, "vec_row_parity": True,
                                        "vec_wide_tile_y": 8},
                            "fp16x2:2d": {"staged": True, "stage_pad": 3, "stage_maxnreg": 80, "vec_block_p": 512,
                                          "vec_num_warps": 8, "vec_row_parity": True, "vec_wide_tile_y": 8},
                            "fp16x2": {"block_c": 4, "vec_half_words": True, "vec_vectors": 4, "static_strides": True},
                            "fp32:3d": {"near_z": True, "maxnreg": 80},
                            # session 22 (results/tune-s22-grid3d.md): int8 staged 1 x 8 x 64 boxes, pad 3
                            # (0.0268 -> 0.0240 ms); fp16 / fp16x2 linear 8 channels in 2 x 4 boxes, constant
                            # strides, 80 registers (0.0302 -> 0.0270, 0.0276 -> 0.0267: fp16 was slower than fp32);
                            # fp16's kCHW2 / kCHW32 rows at 64 registers (0.0176 -> 0.0164, 0.0175 -> 0.0165 ms;
                            # fp16x2's kCHW32 and int8's rows were slower with it)
                            # session 28 (results/tune-s28-h200.md, two rounds alike): each staged row copied
                            # only as far as the corners reach ("stage_fit_x", as rotate's): 2D fp16 / fp16x2
                            # 0.0193 -> 0.0188, 0.0192 -> 0.0187 ms warm, 0.0208 -> 0.0203, 0.0205 -> 0.0200 cold;
                            # 3D int8 copies the whole staged width (0.0240 -> 0.0251 fitted, in the flat copy)
                            "int8:3d": {"near_z": True, "block_c": 4, "staged": True, "stage_box_3d": (1, 8, 64),
                                        "stage_pad": 3, "stage_fit_x": False},
                            "fp16:3d": {"vec_pairs": True, "near_z": True, "vec_near_z": True, "block_c": 8,
                                        "tile_y": 2, "tile_z": 4, "static_strides": True, "maxnreg": 80,
                                        "vec_maxnreg": 64, "row_parity": True, "vec_wide_row_parity": True,
                                        # session 36 (tune-s36-vec-boxes-*.md), once boxes lost their integer
                                        # divisions (triton_util.box_tile): kCHW2 / kCHW32 in 1 x 4 boxes, H100
                                        # -7 / -12% warm, -5 / -8% cold; H200 -5 / -2%, -4 / -4% (int8's
                                        # vectors +3 - 5% and fp16x2 kCHW2 level in boxes: not set there)
                                        "vec_tile_y": 1, "vec_tile_z": 4, "vec_wide_tile_y": 1, "vec_wide_tile_z": 4},
                            "fp16x2:3d": {"vec_pairs": True, "near_z": True, "vec_near_z": True, "block_c": 8,
                                          "tile_y": 2, "tile_z": 4, "static_strides": True, "maxnreg": 80,
                                          "row_parity": True,
                                          "vec_wide_tile_y": 1, "vec_wide_tile_z": 4,
                                          # session 27 (H200 and H100, results/tune-s27-*.md): kCHW2 at 72
                                          # registers 0.0160 -> 0.0153 ms warm, 0.0194 -> 0.0185 cold (H100
                                          # 0.0190 -> 0.0184, 0.0213 -> 0.0200); kCHW32 slower capped: no cap
                                          "vec_maxnreg": 72, "vec_wide_maxnreg": 0}}}
SWEEP = [{"one_pix": False}, {"one_pix": True}, {"block_c": 16, "block_p": 128}, {"block_c": 4, "block_p": 256},
         {"block_c": 16, "block_p": 256, "num_warps": 8}, {"block_c": 8, "block_p": 128},
         {"vec_block_p": 256}, {"vec_block_p": 128}, {"vec_block_p": 512, "num_warps": 8},
         {"tile_y": 0, "per_precision": {}}, {"tile_y": 8, "per_precision": {}},
         {"tile_y": 4, "tile_z": 2, "per_precision": {}}, {"tile_y": 2, "tile_z": 4, "per_precision": {}},
         {"vec_block_p": 128, "num_warps": 2}, {"vec_block_p": 256, "num_warps": 2},
         {"vec_block_p": 256, "vec_tile_y": 2},
         {"vec_wide_block_p": 64, "vec_wide_num_warps": 2}, {"vec_wide_block_p": 128, "vec_wide_num_warps": 4},
         {"vec_wide_block_p": 128, "vec_wide_num_warps": 8}, {"vec_wide_block_p": 256, "vec_wide_num_warps": 8},
         {"vec_wide_block_p": 64, "vec_wide_num_warps": 4}, {"vec_wide_block_p": 128, "vec_tile_y": 2, "vec_tile_z": 2},
         {"vec_vectors": 2}, {"vec_vectors": 4}, {"vec_vectors": 8}, {"vec_vectors": 4, "vec_block_p": 128},
         {"vec_vectors": 4, "vec_block_p": 128, "num_warps": 2}, {"vec_word_store": True}, {"vec_word_store": False},
         *({"vec_half_words": True, "vec_vectors": v} for v in (1, 2, 4, 8)),
         *({"pairs": p, "vec_pairs": p, "per_precision": {}} for p in (False, True)),
         # session 15 (ops-sweep-s15a): near-first z corners (triton_util.near_far), register caps, 4 channels per
         # program, per-pixel pointers and constant channel strides (triton_util.tile_ptrs)
         {"near_z": True}, *({"maxnreg": r} for r in (40, 48, 56, 64)),
         *({"near_z": True, "maxnreg": r} for r in (48, 64)),
         {"vec_near_z": True}, *({"vec_maxnreg": r} for r in (32, 40, 48)), {"vec_near_z": True, "vec_maxnreg": 40},
         {"block_c": 4}, {"block_c": 4, "near_z": True}, {"ptr_first": True}, {"static_strides": True},
         {"static_strides": True, "near_z": True}, {"static_strides": True, "near_z": True, "block_c": 4},
         # then over those defaults (ops-sweep-s15b / -s15c)
         {"tile_y": 2, "tile_z": 4}, {"tile_y": 8, "tile_z": 1},
         {"tile_y": 4, "tile_z": 2, "block_p": 512, "num_warps": 8},
         {"block_c": 16}, {"block_p": 128}, {"maxnreg": 72}, {"maxnreg": 72, "tile_y": 2, "tile_z": 4},
         {"maxnreg": 56, "block_c": 4},
         # session 19: the linear bilinear rows staged in shared memory (_grid_sampler_staged_kernel)
         {"staged": False}, {"staged": True}, {"staged": True, "stage_block_c": 2, "stage_blocks": 8},
         {"staged": True, "stage_box": (1, 8, 32)}, {"staged": True, "stage_box_3d": (1, 16, 32), "stage_block_c": 2},
         {"staged": True, "stage_maxnreg": 72}, {"staged": True, "stage_pad": 3},
         {"staged": True, "stage_pad": 3, "stage_maxnreg": 80},
         # session 36: each pixel's even row gathered first (triton_util.even_row_first)
         {"row_parity": True}, {"vec_row_parity": True}]


@triton.jit
def _reflect(x, twice_low, twice_high):
    lo = twice_low * 0.5
    span = (twice_high - twice_low) * 0.5
    x = tl.abs(x - lo)
    safe = tl.where(span > 0, span, 1.0)
    flips = tl.floor(x / safe)
    extra = x - flips * safe
    even = (flips - 2.0 * tl.floor(flips * 0.5)) == 0
    r = tl.where(even, extra + lo, safe - extra + lo)
    return tl.where(span > 0, r, 0.0)


@triton.jit
def _source_index(coord, size, ALIGN: tl.constexpr, PAD: tl.constexpr):
    sizef = size * 1.0
    if ALIGN:
        x = (coord + 1.0) * 0.5 * (sizef - 1.0)
    else:
        x = ((coord + 1.0) * sizef - 1.0) * 0.5
    if PAD == 2:
        if ALIGN:
            x = _reflect(x, 0.0, 2.0 * (sizef - 1.0))
        else:
            x = _reflect(x, -1.0, 2.0 * sizef - 1.0)
    if PAD >= 1:
        x = tl.minimum(tl.maximum(x, 0.0), sizef - 1.0)
    return x


@triton.jit
def _rint(x):
    f = tl.floor(x)
    d = x - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) != 0
    up = (d > 0.5) | ((d == 0.5) & odd)
    return tl.where(up, f + 1.0, f)


@triton.jit
def _grid_sampler_kernel(
    in_ptr, grid_ptr, out_ptr, C, D, H, W, NPIX, HO, WO, out_scale, DO, INV_NX, INV_NY,
    IS3D: tl.constexpr, NEAREST: tl.constexpr, ALIGN: tl.constexpr, PAD: tl.constexpr, HALF_MATH: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr, ONE_PIX: tl.constexpr, VEC: tl.constexpr,
    TY: tl.constexpr = 0, TZ: tl.constexpr = 1, PACKED: tl.constexpr = 0, WORD_STORE: tl.constexpr = False,
    PAIRS: tl.constexpr = False, SIZE1: tl.constexpr = False, NEAR_Z: tl.constexpr = False,
    PTR_FIRST: tl.constexpr = False, SPLANE: tl.constexpr = 0, SNPIX: tl.constexpr = 0, ROW_PARITY: tl.constexpr = False,
):
    """VEC == 1: linear (N, C, *S) input and output. VEC > 1: both in the channel-vectorized layout
    (N, C / VEC, *S, VEC) (layouts.py); the channel block lies inside one vector, so every corner gather loads
    BLOCK_C neighbouring bytes of one pixel and C counts the padded channels. TY == 0: a program's BLOCK_P
    output pixels are consecutive in memory; TY > 0: they are a TZ x TY x (BLOCK_P / (TY * TZ)) box of the
    output (depth, rows, columns), which for a smooth grid reads a more compact part of the input (fewer L2
    reads per output pixel: ncu showed the 3D fp32 kernel L2-bound). PACKED (bilinear, channels per int32 word: 4
    for int8, 2 for fp16 pairs; triton_util.packed_words): in_ptr is the input as int32 words, each corner gather
    loads BLOCK_C / PACKED words and sums their channels with triton_util.add_packed_int8 (no int-to-float
    conversion) / add_half_pairs; WORD_STORE writes the sums word by word (triton_util.sampler_store_words).
    PAIRS (bilinear): the corners as in-bounds pairs along x without masks (triton_util.corner_pair); SIZE1: some
    axis has size 1, so the pairs' second corners are masked there. NEAR_Z (3D bilinear): the two z corners as
    triton_util.near_far's nearer and farther slice instead of floor's pair. PTR_FIRST (linear layout): a pixel's
    pointer first, then each channel's plane offset (triton_util.tile_ptrs); SPLANE / SNPIX > 0: the input's and
    output's channel strides (D * H * W, NPIX) as compile-time constants, which the loads and stores take as
    immediate offsets (one kernel per shape; C % BLOCK_C == 0). ROW_PARITY (bilinear): of each pixel's two rows
    the even one gathered first (triton_util.even_row_first: fewer lines per load where the grid crosses rows)."""
    n = tl.program_id(2)
    if TY == 0:
        pix = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        pmask = pix < NPIX
    else:
        TX: tl.constexpr = BLOCK_P // (TY * TZ)
        bx, by, bz = box_tile(tl.program_id(0), WO, HO, TX, TY, INV_NX, INV_NY)
        ox, oy, oz, pmask = box_pixels(bx, by, bz, WO, HO, DO, TX, TY, TZ)
        pix = (oz * HO + oy) * WO + ox
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    src = in_ptr
    dst = out_ptr
    if VEC == 1:
        cmask = c < C
        if PTR_FIRST:  # the program's first plane as the base, channels relative to it
            c0 = tl.program_id(1) * BLOCK_C
            src, dst, cin, cout = plane_tiles(in_ptr, out_ptr, n * C + c0, c, c0, C, SPLANE if SPLANE else D * H * W,
                                              SNPIX if SNPIX else NPIX, BLOCK_C, SPLANE > 0)
        else:
            cin = ((n * C + c) * (D * H * W))[None, :]
            cout = ((n * C + c) * NPIX)[None, :]
    else:  # channels c of vectors c // VEC (part of one, or several whole ones; C % BLOCK_C == 0)
        g = n * (C // VEC) + c // VEC
        cin = (g * (D * H * W) * VEC + c % VEC)[None, :]
        cout = (g * NPIX * VEC + c % VEC)[None, :]
    STEP: tl.constexpr = VEC // PACKED if PACKED else VEC  # elements (PACKED: words) per pixel
    if PACKED:  # the same channels in int32 words, in input and output
        j = tl.program_id(1) * (BLOCK_C // PACKED) + tl.arange(0, BLOCK_C // PACKED)
        gw = n * (C // VEC) + j // STEP
        cin = (gw * (D * H * W) * STEP + j % STEP)[None, :]
        wout = (gw * NPIX * STEP + j % STEP)[None, :]
    NDIM: tl.constexpr = 3 if IS3D else 2
    gbase = (n * NPIX + pix) * NDIM
    ix = _source_index(tl.load(grid_ptr + gbase, mask=pmask, other=0).to(tl.float32), W, ALIGN, PAD)
    iy = _source_index(tl.load(grid_ptr + gbase + 1, mask=pmask, other=0).to(tl.float32), H, ALIGN, PAD)
    if IS3D:
        iz = _source_index(tl.load(grid_ptr + gbase + 2, mask=pmask, other=0).to(tl.float32), D, ALIGN, PAD)
    else:
        iz = tl.zeros([BLOCK_P], dtype=tl.float32)
    if VEC == 1:
        lmask = cmask[None, :]
    else:  # no channel mask: one that varies along the vector would split the vector load
        lmask = tl.full([1, BLOCK_C], 1, tl.int1)
    if NEAREST:
        x, y, z = _rint(ix).to(tl.int32), _rint(iy).to(tl.int32), _rint(iz).to(tl.int32)
        ok = pmask & (x >= 0) & (x < W) & (y >= 0) & (y < H) & (z >= 0) & (z < D)
        v = tl.load(tile_ptrs(src, cin, ((z * H + y) * W + x) * VEC, PTR_FIRST), mask=lmask & ok[:, None], other=0)
        res = to_f32(v) * out_scale
    else:
        x0f, y0f, z0f = tl.floor(ix), tl.floor(iy), tl.floor(iz)
        a0, a1, a2, a3, wsum = sampler_zeros(BLOCK_P, BLOCK_C, PACKED, HALF_MATH)
        if PAIRS:  # in-bounds corner pairs (triton_util.corner_pair), channels clamped to the last one: no masks
            xb, wx0, wx1 = corner_pair(x0f.to(tl.int32), ix - x0f, W)
            yb, wy0, wy1 = corner_pair(y0f.to(tl.int32), iy - y0f, H)
            if NEAR_Z:
                zb, wz0, zf, wz1 = near_far(iz, D)
                dzoff = ((zf - zb) * (H * W) * STEP)[:, None]
            elif IS3D:
                zb, wz0, wz1 = corner_pair(z0f.to(tl.int32), iz - z0f, D)
            else:
                zb, wz0, wz1 = 0, 1.0, 0.0
            cl = cin if VEC > 1 or PTR_FIRST else ((n * C + tl.minimum(c, C - 1)) * (D * H * W))[None, :]
            row = tile_ptrs(src, cl, ((zb * H + yb) * W + xb) * STEP, PTR_FIRST)
            for k in tl.static_range(4 if IS3D else 2):  # the corner rows (dz, dy), each a pair along x
                dy = k % 2
                dz = k // 2
                yoff, wr = pair_row(dy, yb, wy0, wy1, W * STEP, ROW_PARITY)
                if IS3D:
                    wr = wr * (wz1 if dz == 1 else wz0)
                # read under SIZE1 only; the second row read is yb + 1 wherever H is 1 (yb is 0 there)
                if NEAR_Z and dz == 1:  # the far slice: its own offset per pixel, clamped in bounds
                    row_ok = H > 1 if dy == 1 else True
                    p = row + dzoff + yoff
                else:
                    row_ok = (H > 1 if dy == 1 else True) & (D > 1 if dz == 1 else True)
                    p = row + (dz * H * W) * STEP + yoff
                a0, a1, a2, a3, wsum = sampler_add_pair(p, STEP, wr * wx0, wr * wx1, row_ok, W, a0, a1, a2, a3, wsum,
                                                        SIZE1, PACKED, HALF_MATH)
        else:  # each corner masked where it lies off the map
            fx, fy, fz = ix - x0f, iy - y0f, iz - z0f
            x0, y0, z0 = x0f.to(tl.int32), y0f.to(tl.int32), z0f.to(tl.int32)
            if NEAR_Z:
                zn, wzn, zf, wzf = near_far(iz, D)
            for k in tl.static_range(8 if IS3D else 4):
                x, y, w, ok = bilinear_corner(k % 4, x0, y0, fx, fy, W, H, pmask, ROW_PARITY)
                if NEAR_Z:  # both slices in bounds (clamped; an off-map one weighs 0)
                    z = zn if k // 4 == 0 else zf
                    w = w * (wzn if k // 4 == 0 else wzf)
                else:
                    z = z0 + k // 4
                    if IS3D:
                        w = w * (fz if k // 4 == 1 else 1.0 - fz)
                    ok = ok & (z >= 0) & (z < D)
                a0, a1, a2, a3, wsum = sampler_add(tile_ptrs(src, cin, ((z * H + y) * W + x) * STEP, PTR_FIRST), w,
                                                   ok[:, None] & (True if PACKED else lmask), a0, a1, a2, a3, wsum,
                                                   PACKED, HALF_MATH)
        if not WORD_STORE:
            res = sampler_result(a0, a1, a2, a3, wsum, out_scale, BLOCK_P, BLOCK_C, PACKED)
    if WORD_STORE:  # the output's words (PACKED channels each, fp16)
        pix = tl.max_contiguous(pix, 1)  # else a store vectorised along pixels gives a thread 4 pixels of one word
        sampler_store_words(out_ptr, wout + (pix * STEP)[:, None], a0, a1, a2, a3, wsum, out_scale, pmask[:, None],
                            PACKED)
    else:
        if ONE_PIX and VEC == 1:  # one pixel per lane: a vectorised store gives each lane several pixels and spreads the gathers
            pix = tl.max_contiguous(pix, 1)
        optr = tile_ptrs(dst, cout, pix * VEC, PTR_FIRST)
        tl.store(optr, res.to(out_ptr.dtype.element_ty), mask=lmask & pmask[:, None])


@triton.jit
def _grid_sampler_staged_kernel(
    in_ptr, grid_ptr, out_ptr, C, D, H, W, DO, HO, WO, out_scale, INV_NX, INV_NY,
    IS3D: tl.constexpr, ALIGN: tl.constexpr, PAD: tl.constexpr, HALF_MATH: tl.constexpr, TZ: tl.constexpr,
    TY: tl.constexpr, TX: tl.constexpr, BLOCK_C: tl.constexpr, NCB: tl.constexpr, FD: tl.constexpr,
    SPLANE: tl.constexpr, SVOL: tl.constexpr, SNPIX: tl.constexpr, FH: tl.constexpr, NCH: tl.constexpr,
    PLANEC: tl.constexpr, CHUNK: tl.constexpr, EC: tl.constexpr, BUF: tl.constexpr, STEP: tl.constexpr,
    CPASM: tl.constexpr, DECL: tl.constexpr, LD4: tl.constexpr, LDT: tl.constexpr, TAB: tl.constexpr,
    NTAB: tl.constexpr, NPLP: tl.constexpr, FITX: tl.constexpr = True,
):
    """Bilinear (trilinear) grid sampling of the linear layout with the input staged in shared memory
    (triton_util.stage_box_async), as rotate's _rotate_staged_kernel does, for grids that are locally smooth (a BEV
    warp, an ego-motion alignment). A program takes a TZ x TY x TX box of output pixels of one sample and NCB blocks of
    BLOCK_C channels. It reads the box's grid once, then takes the bounds of the corners it samples: where they fit
    the staged box (FD slices x FH rows x NCH chunks; x rounded down to a chunk; FD = TZ + 2, as z positions near
    whole slices floor both ways), each block's planes (channel x slice; NPLP: their count rounded up to a power of
    two; of each staged row only the chunks the corners reach where FITX, else all NCH) are copied into shared
    memory, the next block's copy in flight while this one is gathered (ld.shared, LD4), corners off the map reading
    the zeros the copy wrote. Where they do not fit (a random or strongly
    zooming grid), the program gathers its corners from global memory instead, with masks. The per-pixel work
    (source position, weights, shared addresses) is done once for all NCB blocks. Positions are clamped to
    [-2, size + 1] for the bounds and addresses only (every corner beyond is off the map); the weights come from
    the unclamped positions. The staged row pitch comes from the table TAB (triton_util.shared_pitch_table /
    pitch_words, NTAB entries) by the direction the box's first row walks the source (its end pixels' grid
    points), as in rotate. HALF_MATH (fp16x2): weights and sums in fp16 on the staged path, fp32 on the fallback.
    SPLANE / SVOL / SNPIX: H * W, D * H * W and the output's pixels per channel, as constants."""
    n = tl.program_id(2)
    bx, by, bz = box_tile(tl.program_id(0), WO, HO, TX, TY, INV_NX, INV_NY)
    ox, oy, oz, pmask = box_pixels(bx, by, bz, WO, HO, DO, TX, TY, TZ)
    pix = tl.max_contiguous((oz * HO + oy) * WO + ox, 1)  # one pixel per lane
    NDIM: tl.constexpr = 3 if IS3D else 2
    gbase = (n * SNPIX + pix) * NDIM
    ix = _source_index(tl.load(grid_ptr + gbase, mask=pmask, other=0).to(tl.float32), W, ALIGN, PAD)
    iy = _source_index(tl.load(grid_ptr + gbase + 1, mask=pmask, other=0).to(tl.float32), H, ALIGN, PAD)
    xf = tl.floor(ix)
    yf = tl.floor(iy)
    x0 = tl.minimum(tl.maximum(xf, -2.0), W + 1.0).to(tl.int32)
    y0 = tl.minimum(tl.maximum(yf, -2.0), H + 1.0).to(tl.int32)
    px = ix - xf
    py = iy - yf
    BIG: tl.constexpr = 1 << 30
    xlo = tl.min(tl.where(pmask, x0, BIG), axis=0)
    xhi = tl.max(tl.where(pmask, x0, -BIG), axis=0) + 1
    ylo = tl.min(tl.where(pmask, y0, BIG), axis=0)
    yhi = tl.max(tl.where(pmask, y0, -BIG), axis=0) + 1
    fx0 = xlo - ((xlo % EC) + EC) % EC  # down to a chunk
    fits = (yhi - ylo < FH) & (xhi - fx0 < NCH * EC)
    if IS3D:
        iz = _source_index(tl.load(grid_ptr + gbase + 2, mask=pmask, other=0).to(tl.float32), D, ALIGN, PAD)
        zf = tl.floor(iz)
        z0 = tl.minimum(tl.maximum(zf, -2.0), D + 1.0).to(tl.int32)
        pz = iz - zf
        zlo = tl.min(tl.where(pmask, z0, BIG), axis=0)
        fits = fits & (tl.max(tl.where(pmask, z0, -BIG), axis=0) + 1 - zlo < FD)
    else:
        z0 = tl.zeros([TZ * TY * TX], dtype=tl.int32)
        pz = tl.zeros([TZ * TY * TX], dtype=tl.float32)
        zlo = 0
    cbase = tl.program_id(1) * (BLOCK_C * NCB)
    opix = out_ptr + (n * C + cbase) * SNPIX + pix
    if fits:
        fx = px[:, None]
        fy = py[:, None]
        fz = pz[:, None]
        w00, w01, w10, w11 = bilinear_weights(fx, fy, out_scale)
        cc = tl.arange(0, BLOCK_C)
        ESIZE: tl.constexpr = CHUNK // EC
        PLANE: tl.constexpr = PLANEC * CHUNK  # bytes per staged plane
        NPL: tl.constexpr = BLOCK_C * FD
        q = tl.arange(0, NPLP)  # staged planes, channel-major: (channel q // FD, slice zlo + q % FD)
        qz = zlo + q % FD
        qoff = (n * C + cbase + q // FD) * SVOL + qz * SPLANE
        qok = (cbase + q // FD < C) & (qz >= 0) & (qz < D)
        base = shared_base(DECL)
        rows = yhi - ylo + 1
        # the row pitch for the direction the box's first row walks the source (fewest bank conflicts)
        first = bz * TZ * HO * WO + by * TY * WO + bx * TX  # the box's first pixel
        g0 = grid_ptr + (n * SNPIX + first) * NDIM
        last = (tl.minimum(bx * TX + TX, WO) - 1 - bx * TX) * NDIM
        ddx = (tl.load(g0 + last).to(tl.float32) - tl.load(g0).to(tl.float32)) * W
        ddy = (tl.load(g0 + last + 1).to(tl.float32) - tl.load(g0 + 1).to(tl.float32)) * H
        inv = 1.0 / tl.maximum(tl.sqrt(ddx * ddx + ddy * ddy), 1e-6)
        pitch = staged_pitch(ddx * inv, ddy * inv, rows, NCH, PLANEC, TAB, NTAB)
        nfit = (xhi - fx0) // EC + 1  # the chunks up to the last corner's pixel (at most NCH where it fits)
        # `nfit if FITX else NCH` inline: a constexpr assigned to a local would become a run-time value
        stage_box_async(in_ptr, base, qoff, qok, ylo, fx0, rows, pitch, H, W, NPL, PLANEC, NCH, STEP, CHUNK, EC, CPASM,
                        nfit if FITX else NCH, NPLP)
        shared_commit()
        xs = tl.minimum(tl.maximum(x0 - fx0, 0), NCH * EC - 2)  # clamped: never outside the staged box
        ys = tl.minimum(tl.maximum(y0 - ylo, 0), FH - 2)
        if IS3D:
            zs = tl.minimum(tl.maximum(z0 - zlo, 0), FD - 2)
        else:
            zs = z0
        saddr = base + (((zs * PLANE + (ys * (pitch * EC) + xs) * ESIZE))[:, None] + (cc * (FD * PLANE))[None, :])
        hx = fx.to(tl.float16)
        hy = fy.to(tl.float16)
        for k in tl.static_range(NCB):
            c0 = cbase + k * BLOCK_C
            if k + 1 < NCB:  # the next block's copy into the other buffer, then wait for this block's
                stage_box_async(in_ptr, base + ((k + 1) % 2) * BUF, qoff + (k + 1) * BLOCK_C * SVOL,
                                qok & (c0 + BLOCK_C + q // FD < C), ylo, fx0, rows, pitch, H, W, NPL, PLANEC, NCH,
                                STEP, CHUNK, EC, CPASM, nfit if FITX else NCH, NPLP)
                shared_commit()
                shared_sync(1)
            else:
                shared_sync(0)
            sa = saddr + (k % 2) * BUF
            res = staged_bilinear(LD4, LDT, ESIZE, sa, pitch * CHUNK, w00, w01, w10, w11, hx, hy, HALF_MATH)
            if IS3D:  # the next slice, one staged plane on
                far = staged_bilinear(LD4, LDT, ESIZE, sa + PLANE, pitch * CHUNK, w00, w01, w10, w11, hx, hy,
                                      HALF_MATH)
                if HALF_MATH:
                    res = res + (far - res) * fz.to(tl.float16)
                else:
                    res = res + (far - res) * fz
            optr = (opix + k * BLOCK_C * SNPIX)[:, None] + (cc * SNPIX)[None, :]
            tl.store(optr, res.to(out_ptr.dtype.element_ty), mask=pmask[:, None] & ((c0 + cc) < C)[None, :])
            shared_sync(-1)  # every lane done with this buffer before the next block's copy overwrites it
    else:
        # [pixels, 1] tiles, in the layout of the staged path's [pixels, channels] ones: one pixel per lane
        x0c, y0c, z0c, ok0 = x0[:, None], y0[:, None], z0[:, None], pmask[:, None]
        fx, fy, fz = px[:, None], py[:, None], pz[:, None]
        for j in tl.range(0, BLOCK_C * NCB):  # a channel, then a corner at a time: few registers for a rare path
            src = in_ptr + (n * C + cbase + j) * SVOL
            acc = tl.zeros([TZ * TY * TX, 1], dtype=tl.float32)
            for corner in tl.range(0, 8 if IS3D else 4):
                dx = corner % 2
                dy = (corner // 2) % 2
                dz = corner // 4
                x = x0c + dx
                y = y0c + dy
                z = z0c + dz
                ok = ok0 & (x >= 0) & (x < W) & (y >= 0) & (y < H) & (z >= 0) & (z < D) & (cbase + j < C)
                w = tl.where(dx == 1, fx, 1.0 - fx) * tl.where(dy == 1, fy, 1.0 - fy)
                if IS3D:
                    w = w * tl.where(dz == 1, fz, 1.0 - fz)
                acc += to_f32(tl.load(src + (z * H + y) * W + x, mask=ok, other=0)) * w
            tl.store(opix[:, None] + j * SNPIX, (acc * out_scale).to(out_ptr.dtype.element_ty),
                     mask=ok0 & (cbase + j < C))


def _code(value, table: dict, what: str) -> int:
    code = table.get(value, value) if isinstance(value, str) else int(value)
    if code not in table.values():
        raise BevDeployError(f"{OP}: unknown {what} {value!r}; use one of {', '.join(table)} (or 0..{len(table) - 1}).")
    return code


def grid_sampler_cuda(
    input: torch.Tensor,
    grid: torch.Tensor,
    interpolation_mode: int | str = 0,
    padding_mode: int | str = 0,
    align_corners: bool = False,
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
    layout: str = "linear",
) -> torch.Tensor:
    """Sample ``input`` at ``grid`` with the Triton kernel of one precision (2D for a 4-D grid, 3D for 5-D).

    ``layout`` other than "linear": ``input`` is the physical tensor of that channel-vectorized layout
    (N, groups, *S, vec) (layouts.to_layout) and the output comes in the same layout (N, groups, *So, vec).
    """
    check_launch(OP, precision, [input, grid])
    mode = _code(interpolation_mode, _MODES, "interpolation_mode")
    pad = _code(padding_mode, _PADS, "padding_mode")
    is3d = grid.dim() == 5
    extra = 0 if layout == "linear" else 1
    if input.dim() not in (4 + extra, 5 + extra) or grid.dim() != input.dim() - extra or grid.shape[-1] != grid.dim() - 2:
        raise BevDeployError(f"{OP}: expected input (N,C,H,W)+grid (N,Ho,Wo,2) or 5-D with 3 coords (one more "
                             f"trailing vector dim for layout {layout}), got {tuple(input.shape)} and {tuple(grid.shape)}.")
    vec = 1 if layout == "linear" else physical_vector(OP, input, layout, input.dim())
    if precision == "int8":
        x, out_scale = int8_input(OP, input, "input", scales)
        g = grid.to(torch.float16).contiguous()
    else:
        x, g, out_scale = float_storage(input, precision), float_storage(grid, precision), 1.0
    n, c = x.shape[0], x.shape[1] * vec  # c: padded channels for a vectorized layout
    d, h, w = (x.shape[2:5] if is3d else (1, *x.shape[2:4]))
    out_sp = tuple(grid.shape[1:-1])
    npix = 1
    for s in out_sp:
        npix *= int(s)
    shape = (n, c, *out_sp) if vec == 1 else (n, c // vec, *out_sp, vec)
    out = torch.empty(shape, dtype=out_dtype(precision), device=input.device)
    if out.numel() == 0:
        return out
    cfg = tuned(TUNING, precision, "3d" if is3d else "2d")
    lay = "" if vec == 1 else "vec_"  # TUNING keys of the linear / the vectorized layouts
    block_c, block_p, warps = cfg["block_c"], cfg["block_p"], cfg["num_warps"]
    packed = 0
    ty, tz, cap = cfg["tile_y"], cfg["tile_z"], cfg["maxnreg"]
    parity = vector_key(cfg, "row_parity", vec, x.element_size())
    if vec > 1:  # one vector load of at most 32 bytes per corner
        block_c, block_p, warps = vector_tile(cfg, vec, x.element_size(), c // vec)
        ty, tz = vector_box(cfg, vec, x.element_size())
        cap = vector_maxnreg(cfg, vec, x.element_size())
        packed = packed_words(precision, mode, block_c, x, vec, cfg)
        x = x.reshape(-1).view(torch.int32) if packed else x  # flat: a size-1 dim may carry an odd stride
    ho, wo = int(out_sp[-2]), int(out_sp[-1])
    tz = tz if is3d else 1
    do = npix // (ho * wo)
    ty, n_pblocks, inv_nx, inv_ny = box_or_runs(npix, wo, ho, do, block_p, ty, tz)
    grid_dims = (n_pblocks, triton.cdiv(c, block_c), n)
    if vec == 1 and mode == 0 and cfg["staged"] and not interpreting():
        if _staged(x, g, out, out_scale, (d, h, w), out_sp, pad, align_corners, precision, cfg):
            return out
    ptr_first, static = plane_strides(cfg, vec, c, block_c)
    _grid_sampler_kernel[grid_dims](
        x, g, out, c, d, h, w, npix, ho, wo, out_scale, do, inv_nx, inv_ny,
        IS3D=is3d, NEAREST=mode == 1, ALIGN=bool(align_corners), PAD=pad, HALF_MATH=precision == "fp16x2",
        BLOCK_C=block_c, BLOCK_P=block_p, ONE_PIX=cfg["one_pix"], VEC=vec, TY=ty, TZ=tz, PACKED=packed,
        WORD_STORE=word_store(cfg, packed, vec), PAIRS=bool(cfg["vec_pairs" if vec > 1 else "pairs"]),
        SIZE1=min(d if is3d else 2, h, w) < 2, NEAR_Z=is3d and mode == 0 and bool(cfg[f"{lay}near_z"]),
        PTR_FIRST=ptr_first, SPLANE=d * h * w if static else 0, SNPIX=npix if static else 0,
        ROW_PARITY=mode == 0 and bool(parity), num_warps=warps, maxnreg=cap,
    )
    return out


# shared memory of _grid_sampler_staged_kernel's own Triton code (the box bounds' cross-warp min / max), offline on
# sm_90 with 4 warps (benchmarks/sass_offline.py --row grid_sampler 2d fp16: "shared 2048 B"); a plan that left less
# than this under 48 KiB failed to launch ("invalid argument": 1 x 16 x 32 fp16 3D boxes, session 22)
STAGED_SCRATCH = 2048


def _staged(x, g, out, out_scale, size, out_sp, pad, align, precision, cfg) -> bool:
    """Launch _grid_sampler_staged_kernel for a linear bilinear call, or return False where its plan does not apply
    (rows of an odd byte count, a misaligned input, offsets past int32, a box over the shared-memory limit)."""
    d, h, w = size
    n, c = x.shape[0], x.shape[1]
    is3d = len(out_sp) == 3
    do, ho, wo = (out_sp if is3d else (1, *out_sp))
    box = cfg["stage_box_3d" if is3d else "stage_box"]  # output (depth, rows, columns) per program
    fd = box[0] + 2 if is3d else 1  # z corners span two slices more than the box has (near-integer z floors both ways)
    plan = shared_stage_plan(x.element_size(), w, box[1], box[2], cfg["stage_block_c"] * fd, cfg["stage_step"],
                             pad=cfg["stage_pad"], margin=cfg["stage_margin"], full_pitch=True, reserve=STAGED_SCRATCH)
    if plan is None or x.data_ptr() % plan["CHUNK"] or x.numel() >= 2**31 or out.numel() >= 2**31:
        return False
    nc = cfg["stage_block_c"] * cfg["stage_blocks"]
    boxes = box_launch(wo, ho, do, box[2], box[1], box[0])
    if boxes is None:
        return False
    pitches = pitch_words(x.element_size(), plan["CHUNK"], plan["NCH"], cfg["stage_pad"])
    _grid_sampler_staged_kernel[(boxes[0], triton.cdiv(c, nc), n)](
        x, g, out, c, d, h, w, do, ho, wo, out_scale, boxes[1], boxes[2], TAB=pitches, NTAB=PITCH_STEPS,
        IS3D=is3d, ALIGN=bool(align), PAD=pad, HALF_MATH=precision == "fp16x2", TZ=box[0], TY=box[1], TX=box[2],
        BLOCK_C=cfg["stage_block_c"], NCB=cfg["stage_blocks"], FD=fd,
        NPLP=triton.next_power_of_2(cfg["stage_block_c"] * fd), SPLANE=h * w, SVOL=d * h * w, SNPIX=do * ho * wo,
        FITX=bool(cfg["stage_fit_x"]), num_warps=cfg["stage_num_warps"], maxnreg=cfg["stage_maxnreg"],
        **{k: v for k, v in plan.items() if k != "SHARED"},
    )
    return True
