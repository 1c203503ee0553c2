"""``torch.ops.bevdeploy.ms_deform_attn``: reference on CPU, ``kernels.ms_deform_attn_cuda`` on
CUDA (see ``..dispatch``), autograd in value, sampling_locations and attention_weights."""

from __future__ import annotations

import torch

from ..autograd import register_reference_autograd
from ..dispatch import run_cuda
from .reference import ms_deform_attn_reference


@torch.library.custom_op("bevdeploy::ms_deform_attn", mutates_args=())
def ms_deform_attn(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention -> (B, Q, heads * C); see reference.py."""
    return ms_deform_attn_reference(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)


@ms_deform_attn.register_kernel("cuda")
def _ms_deform_attn_cuda(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    args = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    return run_cuda(__package__, "ms_deform_attn", ms_deform_attn_reference, *args)


@ms_deform_attn.register_fake
def _ms_deform_attn_fake(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    b, _, heads, c = value.shape
    return value.new_empty((b, sampling_locations.shape[1], heads * c))


register_reference_autograd(ms_deform_attn, ms_deform_attn_reference, differentiable=(0, 3, 4))
