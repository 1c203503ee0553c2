"""Modulated deformable convolution v2 in plain PyTorch, with mmcv's semantics.

``input`` (N, C_in, H, W); ``offset`` (N, deform_groups * 2 * kh * kw, Ho, Wo), for deform group
g and kernel tap k = i * kw + j the channels 2k (dy) and 2k+1 (dx) of the group's block;
``mask`` (N, deform_groups * kh * kw, Ho, Wo); ``weight`` (C_out, C_in / groups, kh, kw);
``bias`` (C_out,) or empty. Tap (i, j) of output pixel (ho, wo) reads input channel block g at
    y = ho * stride_h - pad_h + i * dil_h + dy,   x = wo * stride_w - pad_w + j * dil_w + dx
bilinearly with zeros outside, multiplied by the mask; the columns are then convolved with
``weight`` per group (im2col + matmul).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..sampling import linear_sample


def output_size(size: int, kernel: int, stride: int, pad: int, dil: int) -> int:
    """Convolution output length along one axis."""
    return (size + 2 * pad - dil * (kernel - 1) - 1) // stride + 1


def modulated_deform_conv2d_reference(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    deform_groups: int,
) -> torch.Tensor:
    """(N, C_out, Ho, Wo); see the module docstring."""
    n, cin, h, w = input.shape
    cout, cin_g, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    if cin % deform_groups or cin != cin_g * groups or cout % groups:
        raise ValueError(f"modulated_deform_conv2d: channels {cin}/{cout} do not split into groups {groups}/{deform_groups}")
    taps = kh * kw
    off = offset.reshape(n, deform_groups, taps, 2, ho * wo).to(input.dtype)
    msk = mask.reshape(n, deform_groups, taps, ho * wo).to(input.dtype)
    dev, dt = input.device, input.dtype
    base_y = (torch.arange(ho, device=dev, dtype=dt) * sh - ph).reshape(ho, 1).expand(ho, wo).reshape(-1)
    base_x = (torch.arange(wo, device=dev, dtype=dt) * sw - pw).reshape(1, wo).expand(ho, wo).reshape(-1)
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dh).repeat_interleave(kw)
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dw).repeat(kh)
    y = base_y + tap_y[:, None] + off[:, :, :, 0]  # (N, dg, taps, Ho*Wo)
    x = base_x + tap_x[:, None] + off[:, :, :, 1]
    cg = cin // deform_groups
    img = input.reshape(n * deform_groups, cg, h, w)
    cols = linear_sample(img, [y.reshape(n * deform_groups, -1), x.reshape(n * deform_groups, -1)])
    cols = cols.reshape(n, deform_groups, cg, taps, ho * wo) * msk.unsqueeze(2)
    cols = cols.reshape(n, groups, cin_g * taps, ho * wo)  # channel-major, tap-minor, like weight
    wmat = weight.reshape(groups, cout // groups, cin_g * taps)
    out = torch.einsum("gok,ngkp->ngop", wmat, cols).reshape(n, cout, ho, wo)
    if bias is not None and bias.numel():
        out = out + bias.reshape(1, cout, 1, 1)
    return out
