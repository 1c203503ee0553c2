"""What plugins register through the ``bevdeploy_register_*`` hooks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Registered(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


class ModelSpec(_Registered):
    """A model family a plugin provides."""

    name: str = Field(description="Model name used with --model, e.g. 'bevfusion'.")
    description: str = Field(description="One line shown by `bevdeploy models`.")
    variants: dict[str, str] = Field(description="Variant name -> one-line description.")
    demo_variant: str = Field(description="Variant used by the built-in demo (no --checkpoint).")
    demo_checkpoint: Path | None = Field(
        default=None, description="Shipped weights for the demo variant (safetensors), if any."
    )
    build: Callable[[str], Any] = Field(
        description="variant -> FP32 torch.nn.Module in eval mode. If the module has a method "
        "convert_checkpoint(state_dict) -> state_dict, checkpoints pass through it before the strict load "
        "(for official checkpoints in another layout)."
    )
    prepare: Callable[[Any, Any], dict[str, Any]] = Field(
        description="(model, Sample) -> model inputs by name (tensors, batch 1), as the DeployGraph expects."
    )
    modalities: tuple[str, ...] = Field(default=("camera",), description="Sensors used: camera, lidar.")
    loss: Callable[[Any, list[dict[str, Any]], list[Any]], dict[str, Any]] | None = Field(
        default=None,
        description="Training loss, used by `bevdeploy train`: (model in train mode, inputs, samples) -> named "
        "scalar loss terms (tensors; the trainer minimises their sum and logs each). ``inputs`` is a list of "
        "``prepare(model, sample)`` dicts (batch 1 each, on the training device) and ``samples`` the matching "
        "Samples after augmentation, whose gt_boxes/gt_velocity/gt_labels are the targets; the plugin may batch "
        "them internally. Augmentation reaches the model through the Sample: global LiDAR-frame rotation/scale/"
        "flip is already applied to points, boxes, velocities and every LiDAR-frame camera matrix "
        "(bevdeploy.data.augment.global_transform; the 4x4 applied is in sample.extra['lidar_aug']), and image "
        "augmentation is requested in sample.extra['img_aug'] = {'resize': float factor on the model's test-time image scale (1.0 = test-time), "
        "'crop_frac': (fx, fy) position of the input-size window inside the resized image as fractions of the "
        "free margin (0 left/top, 1 right/bottom; the test-time crop is (0.5, 1)), 'flip': bool horizontal flip}, which "
        "``prepare`` must honour (apply to the pixels and fold into the image-augmentation matrix it returns) "
        "instead of its test-time resize/crop. None: the model cannot be trained.",
    )
    targets: Callable[[Any, Any], Any] | None = Field(
        default=None,
        description="Optional per-sample loss targets: (model, augmented Sample) -> anything picklable (e.g. "
        "heatmaps drawn box by box). `bevdeploy train` calls it in its DataLoader workers, next to ``prepare``, and "
        "hands the result to ``loss`` as sample.extra['targets'] (bevdeploy.data.augment.TARGETS_KEY), so "
        "per-box Python work stays off the training process. ``loss`` should compute them itself when absent.",
    )
    plugin: str = Field(default="", description="Filled in by the registry: the plugin that registered it.")


class OpSpec(_Registered):
    """A custom operator."""

    name: str = Field(description="Op name, e.g. 'bev_pool_v2' (torch.ops.bevdeploy.<name>).")
    description: str = Field(default="", description="One line shown by `bevdeploy ops`.")
    reference: Callable[..., Any] = Field(description="Plain PyTorch reference implementation.")
    precisions: tuple[str, ...] = Field(
        default=("fp32", "fp16", "fp16x2", "int8"), description="Kernel variants available on the GPU."
    )
    onnx_names: dict[str, str] = Field(
        default_factory=dict, description="Naming scheme -> 'domain::OpType' of the exported node."
    )
    ort_define: Callable[[], None] | None = Field(
        default=None,
        description="Defines the op's ONNX Runtime (onnxruntime-extensions) implementation; the onnxruntime "
        "backend calls it for every registered op before it registers the custom-op library on a session.",
    )
    trt_register: Callable[[], None] | None = Field(
        default=None, description="Registers the op's TensorRT plugin; called by the tensorrt backend before parsing."
    )
    trt_prepare: Callable[[Any], tuple[Any, int]] | None = Field(
        default=None,
        description="ONNX rewrite the tensorrt backend applies before parsing (onnx.ModelProto -> (model, number of "
        "nodes changed)), e.g. handing an int8-capable plugin the int8 tensor of a Q/DQ pair. Ops sharing one "
        "callable have it applied once.",
    )
    plugin: str = Field(default="")


class BackendSpec(_Registered):
    """An inference backend."""

    name: str = Field(description="Backend name used with --backend.")
    description: str = Field(default="")
    device: str = Field(default="cpu", description="'cpu' or 'cuda'.")
    qdq_flavour: str = Field(
        description="How INT8 is exported for it: 'trt' (Q/DQ on inputs + weights), 'ort' (QDQ U8S8, "
        "outputs quantized), or 'torch' (no export, fake-quant module)."
    )
    native_precisions: tuple[str, ...] = Field(
        description="Precisions it really executes; others are run as the nearest one and reported."
    )
    is_available: Callable[[], tuple[bool, str]] = Field(description="() -> (available, reason if not).")
    build: Callable[[Any, str], Any] = Field(description="(Artifact, precision) -> Engine.")
    plugin: str = Field(default="")
