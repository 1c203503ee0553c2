"""The torch backend's CUDA-graph replay (bevdeploy.backends.torch.GraphedModule) on a real GPU: the same
outputs as eager calls, outputs that survive the next call, and the fall-backs to eager execution (a piece that
synchronises with the host, a capture that fails half-way, input shapes that keep changing, graphs turned off)."""

from __future__ import annotations

import copy

import pytest
import torch
from bevdeploy.backends import torch as torchb
from bevdeploy.graph import Artifact

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 8, 3, padding=1),
        )

    def forward(self, x, scale):
        y = self.body(x) * scale
        return y, y.flatten(1).softmax(-1).amax(-1)


class Syncs(torch.nn.Module):
    """Keeps the positive entries: nonzero's output size depends on the data, so it waits for the GPU."""

    def forward(self, x):
        return x[x > 0].sum().reshape(1) + x.mean()


class FailsInCapture(torch.nn.Module):
    """Runs eagerly, but breaks off a capture half-way (after kernels were recorded)."""

    def forward(self, x):
        y = x * 2
        if torch.cuda.is_current_stream_capturing():
            raise RuntimeError("not capturable here")
        return y + 1


def _engine(module: torch.nn.Module, inputs: list[str], outputs: list[str], precision: str = "fp32"):
    art = Artifact("piece", precision, "torch", "torch", inputs, outputs, module=module.eval())
    return torchb.build(art, precision)


def _inputs(seed: int, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(1, 3, size, size, generator=g).cuda(), "scale": torch.rand(1, generator=g).cuda() + 0.5}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_replay_matches_eager_and_outputs_outlive_the_next_call(precision, monkeypatch):
    graphed = _engine(ConvNet(), ["x", "scale"], ["feat", "peak"], precision)
    monkeypatch.setenv("BEVDEPLOY_CUDA_GRAPHS", "0")
    eager = _engine(ConvNet(), ["x", "scale"], ["feat", "peak"], precision)
    assert graphed.graphed is not None and eager.graphed is None
    assert eager.execution == "eager: CUDA graphs turned off (BEVDEPLOY_CUDA_GRAPHS=0)"
    first = graphed.infer(_inputs(1))
    kept = {k: v.clone() for k, v in first.items()}
    for seed in (1, 2, 3):
        got, want = graphed.infer(_inputs(seed)), eager.infer(_inputs(seed))
        for name in ("feat", "peak"):
            assert got[name].dtype == torch.float32 and got[name].abs().sum() > 0
            assert torch.equal(got[name], want[name]), (seed, name)
    assert graphed.execution == "CUDA graph (1 input signature)"
    for name in kept:  # later replays wrote the graph's own outputs, not what an earlier call returned
        assert torch.equal(first[name], kept[name])


def test_a_piece_that_synchronises_runs_eagerly_and_says_why():
    engine = _engine(Syncs(), ["x"], ["y"])
    x = torch.randn(4096, device="cuda")
    for _ in range(2):
        out = engine.infer({"x": x})["y"]
        assert torch.allclose(out, x[x > 0].sum().reshape(1) + x.mean())
    assert engine.execution.startswith("eager: the piece synchronises with the host")
    assert engine.graphed.captures == {}


def test_a_capture_that_fails_half_way_leaves_the_stream_usable():
    stream = torch.cuda.current_stream()
    engine = _engine(FailsInCapture(), ["x"], ["y"])
    x = torch.arange(8.0, device="cuda")
    out = engine.infer({"x": x})["y"]
    assert torch.equal(out, x * 2 + 1)
    assert engine.execution == "eager: capture failed (RuntimeError: not capturable here)"
    assert torch.cuda.current_stream() == stream and not torch.cuda.is_current_stream_capturing()
    assert torch.equal(engine.infer({"x": x + 1})["y"], (x + 1) * 2 + 1)
    torch.cuda.synchronize()


class WithCount(torch.nn.Module):
    """Returns a Python number beside its tensor: a graph can only replay tensors that live on the GPU."""

    def forward(self, x):
        return x * 2, 3


def test_a_piece_with_an_output_off_the_gpu_runs_eagerly():
    engine = _engine(WithCount(), ["x"], ["y", "n"])
    x = torch.arange(4.0, device="cuda")
    for _ in range(2):
        out = engine.infer({"x": x})
        assert torch.equal(out["y"], x * 2) and out["n"] == 3
    assert engine.execution == "eager: an output is not a CUDA tensor"


def test_each_input_signature_gets_its_graph_until_shapes_keep_changing():
    module = ConvNet().cuda().eval()
    graphed = torchb.GraphedModule(module, max_signatures=2)
    with torch.inference_mode():
        for size in (16, 24, 16, 24):
            inp = _inputs(size, size)
            got = graphed(inp["x"], inp["scale"])
            assert torch.equal(got[0], module(inp["x"], inp["scale"])[0])
        assert graphed.execution == "CUDA graph (2 input signatures)"
        inp = _inputs(7, 40)
        got = graphed(inp["x"], inp["scale"])
        assert torch.equal(got[0], module(inp["x"], inp["scale"])[0])
    assert graphed.execution == "eager: input shapes changed across calls (over 2 signatures)"
    assert graphed.captures == {}


def test_a_fake_quant_piece_is_replayed_with_the_eager_bits():
    """Simulated INT8: pytorch-quantization's quantizers wait for the GPU on every call; the engine's copy gets
    sync-free ones with the same arithmetic, so the piece is captured and gives the eager module's output."""
    from bevdeploy.quant import calibrate, insert_quantizers
    from bevdeploy.specs.run import QuantSpec

    net = ConvNet().eval()
    insert_quantizers(net, QuantSpec())
    cpu = [{k: v.cpu() for k, v in _inputs(s).items()} for s in range(2)]
    calibrate(net, lambda m: [m(**b) for b in cpu], QuantSpec())  # on the CPU, as the pipeline does
    net.eval()
    engine = _engine(net, ["x", "scale"], ["feat", "peak"], "int8")
    reference = copy.deepcopy(net).cuda()  # pytorch-quantization's own forward, eagerly
    for seed in (3, 4):
        got = engine.infer(_inputs(seed))
        with torch.inference_mode():
            want = reference(**_inputs(seed))
        assert torch.equal(got["feat"], want[0]) and torch.equal(got["peak"], want[1])
    assert engine.execution == "CUDA graph (1 input signature)"
    assert "int8 simulated with fake-quant (fp32 arithmetic) by the torch backend" in engine.notes


def test_inputs_on_the_cpu_are_moved_then_replayed():
    engine = _engine(ConvNet(), ["x", "scale"], ["feat", "peak"])
    cpu = {k: v.cpu() for k, v in _inputs(5).items()}
    a, b = engine.infer(cpu), engine.infer(_inputs(5))
    assert torch.equal(a["feat"], b["feat"]) and a["feat"].is_cuda
    assert engine.execution == "CUDA graph (1 input signature)"
