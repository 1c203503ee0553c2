"""Triton kernel of modulated deformable convolution v2 (mmcv semantics) as an implicit GEMM, per precision.

Entry point (called by op.py on CUDA tensors)::

    modulated_deform_conv2d_cuda(input, offset, mask, weight, bias, stride, padding, dilation, groups,
                                 deform_groups, precision="fp32", scales=None) -> (N, Cout, Ho, Wo)

input (N, Cin, H, W); offset (N, deform_groups * 2 * kh * kw, Ho, Wo) with (dy, dx) interleaved per kernel
tap; mask (N, deform_groups * kh * kw, Ho, Wo); weight (Cout, Cin / groups, kh, kw); bias (Cout,), empty or None.
Sampling position of tap (i, j) = (ho * stride - pad + i * dilation + dy, wo * stride - pad + j * dilation + dx),
bilinear, zero outside. One program per (output pixel block, output channel block, sample x group) builds
the modulated column tile [taps, pixels] in registers and multiplies it with the weight tile on the
tensor cores (tl.dot), so the im2col matrix never reaches memory.

Variants: fp32 (IEEE fp32 products); fp16 (fp16 storage, columns interpolated in fp32, fp16 x fp16 -> fp32
dot, fp16 out); fp16x2 (columns interpolated in fp16 arithmetic, fp16-accumulated dot); int8 (input and
weight int8 with scales["input"], scales["weight"]; interpolated columns are no longer integers, so they
are formed in fp32 from the dequantised taps, multiplied in fp16 with fp32 accumulation, fp16 out).
Offsets and mask stay fp16 in the non-fp32 variants; positions are always computed in fp32.
"""

from collections.abc import Mapping, Sequence

import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.triton_util import (
    check_launch,
    float_storage,
    int8_input,
    out_dtype,
    tl,
    triton,
)

OP = "modulated_deform_conv2d"
_MODE = {"fp32": 0, "fp16": 1, "fp16x2": 2, "int8": 1}


@triton.jit
def _tap(x_ptr, chan, yy, xx, wgt, valid, H, W, MODE: tl.constexpr):
    ok = valid & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
    v = tl.load(x_ptr + chan * (H * W) + yy * W + xx, mask=ok, other=0)
    if MODE == 2:
        out = wgt.to(tl.float16) * v
    else:
        out = wgt * v.to(tl.float32)
    return out


@triton.jit
def _mdcn_kernel(
    x_ptr, off_ptr, mask_ptr, w_ptr, bias_ptr, out_ptr,
    CIN, H, W, HO, WO, KW, K, SH, SW, PH, PW, DH, DW, G, CIN_G, COUT_G, DG, CIN_DG, out_scale,
    HAS_BIAS: tl.constexpr, MODE: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_R: tl.constexpr,
):
    ng = tl.program_id(2)
    n = ng // G
    g = ng % G
    npix = HO * WO
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < npix
    ho = p // WO
    wo = p % WO
    col = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    comask = col < COUT_G
    co = g * COUT_G + col
    r_total = CIN_G * K
    acc = tl.zeros([BLOCK_CO, BLOCK_P], dtype=tl.float16 if MODE == 2 else tl.float32)
    for r0 in range(0, r_total, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        rmask = r < r_total
        ci = g * CIN_G + r // K
        k = r % K
        dgi = ci // CIN_DG
        m2 = rmask[:, None] & pmask[None, :]
        ob = (n * DG + dgi) * (2 * K) + 2 * k
        offy = tl.load(off_ptr + ob[:, None] * npix + p[None, :], mask=m2, other=0).to(tl.float32)
        offx = tl.load(off_ptr + (ob + 1)[:, None] * npix + p[None, :], mask=m2, other=0).to(tl.float32)
        mod = tl.load(mask_ptr + ((n * DG + dgi) * K + k)[:, None] * npix + p[None, :], mask=m2, other=0)
        y = (ho * SH - PH)[None, :] + ((k // KW) * DH)[:, None] + offy
        x = (wo * SW - PW)[None, :] + ((k % KW) * DW)[:, None] + offx
        valid = m2 & (y > -1.0) & (x > -1.0) & (y < H) & (x < W)
        y0f = tl.floor(y)
        x0f = tl.floor(x)
        fy = y - y0f
        fx = x - x0f
        y0 = y0f.to(tl.int32)
        x0 = x0f.to(tl.int32)
        chan = (n * CIN + ci)[:, None]
        v = _tap(x_ptr, chan, y0, x0, (1.0 - fy) * (1.0 - fx), valid, H, W, MODE)
        v += _tap(x_ptr, chan, y0, x0 + 1, (1.0 - fy) * fx, valid, H, W, MODE)
        v += _tap(x_ptr, chan, y0 + 1, x0, fy * (1.0 - fx), valid, H, W, MODE)
        v += _tap(x_ptr, chan, y0 + 1, x0 + 1, fy * fx, valid, H, W, MODE)
        wt = tl.load(w_ptr + co[:, None] * r_total + r[None, :], mask=comask[:, None] & rmask[None, :], other=0)
        if MODE == 0:
            acc += tl.dot(wt, v * mod.to(tl.float32), input_precision="ieee")
        elif MODE == 2:
            acc = tl.dot(wt.to(tl.float16), v * mod.to(tl.float16), acc=acc, out_dtype=tl.float16)
        else:
            acc += tl.dot(wt.to(tl.float16), (v * mod.to(tl.float32)).to(tl.float16))
    res = acc.to(tl.float32) * out_scale
    if HAS_BIAS:
        res += tl.load(bias_ptr + co, mask=comask, other=0).to(tl.float32)[:, None]
    optr = out_ptr + (n * (G * COUT_G) + co)[:, None] * npix + p[None, :]
    tl.store(optr, res.to(out_ptr.dtype.element_ty), mask=comask[:, None] & pmask[None, :])


def _pair(v, name: str) -> tuple[int, int]:
    t = (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)
    if len(t) != 2:
        raise BevDeployError(f"{OP}: {name} must be an int or a pair, got {v!r}.")
    return t


def _check_shapes(x, offset, mask, weight, groups, deform_groups, ho, wo):
    n, cin = x.shape[:2]
    cout, cin_g, kh, kw = weight.shape
    taps = kh * kw
    if (cin != cin_g * groups or cout % groups or cin % deform_groups
            or tuple(offset.shape) != (n, deform_groups * 2 * taps, ho, wo)
            or tuple(mask.shape) != (n, deform_groups * taps, ho, wo)):
        raise BevDeployError(
            f"{OP}: inconsistent shapes input {tuple(x.shape)}, offset {tuple(offset.shape)}, mask {tuple(mask.shape)}, "
            f"weight {tuple(weight.shape)} for groups={groups}, deform_groups={deform_groups}, output {ho}x{wo}."
        )


def modulated_deform_conv2d_cuda(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    deform_groups: int = 1,
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """Modulated deformable conv2d (DCNv2) with the Triton kernel of one precision; returns (N, Cout, Ho, Wo)."""
    check_launch(OP, precision, [input, offset, mask, weight])
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    n, cin, h, w = input.shape
    cout, cin_g, kh, kw = weight.shape
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    _check_shapes(input, offset, mask, weight, groups, deform_groups, ho, wo)
    if precision == "int8":
        (x, sx), (wt, swt) = int8_input(OP, input, "input", scales), int8_input(OP, weight, "weight", scales)
        out_scale = sx * swt
        off, mk = offset.to(torch.float16).contiguous(), mask.to(torch.float16).contiguous()
    else:
        x, off, mk, wt = (float_storage(t, precision) for t in (input, offset, mask, weight))
        out_scale = 1.0
    out = torch.empty((n, cout, ho, wo), dtype=out_dtype(precision), device=input.device)
    if out.numel() == 0:
        return out
    has_bias = bias is not None and bias.numel() > 0
    b = bias.to(torch.float32).contiguous() if has_bias else out
    cout_g = cout // groups
    block_co, block_p, block_r = (32, 64, 32) if cout_g > 16 else (16, 64, 32)
    grid = (triton.cdiv(ho * wo, block_p), triton.cdiv(cout_g, block_co), n * groups)
    _mdcn_kernel[grid](
        x, off, mk, wt, b, out,
        cin, h, w, ho, wo, kw, kh * kw, sh, sw, ph, pw, dh, dw, groups, cin_g, cout_g, deform_groups,
        cin // deform_groups, out_scale,
        HAS_BIAS=has_bias, MODE=_MODE[precision], BLOCK_CO=block_co, BLOCK_P=block_p, BLOCK_R=block_r,
        num_warps=4,
    )
    return out
