"""The headline command on the tiny BEVFusion: every precision on onnxruntime and torch, end to
end through the CLI on a small built-in dataset (one dataset, one workspace root for all)."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from bevdeploy.cli import main

PIECES = {"camera.backbone", "camera.vtransform", "lidar.backbone", "fuser", "head.bbox"}
OPS = {"camera.geometry", "bevpool", "lidar.voxelize", "decode"}
# BEVFusion's policy keeps vtransform and head in FP16 under int8; neither CPU backend runs FP16
# natively, so they are built at FP32 there (and the report's not_honoured says so)
POLICY = {"int8": {"camera.backbone": "int8", "camera.vtransform": "fp32", "lidar.backbone": "int8",
                   "fuser": "int8", "head.bbox": "fp32"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("bevfusion-runs")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_bevfusion_tiny_end_to_end(tiny_run, runs, precision, backend):
    if backend == "torch" and torch.cuda.is_available():
        pytest.skip("the torch backend runs on the GPU here, where FP16 is native: tests/gpu/test_pipeline_gpu.py")
    out = runs / f"{precision}-{backend}"
    rep = tiny_run("bevfusion", precision, backend, out, PIECES, OPS)
    expected = POLICY.get(precision, dict.fromkeys(PIECES, precision))
    assert rep["piece_precisions"] == expected
    if precision == "int8":
        kept = [n for n in rep["not_honoured"] if "(piece policy) is not native" in n]
        assert sorted(n.split(":")[0] for n in kept) == ["camera.vtransform", "head.bbox"]
    dense = ("camera.backbone", "camera.vtransform", "fuser")
    floor = 0.9999 if precision == "fp32" else 0.98
    for piece in dense:
        assert rep["fidelity"][piece]["cosine"] > floor, (piece, rep["fidelity"][piece])
    assert (out / "report.md").exists() and (out / "onnx").is_dir()
    assert any(p.name.startswith("lidar.backbone") for p in (out / "onnx").iterdir())  # libspconv-format ONNX
    if precision == "int8":
        assert (out / "calib.json").exists()
    if backend == "onnxruntime":
        for piece in dense:
            path = rep["artifacts"][piece]
            onnx.checker.check_model(path)
            has_qdq = any(n.op_type == "QuantizeLinear" for n in onnx.load(path).graph.node)
            assert has_qdq == (expected[piece] == "int8"), piece


@pytest.mark.slow
def test_bevfusion_rerun_reuses_its_pieces(small_dataroot, tmp_path, capsys):
    """The same command twice in one workspace: the second run reuses every exported piece, the libspconv one
    included (whose engine runs the sparse module, not the file), and reports the same detections' metrics."""
    dataroot, version = small_dataroot
    argv = ["run", "--model", "bevfusion", "--precision", "fp32", "--data", str(dataroot), "--version", version,
            "--split", "synth_val", "--max-samples", "2", "--out", str(tmp_path / "ws"), "--json"]
    reports = []
    for _ in range(2):
        code = main(argv)
        cap = capsys.readouterr()
        assert code == 0, cap.err
        reports.append(json.loads(cap.out))
    first, second = reports
    reused = [n for n in second["notes"] if n.startswith("reused exported pieces from the workspace: ")]
    assert len(reused) == 1 and set(reused[0].split(": ", 1)[1].split(", ")) == PIECES
    assert not any(n.startswith("reused exported pieces") for n in first["notes"])
    assert second["metrics"] == first["metrics"] and second["size_mb"] == first["size_mb"]
