"""The hook implementations of the BEVDet plugin (registration and partition; the quantization
rules are in :mod:`.quant`)."""

from __future__ import annotations

from pathlib import Path

import bevdeploy
import torch
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


WEIGHTS_DIR = Path(__file__).parent / "weights"


def _demo_weights(variant: str) -> Path | None:
    """The shipped weights of ``variant`` (``weights/<variant>.safetensors``, trained by
    ``bevdeploy train``; see the ``.json`` manifest beside it), if shipped."""
    path = WEIGHTS_DIR / f"{variant}.safetensors"
    return path if path.is_file() else None


@bevdeploy.hookimpl
def bevdeploy_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=MODEL_NAME,
            description="BEVDet camera-only (HuangJunJie2017; LSS + bev_pool_v2, CenterPoint head)",
            variants={name: cfg.description for name, cfg in VARIANTS.items()},
            demo_variant="tiny",
            demo_checkpoint=_demo_weights("tiny"),
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
