"""`bevdeploy run --model bevdet` on the tiny variant: every precision on onnxruntime and torch,
end to end through the CLI on the session's small dataset, same report fields as BEVFusion."""

from __future__ import annotations

import onnx
import pytest

PIECES = {"image.encoder", "bev.head"}
OPS = {"camera.geometry", "bevpool", "decode"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("bevdet-runs")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_bevdet_tiny_end_to_end(tiny_run, runs, precision, backend):
    out = runs / f"{precision}-{backend}"
    rep = tiny_run("bevdet", precision, backend, out, PIECES, OPS)
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
