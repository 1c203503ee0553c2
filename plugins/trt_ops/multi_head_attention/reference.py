"""Multi-head scaled dot-product attention in plain PyTorch (BEVFormer_tensorrt's QKVTRT, per head).

``query`` (B, heads, Lq, d), ``key`` (B, heads, Lk, d), ``value`` (B, heads, Lk, d) ->
softmax(query key^T / sqrt(d)) value, (B, heads, Lq, d). The softmax subtracts the row maximum
(as a flash-attention kernel's running maximum does), so large logits do not overflow.
"""

from __future__ import annotations

import math

import torch


def multi_head_attention_reference(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Attention per (batch, head); see the module docstring."""
    if query.dim() != 4 or key.shape != value.shape or query.shape[:2] != key.shape[:2] or query.shape[-1] != key.shape[-1]:
        raise ValueError(f"multi_head_attention: shapes q {tuple(query.shape)} k {tuple(key.shape)} v {tuple(value.shape)}")
    logits = torch.matmul(query, key.transpose(-1, -2)) * (1.0 / math.sqrt(query.shape[-1]))
    logits = logits - logits.amax(-1, keepdim=True)
    weights = torch.exp(logits)
    weights = weights / weights.sum(-1, keepdim=True)
    return torch.matmul(weights, value)
