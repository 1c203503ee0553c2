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


def point_grads(grad, depth, feat, depth_index, feat_row, cell, needs_depth: bool, needs_feat: bool):
    """(grad_depth, grad_feat) of a pooling given per point its depth index, feature row and cell (int64);
    ``grad`` is the (B, C, Z, Y, X) output gradient. Shared with bev_pool_columns, which pools the same sum."""
    c = feat.shape[-1]
    g = grad.permute(0, 2, 3, 4, 1).reshape(-1, c)[cell]
    f = feat.reshape(-1, c)[feat_row]
    d = depth.reshape(-1)[depth_index]
    grad_depth = grad_feat = None
    if needs_depth:
        grad_depth = torch.zeros(depth.numel(), dtype=depth.dtype, device=depth.device)
        grad_depth = grad_depth.index_add(0, depth_index, (g * f).sum(1).to(depth.dtype)).reshape(depth.shape)
    if needs_feat:
        grad_feat = torch.zeros(feat.numel() // c, c, dtype=feat.dtype, device=feat.device)
        grad_feat = grad_feat.index_add(0, feat_row, g * d.unsqueeze(1).to(feat.dtype)).reshape(feat.shape)
    return grad_depth, grad_feat


def _backward(ctx, grad):
    depth, feat, ranks_depth, ranks_feat, ranks_bev, starts, lengths = ctx.saved_tensors
    idx = interval_point_index(starts, lengths)
    cell = torch.repeat_interleave(ranks_bev.long()[starts.long()], lengths.long(), output_size=idx.numel())
    rd, rf = ranks_depth.long()[idx], ranks_feat.long()[idx]
    grad_depth, grad_feat = point_grads(grad, depth, feat, rd, rf, cell, *ctx.needs_input_grad[:2])
    return grad_depth, grad_feat, None, None, None, None, None, None


bev_pool_v2.register_autograd(_backward, setup_context=_setup_context)
