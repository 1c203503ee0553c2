"""Export per precision and flavour on a small ResNet-style net with a ConvTranspose upsampler.

Fidelity stated here (cosine similarity of the graph's output to the FP32 module's, random
inputs): fp32 max abs 1e-4; fp16 cosine > 0.999; INT8 (either flavour) cosine > 0.98.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.export import export_onnx, export_subgraph
from bevdeploy.graph import Subgraph
from bevdeploy.quant import generic_quantize
from bevdeploy.specs.run import QuantSpec
from quantnets import calib_batches, tiny_resnet


@pytest.fixture(scope="module")
def nets():
    fp32 = tiny_resnet()
    qmodel = generic_quantize(tiny_resnet(), calib_batches(3), QuantSpec(num_batches=3, method="percentile"))
    x = calib_batches(1, seed=5)[0]["img"]
    return fp32, qmodel, x


def _run(path, x: torch.Tensor, optimized=None, optimize=True) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed_type = np.float16 if sess.get_inputs()[0].type == "tensor(float16)" else np.float32
    return sess.run(None, {"img": x.numpy().astype(feed_type)})[0].astype(np.float32)


def _cos(a: np.ndarray, b: torch.Tensor) -> float:
    b = b.detach().numpy().ravel()
    a = a.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_fp32_and_fp16(nets, tmp_path):
    fp32, qmodel, x = nets
    ref = fp32(x)
    meta = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "q32.onnx", "fp32", "ort")
    assert meta["quantize_linear"] == 0 and meta["opset"] == 17
    np.testing.assert_allclose(_run(tmp_path / "q32.onnx", x), ref.detach().numpy(), atol=1e-4)
    meta = export_onnx(fp32, (x,), ["img"], ["out"], tmp_path / "f16.onnx", "fp16", "ort")
    assert meta["inputs"] == {"img": "float16"} and meta["outputs"] == {"out": "float16"}
    assert any("upcasts" in n for n in meta["notes"])
    assert _cos(_run(tmp_path / "f16.onnx", x), ref) > 0.999


def test_int8_trt_flavour(nets, tmp_path):
    fp32, qmodel, x = nets
    ref, fake = fp32(x), qmodel(x)
    meta = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "t.onnx", "int8-fp32", "trt")
    assert meta["quantize_linear"] > 0 and meta["dequantize_linear"] >= meta["quantize_linear"]
    assert meta["tensorrt_problems"] == []
    model = onnx.load(tmp_path / "t.onnx")
    onnx.checker.check_model(model, full_check=True)
    # per-channel weight Q on the ConvTranspose uses its output-channel axis 1
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and "deblock.0/_weight" in n.name]
    assert q and onnx.helper.get_attribute_value(q[0].attribute[0]) == 1
    out = _run(tmp_path / "t.onnx", x)
    assert _cos(out, fake) > 0.9999  # the graph is the fake-quant module
    assert _cos(out, ref) > 0.98
    meta = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "t16.onnx", "int8", "trt")
    assert meta["opset"] == 19 and meta["inputs"] == {"img": "float16"} and meta["tensorrt_problems"] == []
    assert meta["quantize_linear"] > 0
    # ORT's own QDQ fusion of float16 Q/DQ loses accuracy (cosine ~0.977 here); the graph itself is
    # checked with ORT's graph optimizations off (TensorRT, its target, does its own fusion).
    assert _cos(_run(tmp_path / "t16.onnx", x, optimize=False), fake) > 0.999
    assert _cos(_run(tmp_path / "t16.onnx", x, optimize=False), ref) > 0.98


def test_int8_ort_flavour_fuses_to_integer_kernels(nets, tmp_path):
    fp32, qmodel, x = nets
    meta = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "o.onnx", "int8", "ort")
    # 17 weighted nodes; the one writing the graph output stays float (no one-sample output range)
    assert meta["quantize_linear"] > 0 and meta["matched_weighted_nodes"] == 16
    assert meta["overridden_tensors"] > 0 and meta["convtranspose_as_conv_depth_to_space"] == 1
    model = onnx.load(tmp_path / "o.onnx")
    writer = next(n for n in model.graph.node if "out" in n.output)
    assert writer.op_type != "DequantizeLinear" and writer.name in meta["excluded_nodes"]
    zps = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("zero_point")]
    assert any(z.dtype == np.uint8 for z in zps)  # U8 activations
    out = _run(tmp_path / "o.onnx", x, optimized=tmp_path / "opt.onnx")
    fused = [n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node]
    assert fused.count("QLinearConv") >= 15 and "ConvTranspose" not in fused
    assert _cos(out, fp32(x)) > 0.98


def test_ort_ranges_of_uncovered_tensors_span_every_calibration_input(nets, tmp_path):
    """Ranges ORT measures itself (tensors no quantizer of ours covers) come from every
    calibration input given, not just the example: a 4x larger second input widens some of
    them and leaves the ranges from our calibration (the overrides) alone."""

    def scales(path):
        m = onnx.load(path)
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        return {n.input[0]: float(inits[n.input[1]]) for n in m.graph.node if n.op_type == "QuantizeLinear"}

    _, qmodel, x = nets
    one = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "one.onnx", "int8", "ort")
    two = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "two.onnx", "int8", "ort",
                      calib_inputs=[(x,), (4 * x,)])
    assert (one["ort_range_samples"], two["ort_range_samples"]) == (1, 2)
    a, b = scales(tmp_path / "one.onnx"), scales(tmp_path / "two.onnx")
    assert a.keys() == b.keys()
    wider = [k for k in a if b[k] > 1.5 * a[k]]
    assert wider and all(b[k] >= a[k] * (1 - 1e-6) for k in a)


def test_keep_fp_layers_are_excluded_from_ort_lowering(tmp_path):
    qmodel = generic_quantize(tiny_resnet(), calib_batches(1), QuantSpec(num_batches=1, keep_fp=["head"]))
    x = calib_batches(1)[0]["img"]
    meta = export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "o.onnx", "int8-fp32", "ort")
    assert meta["excluded_nodes"] == ["/head/Conv"]


def test_export_subgraph_and_bad_arguments(nets, tmp_path):
    _, qmodel, x = nets
    sub = Subgraph(name="camera.backbone", module=qmodel, inputs=["img"], outputs=["feat"])
    art = export_subgraph(sub, {"img": x}, "int8", "trt", tmp_path, backend="tensorrt")
    assert art.path == tmp_path / "camera.backbone.int8.trt.onnx" and art.path.exists()
    assert art.format == "onnx" and art.output_names == ["feat"] and art.meta["quantize_linear"] > 0
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(BevDeployError, match="unknown precision"):
        export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "x.onnx", "int4", "trt")
    with pytest.raises(BevDeployError, match="flavour"):
        export_onnx(qmodel, (x,), ["img"], ["out"], tmp_path / "x.onnx", "int8", "tflite")


def test_onnx_checks_import_without_pytorch_quantization():
    """The TensorRT glue uses bevdeploy.export's checks (check_tensorrt, checks.graph_constants) on machines that
    have onnx but not pytorch-quantization: importing them must not pull it in; an int8 export still needs it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytorch_quantization'] = None\n"  # any import of it now fails
        "import onnx\n"
        "from onnx import helper, TensorProto\n"
        "from bevdeploy.export import check_tensorrt\n"
        "from bevdeploy.export.checks import graph_constants\n"
        "x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 2])\n"
        "m = helper.make_model(helper.make_graph([helper.make_node('Relu', ['x'], ['y'])], 'g', [x],\n"
        "    [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2])]))\n"
        "print(check_tensorrt(m), len(graph_constants(m.graph)))\n"
        "import torch\n"
        "from bevdeploy.export import export_onnx\n"
        "try:\n"
        "    export_onnx(torch.nn.ReLU(), [torch.zeros(1, 2)], ['x'], ['y'], 'never.onnx', 'fp32', 'trt')\n"
        "except ImportError as exc:\n"
        "    print('export needs it:', 'pytorch_quantization' in str(exc))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[] 0", "export needs it: True"]
