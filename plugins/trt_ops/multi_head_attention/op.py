"""``torch.ops.bevdeploy.multi_head_attention``: reference on CPU, the flash-attention kernel
``kernels.multi_head_attention_cuda`` on CUDA (see ``..dispatch``)."""

from __future__ import annotations

import torch

from ..dispatch import run_cuda
from .reference import multi_head_attention_reference


@torch.library.custom_op("bevdeploy::multi_head_attention", mutates_args=())
def multi_head_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per (batch, head); (B, heads, L, d) in and out; see reference.py."""
    return multi_head_attention_reference(query, key, value)


@multi_head_attention.register_kernel("cuda")
def _mha_cuda(query, key, value):
    return run_cuda(__package__, "multi_head_attention", multi_head_attention_reference, query, key, value)


@multi_head_attention.register_fake
def _mha_fake(query, key, value):
    return query.new_empty((*query.shape[:-1], value.shape[-1]))
