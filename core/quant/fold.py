"""Batch-norm folding: BN after a conv becomes a scale and bias of the conv's weights.

Folding happens before quantizers are inserted, so weight amaxes are computed on the folded
weights that the deployed graph really uses (as CUDA-BEVFusion does). Which BN follows which conv
is decided structurally, without tracing:

* explicit ``pairs`` of module names ``(conv, bn)`` given by a model plugin (always wins);
* consecutive children ``conv, bn`` of an ``nn.Sequential`` or a ``spconv.SparseSequential``;
* attribute pairs ``conv``/``bn`` and ``convN``/``bnN`` on one module (mmcv ``ConvModule``,
  torchvision/mmdet ResNet blocks), whose forward applies the BN directly to the conv's output.

The heuristic is only sound for modules whose forward really is ``bn(conv(x))``; a model whose
forward does something else in between must pass ``pairs`` and ``heuristic=False``.
A folded BN is replaced by ``nn.Identity`` so the parent's forward keeps working.
Folding gives a bias-less conv a bias; spconv's CPU kernels reject a bias in eval mode, which the
fake-quant sparse conv of :mod:`.sparse` works around (a sparse conv folded but left unquantized
would not run on the CPU).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import BevDeployError

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _sparse_conv_types() -> tuple[type, ...]:
    from ..sparse import sparse_conv_types  # bevdeploy.sparse's, and spconv's when installed

    return sparse_conv_types()


def _out_axis(conv: nn.Module) -> int:
    """Axis of the output channels in the conv's weight."""
    if isinstance(conv, _sparse_conv_types()):
        return 0  # spconv 2.x weight layout [out, kD, kH, kW, in]
    if isinstance(conv, nn.modules.conv._ConvTransposeNd):
        if conv.groups != 1:
            raise BevDeployError(f"cannot fold BN into a grouped ConvTranspose ({conv}); pass heuristic=False")
        return 1  # [in, out, kH, kW]
    return 0


def _foldable(conv: nn.Module) -> bool:
    return isinstance(conv, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, *_sparse_conv_types()))


def _out_channels(conv: nn.Module) -> int:
    return int(conv.weight.shape[_out_axis(conv)])


@torch.no_grad()
def fold_into(conv: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn``'s affine normalisation into ``conv``'s weight and bias in place."""
    if bn.running_mean is None or bn.running_var is None:
        raise BevDeployError(f"BN {bn} has no running statistics; fold only models in eval mode with tracked stats")
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    axis = _out_axis(conv)
    shape = [1] * conv.weight.dim()
    shape[axis] = -1
    conv.weight.mul_(scale.reshape(shape))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
    new_bias = (bias - bn.running_mean) * scale + beta
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(new_bias)


def _sequential_pairs(model: nn.Module) -> Iterable[tuple[str, str]]:
    from ..sparse import sparse_sequential_types

    seq_types: tuple[type, ...] = (nn.Sequential, *sparse_sequential_types())
    for name, mod in model.named_modules():
        if not isinstance(mod, seq_types):
            continue
        children = list(mod.named_children())
        for (ca, a), (cb, b) in zip(children, children[1:], strict=False):
            if _foldable(a) and isinstance(b, _BN):
                yield _join(name, ca), _join(name, cb)


_ATTR = re.compile(r"^conv(\d*)$")


def _attribute_pairs(model: nn.Module) -> Iterable[tuple[str, str]]:
    for name, mod in model.named_modules():
        for child_name, child in mod.named_children():
            m = _ATTR.match(child_name)
            if not m or not _foldable(child):
                continue
            bn = getattr(mod, f"bn{m.group(1)}", None)
            if isinstance(bn, _BN):
                yield _join(name, child_name), _join(name, f"bn{m.group(1)}")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def fold_bn(
    model: nn.Module, pairs: Iterable[tuple[str, str]] = (), heuristic: bool = True
) -> list[tuple[str, str]]:
    """Fold every (conv, BN) pair in place and return the pairs folded.

    ``pairs`` are explicit ``(conv_name, bn_name)``; with ``heuristic`` the structural rules in the
    module docstring find the rest. A pair whose channel counts disagree is skipped by the
    heuristic and an error when given explicitly.
    """
    explicit = list(pairs)
    found = list(explicit)
    if heuristic:
        seen = {bn for _, bn in explicit}
        for conv_name, bn_name in [*_sequential_pairs(model), *_attribute_pairs(model)]:
            if bn_name not in seen:
                seen.add(bn_name)
                found.append((conv_name, bn_name))
    modules = dict(model.named_modules())
    done: list[tuple[str, str]] = []
    for conv_name, bn_name in found:
        conv, bn = modules.get(conv_name), modules.get(bn_name)
        if conv is None or bn is None:
            raise BevDeployError(f"BN folding pair ({conv_name}, {bn_name}) names a module the model lacks")
        if isinstance(bn, nn.Identity):
            continue  # folded already
        fits = _foldable(conv) and isinstance(bn, _BN) and _out_channels(conv) == bn.num_features
        if not fits:
            if (conv_name, bn_name) in explicit:
                raise BevDeployError(f"cannot fold {bn_name} into {conv_name}: not a conv/BN pair with equal channels")
            continue
        fold_into(conv, bn)
        _set(model, bn_name, nn.Identity())
        done.append((conv_name, bn_name))
    return done
