"""Shared fixtures: a throwaway third-party plugin package (real entry point) and a small
built-in nuScenes-format dataset generated once per session."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from plugin_packages import make_plugin_package

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    """Put Triton in interpreter mode before any test module is imported (tests/trt_ops/triton_interpreter.py).

    Triton reads TRITON_INTERPRET once, when first imported. Without this, one module-level ``import triton``
    collected before tests/trt_ops (tests/gpu sorts first) made every interpreter module of the run skip, and the
    run still passed, with some 390 fewer tests. Nothing changes where a CUDA device is present."""
    sys.path.insert(0, str(HERE / "trt_ops"))
    import triton_interpreter

    triton_interpreter.reason()


@pytest.fixture(scope="session")
def toy_plugin(tmp_path_factory: pytest.TempPathFactory):
    """The toy detector installed as package ``bevdeploy-toy`` with entry point ``toydet``; the
    process-wide plugin manager is rebuilt so every command sees it."""
    from bevdeploy.manager import get_plugin_manager

    root = make_plugin_package(
        tmp_path_factory.mktemp("site"), "bevdeploy_toy", "bevdeploy_toy",
        (HERE / "core" / "toy_detector.py").read_text(), "toydet",
    )
    sys.path.insert(0, str(root))
    get_plugin_manager.cache_clear()
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("bevdeploy_toy", None)
    get_plugin_manager.cache_clear()


@pytest.fixture(scope="session")
def small_dataroot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 2-scene x 3-sample built-in dataset (generated once per session)."""
    from bevdeploy.data.builtin import builtin_dataroot

    cache = tmp_path_factory.mktemp("bevdeploy-cache")
    dataroot, version = builtin_dataroot(cache_dir=cache, scenes=2, samples_per_scene=3)
    return Path(dataroot), version


@pytest.fixture
def clean_dir(tmp_path: Path):
    """A folder removed after the test (workspaces can hold large ONNX files)."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
