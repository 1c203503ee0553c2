"""Triton kernel of modulated deformable convolution v2 (mmcv semantics): deformable im2col + one matmul.

Entry point (called by op.py on CUDA tensors)::

    modulated_deform_conv2d_cuda(input, offset, mask, weight, bias, stride, padding, dilation, groups,
                                 deform_groups, precision="fp32", scales=None) -> (N, Cout, Ho, Wo)

input (N, Cin, H, W); offset (N, deform_groups * 2 * kh * kw, Ho, Wo) with (dy, dx) interleaved per kernel
tap; mask (N, deform_groups * kh * kw, Ho, Wo); weight (Cout, Cin / groups, kh, kw); bias (Cout,), empty or None.
Sampling position of tap (i, j) = (ho * stride - pad + i * dilation + dy, wo * stride - pad + j * dilation + dx),
bilinear, zero outside.

Why two steps: the bilinear columns cost 4 gathers and ~20 instructions each and are shared by every output
channel. The fused implicit GEMM (one program per pixel block x output-channel block) rebuilt them once per
block of 32 output channels (8 times for Cout 256) and ran 12x slower than PyTorch's im2col + cuBLAS. Here the
Triton kernel writes the modulated columns (N, Cin * kh * kw, Ho * Wo) ONCE, in the variant's storage dtype
(one program per pixel block x kernel tap x deform group, the tap's position and corner weights computed once
and reused for every channel of the group), and one cuBLAS matmul per batch chunk multiplies them with the
weight (grouped as a broadcast batched matmul), bias added on the result.

Variants: fp32 (fp32 columns, fp32 cuBLAS matmul; TF32 is not used unless the caller enabled
torch.backends.cuda.matmul.allow_tf32); fp16 (fp16 storage, columns interpolated in fp32 and stored in fp16,
fp16 tensor-core matmul with fp32 accumulation, fp16 out); fp16x2 (columns interpolated in fp16 arithmetic,
packed into half2; the matmul is the same fp16 tensor-core matmul with fp32 accumulation, cuBLAS having no
fp16-accumulating path in torch); int8 (input and weight int8 with scales["input"], scales["weight"]: the
interpolated columns are no longer integers, so the kernel dequantises the taps and stores fp16 columns
(q * input scale, bilinear weights, mask), the weight is dequantised to fp16 once per call, and the matmul is
the fp16 one; int8 storage halves the input reads, not the matmul). Offsets and mask stay fp16 in the
non-fp32 variants; positions are always computed in fp32.
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
    to_f32,
    triton,
)

OP = "modulated_deform_conv2d"
_MODE = {"fp32": 0, "fp16": 1, "fp16x2": 2, "int8": 1}
# im2col launch shape; benchmarks/ops.py --sweep varies it
TUNING = {"block_p": 128, "num_warps": 4}  # run 4 sweep: 128 beat 256 / 512 in every precision
SWEEP = [{"block_p": 64, "num_warps": 2}, {"block_p": 128}, {"block_p": 128, "num_warps": 2}]
_COLS_LIMIT = 1 << 30  # column elements per batch chunk (2 GiB in fp16): bounds the workspace, keeps int32 offsets


@triton.jit
def _tap(x_ptr, chan_off, yy, xx, wgt, valid, H, W, MODE: tl.constexpr):
    ok = valid & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
    v = tl.load(x_ptr + chan_off + yy * W + xx, mask=ok, other=0)
    if MODE == 2:
        out = wgt.to(tl.float16) * v
    else:
        out = wgt * to_f32(v)
    return out


@triton.jit
def _mdcn_im2col_kernel(
    x_ptr, off_ptr, mask_ptr, col_ptr,
    CIN, H, W, HO, WO, KW, K, SH, SW, PH, PW, DH, DW, DG, CIN_DG, in_scale,
    MODE: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """cols[n, ci * K + k, p] = mask * bilinear(x[n, ci], position of tap k at pixel p), for one tap and
    deform group: the position and corner weights are computed once and reused for the group's channels."""
    npix = HO * WO
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < npix
    kg = tl.program_id(1)
    k = kg % K
    dgi = kg // K
    n = tl.program_id(2)
    ob = ((n * DG + dgi) * (2 * K) + 2 * k) * npix
    offy = tl.load(off_ptr + ob + p, mask=pmask, other=0).to(tl.float32)
    offx = tl.load(off_ptr + ob + npix + p, mask=pmask, other=0).to(tl.float32)
    mod = tl.load(mask_ptr + ((n * DG + dgi) * K + k) * npix + p, mask=pmask, other=0).to(tl.float32)
    y = ((p // WO) * SH - PH + (k // KW) * DH).to(tl.float32) + offy
    x = ((p % WO) * SW - PW + (k % KW) * DW).to(tl.float32) + offx
    valid = pmask & (y > -1.0) & (x > -1.0) & (y < H) & (x < W)
    y0f = tl.floor(y)
    x0f = tl.floor(x)
    fy = y - y0f
    fx = x - x0f
    y0 = y0f.to(tl.int32)
    x0 = x0f.to(tl.int32)
    mod = mod * in_scale  # int8: the dequantisation folded into the corner weights
    w00 = (1.0 - fy) * (1.0 - fx) * mod
    w01 = (1.0 - fy) * fx * mod
    w10 = fy * (1.0 - fx) * mod
    w11 = fy * fx * mod
    # one channel per step over a pixel block: gathers of neighbouring pixels hit neighbouring addresses and the
    # column row is stored contiguously (a [channels, pixels] tile made Triton spread channels across lanes)
    for cc in range(0, CIN_DG):
        ci = dgi * CIN_DG + cc
        chan = (n * CIN + ci) * (H * W)
        v = _tap(x_ptr, chan, y0, x0, w00, valid, H, W, MODE)
        v += _tap(x_ptr, chan, y0, x0 + 1, w01, valid, H, W, MODE)
        v += _tap(x_ptr, chan, y0 + 1, x0, w10, valid, H, W, MODE)
        v += _tap(x_ptr, chan, y0 + 1, x0 + 1, w11, valid, H, W, MODE)
        tl.store(col_ptr + ((n * CIN + ci) * K + k) * npix + p, v.to(col_ptr.dtype.element_ty), mask=pmask)


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


def _storage(input, offset, mask, weight, precision, scales):
    """(input, offset, mask, weight as the matmul operand, input scale) in the variant's storage."""
    if precision == "int8":
        (x, sx), (wq, swt) = int8_input(OP, input, "input", scales), int8_input(OP, weight, "weight", scales)
        wmat = (wq.to(torch.float32) * swt).to(torch.float16)
        return x, offset.to(torch.float16).contiguous(), mask.to(torch.float16).contiguous(), wmat, sx
    x, off, mk, wt = (float_storage(t, precision) for t in (input, offset, mask, weight))
    return x, off, mk, wt, 1.0


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
    x, off, mk, wt, in_scale = _storage(input, offset, mask, weight, precision, scales)
    odt = out_dtype(precision)
    taps, npix = kh * kw, ho * wo
    if n * cout * npix == 0:
        return torch.empty((n, cout, ho, wo), dtype=odt, device=input.device)
    if cin * taps * npix >= 2**31:
        raise BevDeployError(f"{OP}: one sample's im2col matrix ({cin * taps} x {npix}) is over 2^31 elements; "
                             "split the image into tiles.")
    wmat = wt.reshape(groups, cout // groups, cin_g * taps)
    chunk = max(1, _COLS_LIMIT // (cin * taps * npix))
    block_p = TUNING["block_p"] if npix >= TUNING["block_p"] else 32
    parts = []
    for n0 in range(0, n, chunk):
        nb = min(chunk, n - n0)
        cols = torch.empty((nb, cin * taps, npix), dtype=odt, device=input.device)
        grid = (triton.cdiv(npix, block_p), taps * deform_groups, nb)
        _mdcn_im2col_kernel[grid](
            x[n0:n0 + nb], off[n0:n0 + nb], mk[n0:n0 + nb], cols,
            cin, h, w, ho, wo, kw, taps, sh, sw, ph, pw, dh, dw, deform_groups, cin // deform_groups, in_scale,
            MODE=_MODE[precision], BLOCK_P=block_p, num_warps=TUNING["num_warps"],
        )
        parts.append(torch.matmul(wmat, cols.view(nb, groups, cin_g * taps, npix)))  # (nb, G, Cout/G, P)
    out = (parts[0] if len(parts) == 1 else torch.cat(parts)).view(n, cout, ho, wo)
    if bias is not None and bias.numel() > 0:
        out += bias.to(odt).view(1, cout, 1, 1)
    return out
