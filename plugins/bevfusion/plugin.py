"""The hook implementations of the BEVFusion plugin."""

from __future__ import annotations

from pathlib import Path

import bevdeploy
import torch
from bevdeploy.checkpoint import shipped_weights
from bevdeploy.graph import Artifact, DeployGraph, Engine, Subgraph
from bevdeploy.specs.registry import BackendSpec, ModelSpec
from bevdeploy.specs.run import RunSpec

from .config import VARIANTS

MODEL_NAME = "bevfusion"
SPCONV_EXPORTER = "spconv"
SPCONV_FORMAT = "spconv-onnx"


def _build(variant: str) -> torch.nn.Module:
    from .model import build

    return build(variant)


def _prepare(model, sample) -> dict[str, torch.Tensor]:
    from .prepare import prepare

    return prepare(model, sample)


def _loss(model, inputs, samples) -> dict[str, torch.Tensor]:
    from .loss import transfusion_loss

    return transfusion_loss(model, inputs, samples)


def _targets(model, sample):
    from .loss import sample_targets

    return sample_targets(model, sample)


@bevdeploy.hookimpl
def bevdeploy_register_models() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=MODEL_NAME,
            description="BEVFusion camera+LiDAR (mit-han-lab; TransFusion head), CUDA-BEVFusion partition",
            variants={name: cfg.description for name, cfg in VARIANTS.items()},
            demo_variant="tiny",
            demo_checkpoint=shipped_weights(__file__, "tiny"),
            build=_build,
            prepare=_prepare,
            modalities=("camera", "lidar"),
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


@bevdeploy.hookimpl
def bevdeploy_export(
    subgraph: Subgraph, precision: str, backend: BackendSpec, out_dir: Path, example_inputs: dict[str, torch.Tensor]
) -> Artifact | None:
    if subgraph.exporter != SPCONV_EXPORTER:
        return None
    from .spconv_export import export_spconv

    return export_spconv(subgraph, precision, backend.name, Path(out_dir), example_inputs)


@bevdeploy.hookimpl
def bevdeploy_build(artifact: Artifact, backend: BackendSpec, precision: str) -> Engine | None:
    if artifact.format != SPCONV_FORMAT:
        return None
    from .spconv_export import SpconvEngine

    return SpconvEngine(artifact, precision)
