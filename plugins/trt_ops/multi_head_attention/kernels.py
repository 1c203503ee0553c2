"""Triton flash-attention kernel (tiled, online softmax) for multi-head attention, one per precision.

Entry point (called by op.py on CUDA tensors)::

    multi_head_attention_cuda(q, k, v, precision="fp32", scales=None) -> (B, heads, Lq, D)

q (B, heads, Lq, D), k and v (B, heads, Lk, D); softmax(q k^T / sqrt(D)) v. One program per (query block,
batch*head) streams key/value blocks through registers keeping the running max and sum, so the Lq x Lk
score matrix never reaches memory. Any Lq, Lk (masked tails) and any D (padded to a power of two >= 16).

Variants: fp32 (IEEE fp32 products, not tf32); fp16 (fp16 q/k/v, fp32 scores and accumulators, fp16 out);
fp16x2 (fp16 operands and fp16 accumulation of P.V on the tensor cores, scores and softmax in fp32);
int8 (q, k, v int8 with scales["q"], scales["k"], scales["v"]: q k^T as an int8 x int8 -> int32 product,
P.V with v dequantised to fp16, fp32 accumulation, fp16 out).
"""

import math
from collections.abc import Mapping

import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.triton_util import (
    check_launch,
    float_storage,
    int8_input,
    next_pow2,
    out_dtype,
    tl,
    triton,
)

OP = "multi_head_attention"
_MODE = {"fp32": 0, "fp16": 1, "fp16x2": 2, "int8": 3}


@triton.jit
def _flash_attn_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, LQ, LK, D, qk_scale, v_scale,
    MODE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    bh = tl.program_id(1)
    m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    d = tl.arange(0, BLOCK_D)
    mmask = m < LQ
    dmask = d < D
    q = tl.load(q_ptr + bh * LQ * D + m[:, None] * D + d[None, :], mask=mmask[:, None] & dmask[None, :], other=0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    if MODE == 2:
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float16)
    else:
        acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for n0 in range(0, LK, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        nmask = n < LK
        kv_off = bh * LK * D + n[:, None] * D + d[None, :]
        kv_mask = nmask[:, None] & dmask[None, :]
        k = tl.load(k_ptr + kv_off, mask=kv_mask, other=0)
        v = tl.load(v_ptr + kv_off, mask=kv_mask, other=0)
        if MODE == 0:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k)).to(tl.float32)
        s = tl.where(nmask[None, :], s * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        if MODE == 0:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        elif MODE == 2:
            acc = acc * alpha.to(tl.float16)[:, None] + tl.dot(p.to(tl.float16), v, out_dtype=tl.float16)
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(tl.float16), v.to(tl.float16))
        m_i = m_new
    res = acc.to(tl.float32) * (v_scale / l_i)[:, None]
    optr = o_ptr + bh * LQ * D + m[:, None] * D + d[None, :]
    tl.store(optr, res.to(o_ptr.dtype.element_ty), mask=mmask[:, None] & dmask[None, :])


def multi_head_attention_cuda(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    precision: str = "fp32",
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v per (batch, head) with the Triton flash kernel of one precision."""
    check_launch(OP, precision, [q, k, v])
    if q.dim() != 4 or k.shape != v.shape or k.dim() != 4 or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise BevDeployError(f"{OP}: expected q (B,heads,Lq,D), k and v (B,heads,Lk,D); got "
                             f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}.")
    b, h, lq, dim = q.shape
    lk = k.shape[2]
    qk_scale, v_scale = 1.0 / math.sqrt(dim), 1.0
    if precision == "int8":
        (tq, sq), (tk, sk), (tv, sv) = (int8_input(OP, t, n, scales) for t, n in ((q, "q"), (k, "k"), (v, "v")))
        qk_scale, v_scale = qk_scale * sq * sk, sv
    else:
        tq, tk, tv = (float_storage(t, precision) for t in (q, k, v))
    out = torch.empty((b, h, lq, dim), dtype=out_dtype(precision), device=q.device)
    if out.numel() == 0 or lk == 0:
        return out.zero_()
    block_m, block_n = 64, 64
    _flash_attn_kernel[(triton.cdiv(lq, block_m), b * h)](
        tq, tk, tv, out, lq, lk, dim, qk_scale, v_scale,
        MODE=_MODE[precision], BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=max(16, next_pow2(dim)),
        num_warps=4, num_stages=2,
    )
    return out
