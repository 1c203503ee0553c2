"""``torch.ops.bevdeploy.modulated_deform_conv2d``: reference on CPU,
``kernels.modulated_deform_conv2d_cuda`` on CUDA (see ``..dispatch``), autograd in input,
offset, mask, weight and bias."""

from __future__ import annotations

import torch

from ..autograd import register_reference_autograd
from ..dispatch import run_cuda
from .reference import modulated_deform_conv2d_reference, output_size


@torch.library.custom_op("bevdeploy::modulated_deform_conv2d", mutates_args=())
def modulated_deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    deform_groups: int,
) -> torch.Tensor:
    """Modulated deformable conv v2 (mmcv semantics) -> (N, C_out, Ho, Wo); see reference.py."""
    return modulated_deform_conv2d_reference(
        input, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups
    )


@modulated_deform_conv2d.register_kernel("cuda")
def _mdcn_cuda(input, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    args = (input, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups)
    return run_cuda(__package__, "modulated_deform_conv2d", modulated_deform_conv2d_reference, *args)


@modulated_deform_conv2d.register_fake
def _mdcn_fake(input, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    kh, kw = weight.shape[2:]
    ho = output_size(input.shape[2], kh, stride[0], padding[0], dilation[0])
    wo = output_size(input.shape[3], kw, stride[1], padding[1], dilation[1])
    return input.new_empty((input.shape[0], weight.shape[0], ho, wo))


register_reference_autograd(
    modulated_deform_conv2d, modulated_deform_conv2d_reference, differentiable=(0, 1, 2, 3, 4)
)
