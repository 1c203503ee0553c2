"""Autograd for custom ops whose backward is the reference's own autograd graph.

The references are written in differentiable torch ops, so the backward of an op re-runs its
reference under ``enable_grad`` and asks autograd for the input gradients. This serves CPU and
CUDA alike (on CUDA the forward uses the Triton kernel, the backward the reference's torch ops):
correct, not the fastest; the deployed models only train through these ops in QAT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def register_reference_autograd(op, reference: Callable, differentiable: Sequence[int]) -> None:
    """Give ``op`` (a ``torch.library.custom_op``) a backward through ``reference`` for the
    positional inputs listed in ``differentiable``."""

    def setup_context(ctx, inputs, output):
        tensor_pos = [i for i, a in enumerate(inputs) if isinstance(a, torch.Tensor)]
        ctx.tensor_pos = tensor_pos
        ctx.others = [None if i in tensor_pos else a for i, a in enumerate(inputs)]
        ctx.save_for_backward(*[inputs[i] for i in tensor_pos])

    def backward(ctx, grad):
        args = list(ctx.others)
        for pos, t in zip(ctx.tensor_pos, ctx.saved_tensors, strict=True):
            args[pos] = t
        wanted = [i for i in differentiable if ctx.needs_input_grad[i]]
        grads: list[torch.Tensor | None] = [None] * len(args)
        if not wanted:
            return tuple(grads)
        with torch.enable_grad():
            for i in wanted:
                args[i] = args[i].detach().requires_grad_(True)
            out = reference(*args)
            found = torch.autograd.grad(out, [args[i] for i in wanted], grad, allow_unused=True)
        for i, g in zip(wanted, found, strict=True):
            grads[i] = g if g is not None else torch.zeros_like(args[i])
        return tuple(grads)

    op.register_autograd(backward, setup_context=setup_context)
