"""The libspconv-format ONNX of the sparse backbone and the spconv engine."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from bevdeploy.graph import Subgraph
from bevdeploy.plugins.bevfusion import bevdeploy_build, bevdeploy_export
from bevdeploy.plugins.bevfusion.lidar import SparseBasicBlock
from bevdeploy.plugins.bevfusion.partition import LidarBackbone
from bevdeploy.quant.modules import set_amax
from bevdeploy.quant.sparse import is_sparse_conv, quantize_sparse_conv
from bevdeploy.specs.registry import BackendSpec
from onnx import numpy_helper
from pytorch_quantization.nn import TensorQuantizer
from pytorch_quantization.tensor_quant import QuantDescriptor

CONV_ATTRS = {
    "ndim", "input_spatial_shape", "output_spatial_shape", "in_channels", "out_channels", "kernel_size", "stride",
    "dilation", "padding", "output_padding", "transposed", "inverse", "groups", "subm", "rulebook", "activation",
    "output_bound", "precision", "output_precision",
}  # fmt: skip
BACKEND = BackendSpec(
    name="onnxruntime", qdq_flavour="ort", native_precisions=("fp32",), is_available=lambda: (True, ""),
    build=lambda a, p: None,
)  # fmt: skip


@pytest.fixture(scope="module")
def lidar_inputs(tiny, inputs):
    return dict(zip(["voxels", "voxel_coords"], tiny.voxelize(inputs["points"]), strict=True))


def _subgraph(model) -> Subgraph:
    return Subgraph("lidar.backbone", LidarBackbone(model), ["voxels", "voxel_coords"], ["lidar_bev"], exporter="spconv")


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def test_fp16_export_structure(tiny, lidar_inputs, tmp_path):
    art = bevdeploy_export(subgraph=_subgraph(tiny), precision="fp16", backend=BACKEND, out_dir=tmp_path,
                           example_inputs=lidar_inputs)  # fmt: skip
    assert art.format == "spconv-onnx" and art.path.exists() and not list(tmp_path.glob("*.tmp"))
    m = onnx.load(str(art.path))
    g = m.graph
    assert g.name == "scn" and m.opset_import[0].version == 11 and g.input[0].name == "0"
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    types = [n.op_type for n in g.node]
    # conv_input, 4 stages (2 blocks of 2 convs each, 3 downsamples), conv_out
    assert types.count("SparseConvolution") == 1 + 4 * 4 + 3 + 1
    assert types.count("Add") == 8 and types.count("Relu") == 8
    assert types[-3:] == ["ScatterDense", "Transpose", "Reshape"]
    convs = [n for n in g.node if n.op_type == "SparseConvolution"]
    first, last = _attrs(convs[0]), _attrs(convs[-1])
    assert CONV_ATTRS <= set(first)
    assert first["subm"] == 1 and first["activation"] == b"ReLU" and first["input_spatial_shape"] == [512, 512, 41]
    assert last["kernel_size"] == [1, 1, 3] and last["stride"] == [1, 1, 2] and last["output_spatial_shape"] == [64, 64, 2]
    conv2 = _attrs(convs[2])  # second conv of the first residual block: BN only, the ReLU follows the Add
    assert conv2["activation"] == b"None"
    scatter = _attrs(g.node[-3])
    assert scatter["format"] == b"xyz" and scatter["output_shape"] == [1, 32, 64, 64, 2]
    assert _attrs(g.node[-2])["dims"] == [0, 1, 4, 2, 3] and _attrs(g.node[-1])["dims"] == [1, 64, 64, 64]
    # weights: fp16, [out, kx, ky, kz, in] = the official [kx, ky, kz, in, out] permuted (4, 0, 1, 2, 3),
    # with the BN folded in
    enc = tiny.encoders["lidar"]["backbone"]
    w = numpy_helper.to_array(next(i for i in g.initializer if i.name == "spconv0.weight"))
    bn = enc.conv_input[1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    ref = (enc.conv_input[0].weight.detach() * scale.view(-1, 1, 1, 1, 1)).numpy()
    assert w.dtype == np.float16 and w.shape == (8, 3, 3, 3, 5)
    np.testing.assert_allclose(w.astype(np.float32), ref, rtol=1e-3, atol=1e-4)


def test_int8_export_reads_calibrated_ranges(tiny, lidar_inputs, tmp_path):
    model = copy.deepcopy(tiny)
    enc = model.encoders["lidar"]["backbone"]
    desc_in, desc_w = QuantDescriptor(num_bits=8), QuantDescriptor(num_bits=8, axis=(0,))
    for m in enc.modules():
        if is_sparse_conv(m):
            quantize_sparse_conv(m, desc_in, desc_w)
            set_amax(m._input_quantizer, 3.0)
            set_amax(m._weight_quantizer, torch.linspace(0.1, 1.0, m.out_channels).view(-1, 1, 1, 1, 1))
    for blk in enc.modules():
        if isinstance(blk, SparseBasicBlock):
            blk.add_quantizer = TensorQuantizer(desc_in)
            set_amax(blk.add_quantizer, 5.0)
    enc.conv_input[0]._input_quantizer.disable()  # CUDA-BEVFusion keeps conv_input in FP16
    art = bevdeploy_export(subgraph=_subgraph(model), precision="int8", backend=BACKEND, out_dir=tmp_path,
                           example_inputs=lidar_inputs)  # fmt: skip
    g = onnx.load(str(art.path)).graph
    convs = [_attrs(n) for n in g.node if n.op_type == "SparseConvolution"]
    assert convs[0]["precision"] == b"fp16" and "input_dynamic_range" not in convs[0]
    assert convs[1]["precision"] == b"int8" and convs[1]["input_dynamic_range"] == pytest.approx(3.0)
    assert len(convs[1]["weight_dynamic_ranges"]) == convs[1]["out_channels"]
    assert convs[1]["weight_dynamic_ranges"][-1] == pytest.approx(1.0)
    assert convs[-1]["output_precision"] == b"fp16" and convs[1]["output_precision"] == b"int8"
    adds = [_attrs(n) for n in g.node if n.op_type == "QuantAdd"]
    assert len(adds) == 8 and adds[0]["input0_dynamic_range"] == pytest.approx(5.0)
    assert adds[0]["input1_dynamic_range"] == pytest.approx(5.0)


def test_spconv_engine_runs_the_module(tiny, lidar_inputs, tmp_path):
    sg = _subgraph(tiny)
    art = bevdeploy_export(subgraph=sg, precision="fp32", backend=BACKEND, out_dir=tmp_path, example_inputs=lidar_inputs)
    assert bevdeploy_export(subgraph=Subgraph("x", sg.module, [], []), precision="fp32", backend=BACKEND,
                            out_dir=tmp_path, example_inputs={}) is None  # fmt: skip
    engine = bevdeploy_build(artifact=art, backend=BACKEND, precision="fp32")
    assert any("libspconv is not available" in n for n in engine.notes)
    out = engine.infer(lidar_inputs)["lidar_bev"]
    with torch.no_grad():
        ref = sg.module(*lidar_inputs.values())
    assert torch.equal(out, ref)
    # the note names the sparse implementation that runs; fp16 is autocast on a CUDA device only, so the CPU
    # inputs here run in FP32 and give the FP32 output exactly
    impl = sg.module.encoder.sparse_impl
    assert any(("spconv 2.x" if impl == "spconv" else "bevdeploy.sparse") in n for n in engine.notes)
    half = bevdeploy_build(artifact=art, backend=BACKEND, precision="fp16").infer(lidar_inputs)["lidar_bev"]
    assert half.dtype == torch.float32 and torch.equal(half, ref)
