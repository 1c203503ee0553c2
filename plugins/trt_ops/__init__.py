"""bevdeploy's custom-op library: BEV operators that ONNX and TensorRT lack.

One folder per op: ``reference.py`` (plain PyTorch, the ground truth), ``op.py``
(``torch.ops.bevdeploy.<name>``: reference on CPU, Triton kernel on CUDA, autograd where models
train through it), ``symbolic.py`` (ONNX export to one node under the naming scheme chosen with
:func:`onnx_naming`, plus the ONNX Runtime and TensorRT bindings), ``kernels.py`` (GPU kernels).
The ``bevdeploy_register_ops`` hook below tells the rest of bevdeploy about them.
"""

from __future__ import annotations

import importlib

import bevdeploy
from bevdeploy.specs.registry import OpSpec

# importing the op folders registers torch.ops.bevdeploy.* and their ONNX symbolics, so that
# `import bevdeploy.plugins.trt_ops` is all a model needs before calling the ops
from . import (  # noqa: F401
    bev_pool_columns,
    bev_pool_v2,
    grid_sampler,
    inverse,
    modulated_deform_conv2d,
    ms_deform_attn,
    multi_head_attention,
    rotate,
    trt,
)
from .naming import SCHEMES, onnx_naming

# op folder -> (one-line description, GPU precisions)
_OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bev_pool_v2": ("BEVDet interval pooling of frustum features into the BEV grid", ("fp32", "fp16", "fp16x2", "int8")),
    "bev_pool_columns": ("bev_pool_v2's pooling by camera column (one matrix product per column)", ("fp32", "fp16", "fp16x2", "int8")),
    "ms_deform_attn": ("Multi-scale deformable attention (BEVFormer, Deformable DETR)", ("fp32", "fp16", "fp16x2", "int8")),
    "grid_sampler": ("Grid sampler 2D/3D: bilinear/nearest, zeros/border/reflection, align_corners", ("fp32", "fp16", "fp16x2", "int8")),
    "modulated_deform_conv2d": ("Modulated deformable convolution v2 (mmcv semantics)", ("fp32", "fp16", "fp16x2", "int8")),
    "rotate": ("Rotate a BEV map about a centre (BEVFormer prev_bev alignment)", ("fp32", "fp16", "fp16x2", "int8")),
    "inverse": ("Batched 4x4 matrix inverse (fp32 only, as in the anchors)", ("fp32",)),
    "multi_head_attention": ("Multi-head scaled dot-product attention (flash kernel on CUDA)", ("fp32", "fp16", "fp16x2", "int8")),
}


def _spec(folder: str, description: str, precisions: tuple[str, ...]) -> OpSpec:
    module = importlib.import_module(f"{__name__}.{folder}")
    return OpSpec(
        name=folder,
        description=description,
        reference=getattr(module, f"{folder}_reference"),
        precisions=precisions,
        onnx_names=getattr(module, "ONNX_NAMES", None) or module.NAMES.scheme_names(),
        ort_define=module.define_ort,
        trt_register=module.define_trt,
        trt_prepare=trt.fold_dequantize,  # binds the plugin namespace; folds Q/DQ into int8-capable plugins
    )


def op_specs() -> list[OpSpec]:
    """One OpSpec per op of this library."""
    return [_spec(folder, desc, precisions) for folder, (desc, precisions) in _OPS.items()]


@bevdeploy.hookimpl
def bevdeploy_register_ops() -> list[OpSpec]:
    """The custom ops of this library (imports them, which registers torch.ops.bevdeploy.*)."""
    return op_specs()


__all__ = ["SCHEMES", "bevdeploy_register_ops", "onnx_naming", "op_specs"]
