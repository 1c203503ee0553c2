"""The op library as the rest of bevdeploy sees it: OpSpecs from the hook, naming schemes,
ONNX Runtime definitions, TensorRT binding (skipped with the reason where TensorRT is missing)."""

import pytest
import torch
from bevdeploy import BackendUnavailable, BevDeployError
from bevdeploy.plugins import registered_ops
from bevdeploy.plugins.trt_ops import ort, trt
from bevdeploy.plugins.trt_ops.naming import current_naming, onnx_naming

# the seven ops of the anchors (each has a BEVFormer_tensorrt counterpart); bev_pool_columns is ours alone
OPS = {"bev_pool_v2", "ms_deform_attn", "grid_sampler", "modulated_deform_conv2d", "rotate", "inverse",
       "multi_head_attention"}
TRT_OK, TRT_REASON = trt.available()


def test_hook_registers_every_op_with_its_torch_op():
    specs = registered_ops()
    assert OPS | {"bev_pool_columns"} <= set(specs)
    assert specs["bev_pool_columns"].onnx_names == {"bevdeploy": "bevdeploy::BEVPoolColumns"}
    assert hasattr(torch.ops.bevdeploy, "bev_pool_columns")
    for name in OPS:
        spec = specs[name]
        assert spec.plugin == "bevdeploy.plugins.trt_ops"
        assert spec.reference.__name__ == f"{name}_reference"
        assert hasattr(torch.ops.bevdeploy, name)
        assert spec.onnx_names["bevdeploy"].startswith("bevdeploy::")
        assert spec.onnx_names["bevformer_tensorrt"].endswith("TRT")
        assert callable(spec.ort_define) and callable(spec.trt_register)
    assert specs["inverse"].precisions == ("fp32",)
    assert specs["ms_deform_attn"].onnx_names["mmdeploy"] == "mmdeploy::MMCVMultiScaleDeformableAttention"
    assert specs["grid_sampler"].onnx_names["bevformer_tensorrt_3d"] == "GridSampler3DTRT"


def test_unknown_scheme_fails_loudly_and_naming_is_restored():
    with pytest.raises(BevDeployError, match="unknown ONNX naming scheme 'tensorrt'"):
        with onnx_naming("tensorrt"):
            pass
    with onnx_naming("mmdeploy"):
        assert current_naming().scheme == "mmdeploy"
        with onnx_naming("bevformer_tensorrt", half2=True):
            assert current_naming().half2
        assert current_naming().scheme == "mmdeploy"
    assert current_naming().scheme == "bevdeploy"


def test_ort_define_is_idempotent_and_covers_every_name():
    specs = registered_ops()
    for name in OPS:
        specs[name].ort_define()
        specs[name].ort_define()
    defined = ort.defined_names()
    for name in OPS:
        assert set(specs[name].onnx_names.values()) <= defined


@pytest.mark.skipif(TRT_OK, reason="TensorRT is importable here; the unavailable path is not reachable")
def test_trt_register_without_tensorrt_says_why():
    with pytest.raises(BackendUnavailable, match="TensorRT"):
        registered_ops()["inverse"].trt_register()


@pytest.mark.skipif(not TRT_OK, reason=TRT_REASON or "TensorRT unavailable")
def test_trt_register_every_op_finds_its_plugin_creators():
    import tensorrt as trt_runtime

    specs = registered_ops()
    registry = trt_runtime.get_plugin_registry()
    for name in OPS:
        specs[name].trt_register()
        for qualified in set(specs[name].onnx_names.values()):
            op_type = qualified.rpartition("::")[2]
            assert registry.get_creator(op_type, "1", "bevdeploy") is not None, qualified


def test_bind_namespace_marks_foreign_scheme_nodes_for_our_plugins():
    from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op

    m = torch.randn(2, 4, 4) + 3 * torch.eye(4)
    model = export_one_op(lambda x: torch.ops.bevdeploy.inverse(x), (m,), "bevformer_tensorrt")
    (node,) = custom_nodes(trt.bind_namespace(model))
    assert {a.name: a.s for a in node.attribute}["plugin_namespace"] == b"bevdeploy"
    (ours,) = custom_nodes(export_one_op(lambda x: torch.ops.bevdeploy.inverse(x), (m,), "bevdeploy"))
    assert {a.name: a.s for a in ours.attribute}["plugin_namespace"] == b"bevdeploy"


def test_importing_the_package_registers_every_torch_op():
    import subprocess
    import sys

    code = ("import torch, bevdeploy.plugins.trt_ops; "
            f"assert all(hasattr(torch.ops.bevdeploy, n) for n in {sorted(OPS)!r})")
    subprocess.run([sys.executable, "-c", code], check=True)
