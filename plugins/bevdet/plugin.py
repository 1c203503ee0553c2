"""The hook implementations of the BEVDet plugin (registration and partition; the quantization
rules are in :mod:`.quant`)."""

from __future__ import annotations

import bevdeploy
import torch
from bevdeploy.checkpoint import shipped_weights
from bevdeploy.graph import DeployGraph
from bevdeploy.specs.registry import ModelSpec
from bevdeploy.specs.run import RunSpec

from .config import VARIANTS

MODEL_NAME = "bevdet"


def _build(variant: str) -> torch.nn.Module:
    from .model import build

    return build(variant)


def _loss(model, inputs, samples) -> dict[str, torch.Tensor]:
    from .loss import centerpoint_loss

    return centerpoint_loss(model, inputs, samples)


def _targets(model, sample):
    from .loss import sample_targets

    return sample_targets(model, sample)


def _prepare(model, sample) -> dict[str, torch.Tensor]:
    from .prepare import prepare

    return prepare(model, sample)


@bevdeploy.hookimpl
def bevdeploy_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=MODEL_NAME,
            description="BEVDet camera-only (HuangJunJie2017; LSS + bev_pool_v2, CenterPoint head)",
            variants={name: cfg.description for name, cfg in VARIANTS.items()},
            demo_variant="tiny",
            demo_checkpoint=shipped_weights(__file__, "tiny"),
            build=_build,
            prepare=_prepare,
            modalities=("camera",),
            loss=_loss,
            targets=_targets,
        )
    ]


@bevdeploy.hookimpl
def bevdeploy_partition(model: torch.nn.Module, spec: RunSpec) -> DeployGraph | None:
    if spec.model != MODEL_NAME:
        return None
    from .partition import partition

    return partition(model, spec.variant or model.cfg.name)
