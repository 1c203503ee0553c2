"""`bevdeploy run --model bevdet` on the tiny variant: every precision on onnxruntime and torch,
end to end through the CLI on the session's small dataset, same report fields as BEVFusion."""

from __future__ import annotations

import json

import onnx
import pytest
from bevdeploy.cli import main

PIECES = {"image.encoder", "bev.head"}
OPS = {"camera.geometry", "bevpool", "decode"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("bevdet-runs")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_bevdet_tiny_end_to_end(small_dataroot, runs, capsys, precision, backend):
    dataroot, version = small_dataroot
    out = runs / f"{precision}-{backend}"
    argv = ["run", "--model", "bevdet", "--precision", precision, "--backend", backend, "--data", str(dataroot),
            "--version", version, "--split", "synth_val", "--calib-split", "synth_calib", "--calib-batches", "2",
            "--max-samples", "2", "--out", str(out), "--json"]
    code = main(argv)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    rep = json.loads(cap.out)
    assert (rep["model"], rep["variant"], rep["precision"], rep["backend"]) == ("bevdet", "tiny", precision, backend)
    assert set(rep["fidelity"]) == PIECES and set(rep["artifacts"]) == PIECES
    assert set(rep["latency_ms"]) == PIECES | OPS | {"end_to_end"}
    assert rep["fps"] > 0 and rep["size_mb"]["total"] > 0 and rep["memory_mb"] > 0
    assert rep["dataset"]["samples"] == 2 and len(rep["metrics"]["per_class"]) == 10
    floor = 0.9999 if precision == "fp32" else 0.98
    for piece in PIECES:
        assert rep["fidelity"][piece]["cosine"] > floor, (piece, rep["fidelity"][piece])
    if precision == "int8":
        assert (out / "calib.json").exists()
    if backend == "onnxruntime":
        for piece in PIECES:
            path = rep["artifacts"][piece]
            onnx.checker.check_model(path)
            has_qdq = any(n.op_type == "QuantizeLinear" for n in onnx.load(path).graph.node)
            assert has_qdq == (rep["piece_precisions"][piece] == "int8"), piece
