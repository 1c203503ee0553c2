"""Shared fixtures: a throwaway third-party plugin package (real entry point) and a small
built-in nuScenes-format dataset generated once per session."""

from __future__ import annotations

import json
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


@pytest.fixture
def tiny_run(small_dataroot, capsys):
    """``run(model, precision, backend, out, pieces, ops)``: ``bevdeploy run`` of the model's tiny variant through
    the CLI on the small dataset (calibration on its calib split, two samples), asserting the report's shared
    contract (identity, one fidelity and artifact per piece, a latency per piece and op and end to end, speed, size,
    memory, every class scored); returns the report."""
    from bevdeploy.cli import main

    dataroot, version = small_dataroot

    def run(model: str, precision: str, backend: str, out: Path, pieces: set, ops: set) -> dict:
        argv = ["run", "--model", model, "--precision", precision, "--backend", backend, "--data", str(dataroot),
                "--version", version, "--split", "synth_val", "--calib-split", "synth_calib", "--calib-batches", "2",
                "--max-samples", "2", "--out", str(out), "--json"]
        code = main(argv)
        cap = capsys.readouterr()
        assert code == 0, cap.err
        rep = json.loads(cap.out)
        assert (rep["model"], rep["variant"], rep["precision"], rep["backend"]) == (model, "tiny", precision, backend)
        assert set(rep["fidelity"]) == pieces and set(rep["artifacts"]) == pieces
        assert set(rep["latency_ms"]) == pieces | ops | {"end_to_end"}
        assert rep["fps"] > 0 and rep["size_mb"]["total"] > 0 and rep["memory_mb"] > 0
        assert rep["dataset"]["samples"] == 2 and len(rep["metrics"]["per_class"]) == 10
        return rep

    return run
