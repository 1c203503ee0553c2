"""``torch.ops.bevdeploy.bev_pool_v2``: reference on CPU, the Triton kernel on CUDA, autograd.

CUDA dispatch: ``kernels.bev_pool_v2_cuda`` beside this file when it imports (see
``..dispatch``); otherwise CUDA runs the reference too (correct, slower).
"""

from __future__ import annotations

import torch

from ..dispatch import run_cuda
from .reference import bev_pool_v2_reference, interval_point_index


@torch.library.custom_op("bevdeploy::bev_pool_v2", mutates_args=())
def bev_pool_v2(
    depth: torch.Tensor,
    feat: torch.Tensor,
    ranks_depth: torch.Tensor,
    ranks_feat: torch.Tensor,
    ranks_bev: torch.Tensor,
    interval_starts: torch.Tensor,
    interval_lengths: torch.Tensor,
    out_shape: list[int],
) -> torch.Tensor:
    """Pool frustum features into the BEV grid (B, C, Z, Y, X); see reference.py for semantics."""
    return bev_pool_v2_reference(
        depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths, out_shape
    )


@bev_pool_v2.register_kernel("cuda")
def _bev_pool_v2_cuda(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths, out_shape):
    args = (depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths, out_shape)
    return run_cuda(__package__, "bev_pool_v2", bev_pool_v2_reference, *args)


@bev_pool_v2.register_fake
def _bev_pool_v2_fake(depth, feat, ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths, out_shape):
    b, z, y, x, c = out_shape
    return feat.new_empty((b, z, y, x, c)).permute(0, 4, 1, 2, 3)


def _setup_context(ctx, inputs, output):
    depth, feat, ranks_depth, ranks_feat, ranks_bev, starts, lengths, _ = inputs
    ctx.save_for_backward(depth, feat, ranks_depth, ranks_feat, ranks_bev, starts, lengths)


def _backward(ctx, grad):
    depth, feat, ranks_depth, ranks_feat, ranks_bev, starts, lengths = ctx.saved_tensors
    c = feat.shape[-1]
    idx = interval_point_index(starts, lengths)
    cell = torch.repeat_interleave(ranks_bev.long()[starts.long()], lengths.long(), output_size=idx.numel())
    g = grad.permute(0, 2, 3, 4, 1).reshape(-1, c)[cell]
    rd, rf = ranks_depth.long()[idx], ranks_feat.long()[idx]
    f = feat.reshape(-1, c)[rf]
    d = depth.reshape(-1)[rd]
    grad_depth = grad_feat = None
    if ctx.needs_input_grad[0]:
        grad_depth = torch.zeros(depth.numel(), dtype=depth.dtype, device=depth.device)
        grad_depth = grad_depth.index_add(0, rd, (g * f).sum(1).to(depth.dtype)).reshape(depth.shape)
    if ctx.needs_input_grad[1]:
        grad_feat = torch.zeros(feat.numel() // c, c, dtype=feat.dtype, device=feat.device)
        grad_feat = grad_feat.index_add(0, rf, g * d.unsqueeze(1).to(feat.dtype)).reshape(feat.shape)
    return grad_depth, grad_feat, None, None, None, None, None, None


bev_pool_v2.register_autograd(_backward, setup_context=_setup_context)
