"""``torch.ops.bevdeploy.bev_pool_columns``: reference on CPU, the Triton kernels on CUDA, autograd.

CUDA dispatch: ``kernels.bev_pool_columns_cuda`` beside this file when it imports (see ``..dispatch``);
otherwise CUDA runs the reference too (correct, slower).
"""

from __future__ import annotations

import torch

from ..bev_pool_v2.op import point_grads
from ..dispatch import run_cuda
from .reference import bev_pool_columns_reference, plan_points


@torch.library.custom_op("bevdeploy::bev_pool_columns", mutates_args=())
def bev_pool_columns(
    depth: torch.Tensor,
    feat: torch.Tensor,
    runs: torch.Tensor,
    fill: torch.Tensor,
    out_shape: list[int],
) -> torch.Tensor:
    """Pool frustum features into the BEV grid (B, C, Z, Y, X) by column plan; see reference.py."""
    return bev_pool_columns_reference(depth, feat, runs, fill, out_shape)


@bev_pool_columns.register_kernel("cuda")
def _bev_pool_columns_cuda(depth, feat, runs, fill, out_shape):
    args = (depth, feat, runs, fill, out_shape)
    return run_cuda(__package__, "bev_pool_columns", bev_pool_columns_reference, *args)


@bev_pool_columns.register_fake
def _bev_pool_columns_fake(depth, feat, runs, fill, out_shape):
    b, z, y, x, c = out_shape
    return feat.new_empty((b, z, y, x, c)).permute(0, 4, 1, 2, 3)


def _setup_context(ctx, inputs, output):
    depth, feat, runs, _, _ = inputs
    ctx.save_for_backward(depth, feat, runs)


def _backward(ctx, grad):
    depth, feat, runs = ctx.saved_tensors
    depth_index, feat_row, cell = plan_points(runs, depth.shape)
    grad_depth, grad_feat = point_grads(grad, depth, feat, depth_index, feat_row, cell, *ctx.needs_input_grad[:2])
    return grad_depth, grad_feat, None, None, None


bev_pool_columns.register_autograd(_backward, setup_context=_setup_context)
