"""The whole pipeline on the toy plugin over a small built-in dataset: every precision on the
onnxruntime and torch backends, artifact reuse, and every bad input of the issue."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from bevdeploy.cli import main

PIECES = ("backbone", "head")
pytestmark = pytest.mark.usefixtures("toy_plugin")


def _args(small_dataroot, out: Path, precision: str = "fp32", backend: str = "onnxruntime", *extra: str) -> list[str]:
    dataroot, version = small_dataroot
    return ["run", "--model", "toydet", "--precision", precision, "--backend", backend, "--data", str(dataroot),
            "--version", version, "--split", "synth_val", "--calib-split", "synth_calib", "--calib-batches", "2",
            "--out", str(out), *extra]


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _no_half_files(root: Path) -> None:
    assert not list(root.rglob(".staging-*")) and not list(root.rglob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_toy_pipeline_end_to_end(small_dataroot, tmp_path, capsys, precision, backend):
    out = tmp_path / "ws"
    code, stdout, stderr = _run(_args(small_dataroot, out, precision, backend, "--json"), capsys)
    assert code == 0, stderr
    rep = json.loads(stdout)
    assert json.loads((out / "report.json").read_text()) == rep
    assert (rep["model"], rep["variant"], rep["precision"], rep["backend"]) == ("toydet", "tiny", precision, backend)
    assert rep["device"].startswith(("cpu", "cuda"))
    assert set(rep["metrics"]) >= {"mAP", "NDS", "per_class", "tp_errors"} and len(rep["metrics"]["per_class"]) == 10
    assert 0.0 <= rep["metrics"]["NDS"] <= 1.0
    assert set(rep["latency_ms"]) == {"backbone", "pool", "head", "decode", "end_to_end"}
    assert all(v["p90"] >= v["p50"] > 0 for v in rep["latency_ms"].values())
    assert rep["fps"] > 0 and rep["memory_mb"] > 0 and rep["memory_what"]
    assert set(rep["size_mb"]) == {*PIECES, "total"} and rep["size_mb"]["total"] > 0
    assert set(rep["fidelity"]) == set(PIECES) and set(rep["artifacts"]) == set(PIECES)
    # the head's policy asks FP16 under int8; no CPU backend runs FP16 natively, so it is built at FP32 there (the
    # torch backend on a GPU runs it in FP16)
    head_int8 = "fp16" if backend == "torch" and torch.cuda.is_available() else "fp32"
    assert rep["piece_precisions"] == {"backbone": precision, "head": head_int8 if precision == "int8" else precision}
    assert (out / "report.md").read_text().startswith(f"# toydet (tiny) {precision} on {backend}")
    assert "inference 3/3" in stderr
    _no_half_files(out)
    # how each engine ran its piece, where the backend chooses: the torch backend on CUDA (CUDA graph, or eager
    # and why); nothing where there is no choice
    md = (out / "report.md").read_text()
    if backend == "torch" and torch.cuda.is_available():
        assert set(rep["execution"]) == set(PIECES)
        assert all(how.startswith(("CUDA graph", "eager: ")) for how in rep["execution"].values())
        assert f"Execution:\n- backbone: {rep['execution']['backbone']}" in md
    else:
        assert rep["execution"] == {} and "Execution:" not in md
    fid = rep["fidelity"]
    if precision == "fp32":
        assert all(f["cosine"] > 0.99999 and f["max_abs"] < 1e-3 for f in fid.values())
    else:
        assert all(f["cosine"] > 0.9 for f in fid.values()), fid
    if precision == "int8":
        assert "calibration: mse over 2 samples" in stderr
        table = json.loads((out / "calib.json").read_text())
        assert any(name.startswith("backbone.") for name in table) and not any(n.startswith("head.") for n in table)
    if backend == "onnxruntime":
        onnx_files = {p.name.split(".")[0]: p for p in (out / "onnx").glob("*.onnx")}
        assert set(onnx_files) == set(PIECES) and rep["artifacts"]["backbone"] == str(onnx_files["backbone"])
        ops = {n.op_type for n in onnx.load(str(onnx_files["backbone"])).graph.node}
        assert ("QuantizeLinear" in ops) == (precision == "int8")
        if precision == "fp16":
            assert any("upcast" in n for n in rep["not_honoured"])
    elif precision == "int8":
        assert any("backbone: int8 simulated with fake-quant" in n for n in rep["not_honoured"])
    elif precision == "fp16" and not torch.cuda.is_available():
        assert any("fp16 not executed by torch on the CPU" in n for n in rep["not_honoured"])


@pytest.mark.slow
def test_artifacts_are_reused_unless_forced(small_dataroot, tmp_path, capsys):
    out = tmp_path / "ws"
    assert _run(_args(small_dataroot, out, "int8"), capsys)[0] == 0
    onnx_file = next((out / "onnx").glob("backbone*.onnx"))
    stamp = onnx_file.stat().st_mtime_ns
    code, stdout, _ = _run(_args(small_dataroot, out, "int8"), capsys)
    assert code == 0 and onnx_file.stat().st_mtime_ns == stamp
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert "calibration reused from calib.json" in notes
    assert "reused exported pieces from the workspace: backbone, head" in notes
    onnx_file.write_bytes(onnx_file.read_bytes()[:100])  # a damaged artifact is never trusted
    assert _run(_args(small_dataroot, out, "int8"), capsys)[0] == 0
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert "reused exported pieces from the workspace: head" in notes
    onnx.checker.check_model(str(onnx_file))
    assert _run(_args(small_dataroot, out, "int8", "onnxruntime", "--force"), capsys)[0] == 0
    notes = json.loads((out / "report.json").read_text())["notes"]
    assert not any("reused" in n for n in notes)


def _refused(argv: list[str], capsys, out: Path, *expected: str) -> str:
    code, stdout, stderr = _run(argv, capsys)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("bevdeploy: error: ") and "Traceback" not in stderr, stderr
    for text in expected:
        assert text in lines[-1], lines[-1]
    assert not out.exists(), "a refused run must not leave a workspace"
    return lines[-1]


@pytest.mark.slow
def test_bad_names_are_one_line_errors(small_dataroot, tmp_path, capsys):
    out = tmp_path / "ws"
    _refused(["run", "--model", "nosuch", "--out", str(out)], capsys, out, "unknown model 'nosuch'", "toydet")
    args = _args(small_dataroot, out)
    _refused([*args, "--variant", "huge"], capsys, out, "unknown variant 'huge' of toydet", "tiny, wide")
    bad_precision = [a if a != "fp32" else "int4" for a in args]
    _refused(bad_precision, capsys, out, "unknown precision 'int4'", "fp32, fp16, int8, int8-fp32")
    _refused([*args, "--backend", "tvm"], capsys, out, "unknown backend 'tvm'", "onnxruntime, tensorrt, torch")
    from bevdeploy.backends.tensorrt import is_available

    if not is_available()[0]:
        _refused([*args, "--backend", "tensorrt"], capsys, out, "backend 'tensorrt' is not usable here")


@pytest.mark.slow
def test_bad_checkpoints_and_small_calibration_split(small_dataroot, tmp_path, capsys):
    out = tmp_path / "ws"
    args = _args(small_dataroot, out, "int8")
    _refused([*args, "--checkpoint", str(tmp_path / "missing.pth")], capsys, out, "does not exist")
    junk = tmp_path / "junk.pth"
    junk.write_text("not weights")
    _refused([*args, "--checkpoint", str(junk)], capsys, out, "is not a checkpoint")
    wrong = tmp_path / "wrong.pth"
    torch.save({"backbone.conv1.weight": torch.zeros(8, 2, 3, 3), "stray.bias": torch.zeros(3)}, wrong)
    _refused([*args, "--checkpoint", str(wrong)], capsys, out, "missing: backbone.bn1.weight", "1 unexpected: stray.bias")
    _refused([*args, "--calib-batches", "50"], capsys, out, "has 3 samples but 50 calibration batches were asked")


@pytest.mark.slow
def test_compare_prints_ratios_against_fp32(small_dataroot, tmp_path, capsys):
    dataroot, version = small_dataroot
    out = tmp_path / "cmp"
    argv = ["compare", "--models", "toydet", "--precisions", "fp32,int8", "--data", str(dataroot), "--version",
            version, "--split", "synth_val", "--calib-split", "synth_calib", "--calib-batches", "2", "--out", str(out)]
    code, stdout, stderr = _run(argv, capsys)
    assert code == 0, stderr
    rows = [line for line in stdout.splitlines() if line.startswith("| toydet ")]
    assert len(rows) == 2 and "| fp32 | onnxruntime |" in rows[0] and "| 1.00x | 1.00x | +0.0000 |" in rows[0]
    assert "| int8 | onnxruntime |" in rows[1]
    assert (out / "compare.md").read_text() in stdout
    reports = json.loads((out / "compare.json").read_text())
    assert [r["precision"] for r in reports] == ["fp32", "int8"]
    assert (out / "toydet-int8" / "calib.json").exists()


@pytest.mark.slow
def test_keep_fp_option_disables_the_matching_quantizers(small_dataroot, tmp_path, capsys):
    """`--keep-fp GLOB` reaches the quantization spec: with every module kept, the int8 run's
    backbone graph has no Q/DQ and is as faithful to FP32 as the FP32 export itself."""
    out = tmp_path / "kept"
    code, stdout, stderr = _run(_args(small_dataroot, out, "int8", "onnxruntime", "--json", "--keep-fp", "*"), capsys)
    assert code == 0, stderr
    rep = json.loads(stdout)
    assert rep["fidelity"]["backbone"]["cosine"] > 0.99999 and rep["fidelity"]["backbone"]["max_abs"] < 1e-3
    graphs = list((out / "onnx").glob("backbone.int8*.onnx"))
    assert graphs and not {n.op_type for g in graphs for n in onnx.load(str(g)).graph.node} & {"QuantizeLinear"}
