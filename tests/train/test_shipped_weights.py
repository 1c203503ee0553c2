"""The weights each plugin ships as its demo checkpoint: the manifest describes the file beside
it (size, sha256, FP16 storage under 25 MB), says how it was trained, and the file loads strictly
into the model it names."""

from __future__ import annotations

import pytest
import torch
from bevdeploy.checkpoint import load_checkpoint
from bevdeploy.manager import registered_models
from bevdeploy.train import file_sha256, read_manifest
from safetensors.torch import load_file

SHIPPING = [name for name, spec in sorted(registered_models().items()) if spec.demo_checkpoint is not None]


def test_the_trainable_models_ship_weights():
    assert {"bevfusion", "bevdet"} <= set(SHIPPING)


@pytest.mark.parametrize("name", SHIPPING)
def test_manifest_matches_the_shipped_file(name):
    spec = registered_models()[name]
    path = spec.demo_checkpoint
    manifest = read_manifest(path)
    assert manifest["model"] == name and manifest["variant"] == spec.demo_variant
    assert manifest["weights"] == path.name
    assert manifest["size_bytes"] == path.stat().st_size < 25 * 2**20
    assert manifest["sha256"] == file_sha256(path)
    assert {t.dtype for t in load_file(str(path)).values() if t.is_floating_point()} == {torch.float16}
    assert manifest["command"] and manifest["data"]["generator"] and manifest["metrics_fp32"]["mAP"] > 0
    load_checkpoint(spec.build(spec.demo_variant), path)  # strict: every name and shape
