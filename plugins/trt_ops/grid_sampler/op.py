"""``torch.ops.bevdeploy.grid_sampler`` (2D and 3D): reference on CPU, ``kernels.grid_sampler_cuda``
on CUDA (see ``..dispatch``), autograd in input and grid."""

from __future__ import annotations

import torch

from ..autograd import register_reference_autograd
from ..dispatch import run_cuda
from .reference import grid_sampler_reference


@torch.library.custom_op("bevdeploy::grid_sampler", mutates_args=())
def grid_sampler(
    input: torch.Tensor, grid: torch.Tensor, interpolation_mode: int, padding_mode: int, align_corners: bool
) -> torch.Tensor:
    """Sample ``input`` (N, C, [D,] H, W) at normalised ``grid`` (N, [Do,] Ho, Wo, 2|3); see reference.py."""
    return grid_sampler_reference(input, grid, interpolation_mode, padding_mode, align_corners)


@grid_sampler.register_kernel("cuda")
def _grid_sampler_cuda(input, grid, interpolation_mode, padding_mode, align_corners):
    args = (input, grid, interpolation_mode, padding_mode, align_corners)
    return run_cuda(__package__, "grid_sampler", grid_sampler_reference, *args)


@grid_sampler.register_fake
def _grid_sampler_fake(input, grid, interpolation_mode, padding_mode, align_corners):
    return input.new_empty((input.shape[0], input.shape[1], *grid.shape[1:-1]))


register_reference_autograd(grid_sampler, grid_sampler_reference, differentiable=(0, 1))
