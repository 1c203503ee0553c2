"""A tiny synthetic nuScenes dataroot shared by the evaluation tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

SCENES, SAMPLES_PER_SCENE, SEED = 2, 4, 0
IMAGE_SIZE = (800, 450)  # half the nuScenes size: the pictures stay readable, generation is faster


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from bevdeploy.data.synth import DEFAULT_VERSION, generate

    out = tmp_path_factory.mktemp("eval-synth") / "nuscenes"
    root = generate(out, SCENES, SAMPLES_PER_SCENE, SEED, image_size=IMAGE_SIZE)
    return root, DEFAULT_VERSION


@pytest.fixture(scope="session")
def synth_all(synth_root: tuple[Path, str]):
    """Every scene of the tiny dataroot: small sets need both scenes to hold all 10 classes."""
    from bevdeploy.data.nuscenes import NuScenesDataset
    from bevdeploy.data.synth import ALL_SPLIT

    root, version = synth_root
    return NuScenesDataset(root, version, ALL_SPLIT, sweeps=1)
