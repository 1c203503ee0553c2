"""Fake quantization around spconv 2.x sparse convolutions (generic: any model using spconv).

A sparse conv's instance class is swapped for a subclass whose forward fake-quantizes the input
features (per tensor) and the weight (per output channel, axis 0 of spconv 2.x's
``[out, kD, kH, kW, in]`` layout) and then calls spconv's own ``_conv_forward``. Names,
parameters and indices stay spconv's, so the sparse runtime and the libspconv exporter see the
same module tree. spconv's int8 kernels need its GPU build; fake-quant runs everywhere. On the CPU
spconv cannot add a bias inside its kernels in eval mode, so a folded BN's bias is added after.
"""

from __future__ import annotations

from pytorch_quantization.nn import TensorQuantizer
from pytorch_quantization.tensor_quant import QuantDescriptor
from torch import nn

from ..errors import BevDeployError

_QUANT_CLASSES: dict[type, type] = {}


def is_sparse_conv(module: nn.Module) -> bool:
    """True for a sparse convolution (spconv's or bevdeploy.sparse's, which shares spconv's
    ``_conv_forward`` signature and weight layout) that is not quantized yet."""
    from ..sparse import sparse_conv_types

    return isinstance(module, sparse_conv_types()) and not isinstance(module, QuantSparseMixin)


class QuantSparseMixin:
    """Forward of a fake-quantized sparse conv; mirrors spconv 2.3's ``SparseConvolution.forward``."""

    def forward(self, input, add_input=None):  # noqa: A002 - spconv's argument name
        features = self._input_quantizer(input.features)
        x = input.replace_feature(features)
        weight = self._weight_quantizer(self.weight)
        bias, post_bias = self.bias, None
        if bias is not None and not features.is_cuda:  # spconv's CPU kernels take no bias in eval mode
            bias, post_bias = None, bias
        out = self._conv_forward(
            self.training,
            x,
            weight,
            bias,
            add_input,
            name=self.name,
            sparse_unique_name=self._sparse_unique_name,
            act_type=self.act_type,
            act_alpha=self.act_alpha,
            act_beta=self.act_beta,
        )
        return out if post_bias is None else out.replace_feature(out.features + post_bias)


def _quant_class(cls: type) -> type:
    if cls not in _QUANT_CLASSES:
        _QUANT_CLASSES[cls] = type(f"Quant{cls.__name__}", (QuantSparseMixin, cls), {})
    return _QUANT_CLASSES[cls]


def quantize_sparse_conv(module: nn.Module, desc_input: QuantDescriptor, desc_weight: QuantDescriptor) -> None:
    """Attach quantizers to one spconv conv in place (class swap keeps its name and weights)."""
    missing = [a for a in ("_conv_forward", "act_type", "_sparse_unique_name") if not hasattr(module, a)]
    if missing:
        raise BevDeployError(
            f"spconv {type(module).__name__} lacks {missing}: this spconv version is not supported; install spconv 2.3.x"
        )
    if module.weight.shape[0] != module.out_channels:
        raise BevDeployError(
            f"spconv weight layout {tuple(module.weight.shape)} is not [out, k..., in]; install spconv 2.3.x"
        )
    module.__class__ = _quant_class(type(module))
    module._input_quantizer = TensorQuantizer(desc_input)
    module._weight_quantizer = TensorQuantizer(desc_weight)
