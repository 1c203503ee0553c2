"""A small built-in dataset (2 scenes x 3 samples, full 1600x900 images) generated once per
session through the same path users take (builtin_dataroot, two worker processes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SCENES, SAMPLES, SEED = 2, 3, 0


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from bevdeploy.data.builtin import builtin_dataroot

    return builtin_dataroot(cache_dir=tmp_path_factory.mktemp("cache"), scenes=SCENES, samples_per_scene=SAMPLES,
                            seed=SEED)


@pytest.fixture(scope="session")
def nusc(synth: tuple[Path, str]):
    from nuscenes import NuScenes

    root, version = synth
    return NuScenes(version=version, dataroot=str(root), verbose=False)


@pytest.fixture
def tables_copy(synth: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A dataroot holding a copy of the tables only (sensor files are not read at load), for
    tests that damage it."""
    root, version = synth
    shutil.copytree(root / version, tmp_path / "root" / version)
    shutil.copytree(root / "maps", tmp_path / "root" / "maps")
    return tmp_path / "root", version
