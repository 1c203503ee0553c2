"""Triton kernel of the batched 4x4 matrix inverse (fp32 only, as the anchors' InverseTRT).

Entry point (called by op.py on CUDA tensors)::

    inverse_cuda(x, precision="fp32", scales=None) -> (..., 4, 4) float32

Each thread inverts one matrix in registers by cofactors (adjugate / determinant): 16 loads, ~200 flops,
16 stores, no pivoting. That suits the camera and LiDAR transforms BEV models invert (well conditioned);
an exactly singular matrix gives inf/nan instead of the reference's error. fp16/fp16x2/int8 make no sense
here: a 4x4 inverse in half precision loses the translation part of lidar2img, and the op is a few
microseconds in fp32; those precisions raise a one-line error.
"""

from collections.abc import Mapping

import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.triton_util import check_launch, tl, triton

OP = "inverse"


@triton.jit
def _inverse4x4_kernel(in_ptr, out_ptr, NMAT, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < NMAT
    p = in_ptr + i * 16
    a00 = tl.load(p + 0, mask=mask, other=1.0)
    a01 = tl.load(p + 1, mask=mask, other=0.0)
    a02 = tl.load(p + 2, mask=mask, other=0.0)
    a03 = tl.load(p + 3, mask=mask, other=0.0)
    a10 = tl.load(p + 4, mask=mask, other=0.0)
    a11 = tl.load(p + 5, mask=mask, other=1.0)
    a12 = tl.load(p + 6, mask=mask, other=0.0)
    a13 = tl.load(p + 7, mask=mask, other=0.0)
    a20 = tl.load(p + 8, mask=mask, other=0.0)
    a21 = tl.load(p + 9, mask=mask, other=0.0)
    a22 = tl.load(p + 10, mask=mask, other=1.0)
    a23 = tl.load(p + 11, mask=mask, other=0.0)
    a30 = tl.load(p + 12, mask=mask, other=0.0)
    a31 = tl.load(p + 13, mask=mask, other=0.0)
    a32 = tl.load(p + 14, mask=mask, other=0.0)
    a33 = tl.load(p + 15, mask=mask, other=1.0)
    # 2x2 minors of the top two and bottom two rows (Laplace expansion by complementary minors)
    s0 = a00 * a11 - a10 * a01
    s1 = a00 * a12 - a10 * a02
    s2 = a00 * a13 - a10 * a03
    s3 = a01 * a12 - a11 * a02
    s4 = a01 * a13 - a11 * a03
    s5 = a02 * a13 - a12 * a03
    c5 = a22 * a33 - a32 * a23
    c4 = a21 * a33 - a31 * a23
    c3 = a21 * a32 - a31 * a22
    c2 = a20 * a33 - a30 * a23
    c1 = a20 * a32 - a30 * a22
    c0 = a20 * a31 - a30 * a21
    det = s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0
    r = 1.0 / det
    q = out_ptr + i * 16
    tl.store(q + 0, (a11 * c5 - a12 * c4 + a13 * c3) * r, mask=mask)
    tl.store(q + 1, (-a01 * c5 + a02 * c4 - a03 * c3) * r, mask=mask)
    tl.store(q + 2, (a31 * s5 - a32 * s4 + a33 * s3) * r, mask=mask)
    tl.store(q + 3, (-a21 * s5 + a22 * s4 - a23 * s3) * r, mask=mask)
    tl.store(q + 4, (-a10 * c5 + a12 * c2 - a13 * c1) * r, mask=mask)
    tl.store(q + 5, (a00 * c5 - a02 * c2 + a03 * c1) * r, mask=mask)
    tl.store(q + 6, (-a30 * s5 + a32 * s2 - a33 * s1) * r, mask=mask)
    tl.store(q + 7, (a20 * s5 - a22 * s2 + a23 * s1) * r, mask=mask)
    tl.store(q + 8, (a10 * c4 - a11 * c2 + a13 * c0) * r, mask=mask)
    tl.store(q + 9, (-a00 * c4 + a01 * c2 - a03 * c0) * r, mask=mask)
    tl.store(q + 10, (a30 * s4 - a31 * s2 + a33 * s0) * r, mask=mask)
    tl.store(q + 11, (-a20 * s4 + a21 * s2 - a23 * s0) * r, mask=mask)
    tl.store(q + 12, (-a10 * c3 + a11 * c1 - a12 * c0) * r, mask=mask)
    tl.store(q + 13, (a00 * c3 - a01 * c1 + a02 * c0) * r, mask=mask)
    tl.store(q + 14, (-a30 * s3 + a31 * s1 - a32 * s0) * r, mask=mask)
    tl.store(q + 15, (a20 * s3 - a21 * s1 + a22 * s0) * r, mask=mask)


def inverse_cuda(x: torch.Tensor, precision: str = "fp32", scales: Mapping[str, float] | None = None) -> torch.Tensor:
    """Invert every 4x4 matrix of ``x`` (..., 4, 4) in fp32 with the Triton kernel."""
    check_launch(OP, precision, [x], allowed=("fp32",))
    if x.dim() < 2 or tuple(x.shape[-2:]) != (4, 4):
        raise BevDeployError(f"{OP}: the kernel inverts 4x4 matrices (..., 4, 4), got {tuple(x.shape)}.")
    a = x.to(torch.float32).contiguous()
    out = torch.empty_like(a)
    n = a.numel() // 16
    if n:
        block = 128
        _inverse4x4_kernel[(triton.cdiv(n, block),)](a, out, n, BLOCK=block, num_warps=4)
    return out
