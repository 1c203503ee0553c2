"""Backends: resolution errors, ONNX Runtime and torch engines on real exported graphs, and the
TensorRT pieces that do not need the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from bevdeploy import BackendUnavailable, BevDeployError
from bevdeploy.backends import onnxruntime as ortb
from bevdeploy.backends import resolve_backend
from bevdeploy.backends import tensorrt as trtb
from bevdeploy.backends import torch as torchb
from bevdeploy.cli import main
from bevdeploy.graph import Artifact
from bevdeploy.manager import registered_backends
from onnx import TensorProto, helper

TRT_OK, TRT_REASON = trtb.is_available()


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.relu(), y.mean(dim=(2, 3))


def _export(tmp_path: Path, half: bool = False) -> tuple[Path, Net]:
    net = Net().eval()
    path = tmp_path / ("net16.onnx" if half else "net.onnx")
    module = net.half() if half else net
    x = torch.randn(1, 3, 8, 8, dtype=torch.float16 if half else torch.float32)
    torch.onnx.export(module, (x,), str(path), input_names=["img"], output_names=["feat", "pooled"], dynamo=False)
    return path, Net().eval()


def _artifact(path: Path | None, fmt: str = "onnx", module=None) -> Artifact:
    return Artifact("net", "fp32", "x", fmt, ["img"], ["feat", "pooled"], path=path, module=module)


def test_unknown_and_unavailable_backends_are_refused_in_one_line():
    backends = registered_backends()
    with pytest.raises(BevDeployError, match=r"unknown backend 'tvm'; known backends: onnxruntime, tensorrt, torch") as e:
        resolve_backend("tvm", backends)
    assert "\n" not in str(e.value)
    if not TRT_OK:
        with pytest.raises(BackendUnavailable, match="tensorrt cannot be imported|needs a CUDA GPU"):
            resolve_backend("tensorrt", backends)


def test_backends_command_reports_availability(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime [bevdeploy.backends] cpu, int8 as 'ort'" in out and ": available" in out
    if not TRT_OK:
        assert f"tensorrt [bevdeploy.backends] cuda, int8 as 'trt', runs fp32/fp16/int8/int8-fp32: unavailable: {TRT_REASON}" in out


def test_onnxruntime_engine_matches_torch(tmp_path):
    path, net = _export(tmp_path)
    engine = ortb.build(_artifact(path), "fp32")
    x = torch.randn(1, 3, 8, 8)
    out = engine.infer({"img": x, "unused": torch.zeros(1)})
    ref = net(x)
    assert torch.allclose(out["feat"], ref[0], atol=1e-5) and torch.allclose(out["pooled"], ref[1], atol=1e-5)
    assert engine.notes == [] and engine.size_bytes == path.stat().st_size
    with pytest.raises(ValueError, match="missing inputs"):
        engine.infer({})


def test_onnxruntime_says_fp16_is_upcast(tmp_path):
    path, _ = _export(tmp_path, half=True)
    engine = ortb.build(_artifact(path), "fp16")
    assert "fp16 upcast to fp32 at load by ONNX Runtime CPU" in engine.notes
    out = engine.infer({"img": torch.randn(1, 3, 8, 8)})  # fp32 in, fp16 graph: cast at the boundary
    assert out["feat"].dtype == torch.float32


def test_onnxruntime_refuses_a_graph_with_an_op_no_plugin_defines(tmp_path):
    node = helper.make_node("NoSuchOp", ["img"], ["feat"], domain="nobody.ops")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("feat", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("nobody.ops", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    assert ortb.custom_domains(str(path)) == {"nobody.ops"}
    with pytest.raises(BevDeployError, match="ONNX Runtime cannot load .*custom ops \\['nobody.ops'\\]"):
        ortb.build(Artifact("c", "fp32", "onnxruntime", "onnx", ["img"], ["feat"], path=path), "fp32")


def test_onnxruntime_refuses_non_onnx_artifacts():
    with pytest.raises(BevDeployError, match="onnxruntime cannot run"):
        ortb.build(_artifact(None, "torch", Net()), "fp32")


def test_torch_engine_runs_the_module_and_is_honest_about_precision():
    net = Net().eval()
    x = torch.randn(1, 3, 8, 8)
    fp32 = torchb.build(_artifact(None, "torch", net), "fp32")
    gpu = {"atol": 1e-5} if torch.cuda.is_available() else {}  # cuDNN's conv differs in the last bits there
    assert torch.allclose(fp32.infer({"img": x})["feat"].cpu(), net(x)[0], **gpu)
    fp16 = torchb.build(_artifact(None, "torch", net), "fp16")
    if not torch.cuda.is_available():
        assert fp16.notes == ["fp16 not executed by torch on the CPU: this piece ran in fp32"]
    int8 = torchb.build(_artifact(None, "torch", net), "int8")
    assert int8.notes == ["int8 asked but this piece has no quantizers: it ran in fp32"]


def test_tensorrt_static_pieces_work_without_the_runtime(tmp_path):
    path, _ = _export(tmp_path)
    assert not trtb.has_qdq(path)
    assert trtb.static_problems(path) == []
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("z", TensorProto.INT8, [], [0])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [scale, zero])
    qpath = tmp_path / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(qpath))
    assert trtb.has_qdq(qpath)


@pytest.mark.skipif(TRT_OK, reason="checks the refusal where TensorRT is missing")
def test_tensorrt_build_is_refused_with_the_reason(tmp_path):
    path, _ = _export(tmp_path)
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        trtb.build(_artifact(path), "fp32")


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT runtime not usable here: {TRT_REASON}")
def test_tensorrt_engine_matches_torch(tmp_path):
    path, net = _export(tmp_path)
    art = _artifact(path)
    art.meta["engine_dir"] = str(tmp_path / "engines")
    engine = trtb.build(art, "fp32")
    x = torch.randn(1, 3, 8, 8)
    out = engine.infer({"img": x.cuda()})
    assert np.allclose(out["feat"].cpu().numpy(), net(x)[0].detach().numpy(), atol=1e-3)
    assert (tmp_path / "engines" / "net.plan").stat().st_size == engine.size_bytes > 0


def test_onnxruntime_runs_a_registered_custom_op(tmp_path):
    """A graph with a node of a registered op (trt_ops' Inverse, our domain) runs through the
    ops' ONNX Runtime definitions and onnxruntime-extensions."""
    from bevdeploy.manager import registered_ops

    ops = registered_ops()
    if "inverse" not in ops:
        pytest.skip("trt_ops' inverse op is not registered")
    domain, op_type = ops["inverse"].onnx_names["bevdeploy"].split("::")
    node = helper.make_node(op_type, ["m"], ["inv"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("m", TensorProto.FLOAT, [3, 4, 4])],
                              [helper.make_tensor_value_info("inv", TensorProto.FLOAT, [3, 4, 4])])
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)])
    path = tmp_path / "inverse.onnx"
    onnx.save(model, str(path))
    engine = ortb.build(Artifact("inv", "fp32", "onnxruntime", "onnx", ["m"], ["inv"], path=path), "fp32")
    m = torch.eye(4).repeat(3, 1, 1) + 0.1 * torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(engine.infer({"m": m})["inv"], torch.linalg.inv(m), atol=1e-5)
    assert any("onnxruntime-extensions" in n for n in engine.notes)
