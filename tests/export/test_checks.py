import numpy as np
from bevdeploy.export.checks import check_tensorrt
from onnx import TensorProto, helper, numpy_helper


def _qdq_model(zp_dtype=np.int8, scale=None, extra_nodes=(), axis=None):
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    s = numpy_helper.from_array(np.float32(0.1) if scale is None else scale, "s")
    zp = numpy_helper.from_array(np.zeros(np.shape(scale) if scale is not None else (), zp_dtype), "zp")
    kw = {} if axis is None else {"axis": axis}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q", **kw),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq", **kw),
        helper.make_node("Conv", ["xd", "w"], ["y"], name="conv"),
        *extra_nodes,
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, s, zp],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_clean_int8_graph_passes():
    assert check_tensorrt(_qdq_model()) == []


def test_uint8_qdq_is_flagged():
    problems = check_tensorrt(_qdq_model(zp_dtype=np.uint8))
    assert len(problems) == 2 and all("uint8" in p for p in problems)


def test_per_channel_activation_scale_is_flagged():
    problems = check_tensorrt(_qdq_model(scale=np.full(3, 0.1, np.float32), axis=1))
    assert any("per-channel scale on an activation" in p for p in problems)


def test_unsupported_and_custom_ops():
    extra = [helper.make_node("QLinearConv", ["a"], ["b"], name="qlc"),
             helper.make_node("BEVPoolV2TRT", ["y"], ["z"], name="pool", domain="bevdeploy")]
    model = _qdq_model(extra_nodes=extra)
    problems = check_tensorrt(model)
    assert any("QLinearConv is not supported" in p for p in problems)
    assert any("bevdeploy::BEVPoolV2TRT has no registered plugin" in p for p in problems)
    problems = check_tensorrt(model, plugin_ops=["bevdeploy::BEVPoolV2TRT"])
    assert len(problems) == 1 and "QLinearConv" in problems[0]


def test_weight_axis_rule():
    w = numpy_helper.from_array(np.ones((3, 4, 2, 2), np.float32), "w")  # ConvTranspose [in, out, k, k]
    s = numpy_helper.from_array(np.full(3, 0.1, np.float32), "s")
    zp = numpy_helper.from_array(np.zeros(3, np.int8), "zp")
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "zp"], ["wq"], name="wq", axis=0),
             helper.make_node("DequantizeLinear", ["wq", "s", "zp"], ["wd"], name="wdq", axis=0),
             helper.make_node("ConvTranspose", ["x", "wd"], ["y"], name="ct", strides=[2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, s, zp])
    problems = check_tensorrt(helper.make_model(graph))
    assert problems == ["DequantizeLinear wdq: per-channel axis 0 on a ConvTranspose weight (TensorRT wants 1)"]
