"""The DeployGraph: hooks, torch execution equal to the eager model, ONNX export of each dense piece."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from bevdeploy.graph import OpNode, Subgraph
from bevdeploy.plugins.bevfusion import bevdeploy_partition, bevdeploy_register_models
from bevdeploy.plugins.bevfusion.head import HEAD_OUTPUTS
from bevdeploy.plugins.bevfusion.partition import run_graph
from bevdeploy.specs.run import RunSpec

PIECES = [
    "camera.geometry", "camera.backbone", "bevpool", "camera.vtransform", "lidar.voxelize",
    "lidar.backbone", "fuser", "head.bbox", "decode",
]  # fmt: skip


@pytest.fixture(scope="module")
def graph(tiny):
    return bevdeploy_partition(model=tiny, spec=RunSpec(model="bevfusion", variant="tiny"))


@pytest.fixture(scope="module")
def values(graph, inputs):
    return run_graph(graph, inputs)


def test_registration():
    (spec,) = bevdeploy_register_models()
    assert spec.name == "bevfusion" and set(spec.variants) == {"r50", "tiny"} and spec.demo_variant == "tiny"
    assert spec.modalities == ("camera", "lidar")


def test_partition_shape_and_policies(tiny, graph):
    assert bevdeploy_partition(model=tiny, spec=RunSpec(model="bevdet")) is None
    assert [n.name for n in graph.nodes] == PIECES
    assert graph.node("bevpool").op == "bev_pool_v2" and isinstance(graph.node("decode"), OpNode)
    for name in ("camera.vtransform", "head.bbox"):
        sg = graph.node(name)
        assert sg.precision_for("int8") == "fp16" and sg.precision_for("int8-fp32") == "fp32"
    assert graph.node("fuser").precision_for("int8") == "int8"
    assert graph.node("lidar.backbone").exporter == "spconv"


def test_graph_in_torch_equals_eager_forward(tiny, inputs, values):
    with torch.no_grad():
        eager = tiny(**inputs)
    for name in HEAD_OUTPUTS:
        assert torch.equal(values[name], eager[name]), name
    det = values["detections"]
    ref = tiny.decode(eager)
    assert np.array_equal(det.boxes, ref.boxes) and np.array_equal(det.labels, ref.labels)
    # CUDA-BEVFusion's interface shapes, scaled to tiny
    d, (fh, fw), c = 28, tiny.cfg.camera.feature_size, tiny.cfg.camera.vt_channels
    assert values["camera_depth_weights"].shape == (6, d, fh, fw) and values["camera_feature"].shape == (6, fh, fw, c)
    assert values["camera_bev_raw"].shape == (1, c, 128, 128) and values["camera_bev"].shape == (1, c, 64, 64)
    assert values["lidar_bev"].shape == (1, 64, 64, 64) and values["middle"].shape == (1, 128, 64, 64)
    assert values["voxel_coords"].dtype == torch.int32 and values["voxels"].shape[1] == 5


@pytest.mark.parametrize("piece", ["camera.backbone", "camera.vtransform", "fuser", "head.bbox"])
def test_dense_piece_exports_and_matches_onnxruntime(graph, values, piece, tmp_path):
    sg: Subgraph = graph.node(piece)
    args = tuple(values[n] for n in sg.inputs)
    if piece == "head.bbox":
        # top-K is discontinuous: on the near-constant heatmap of random weights, float-level
        # differences between runtimes reorder proposals. A random BEV map has no near-ties.
        args = (torch.randn(args[0].shape, generator=torch.Generator().manual_seed(0)),)
        with torch.no_grad():
            values = dict(zip(sg.outputs, sg.module(*args), strict=True))
    path = tmp_path / f"{piece}.onnx"
    torch.onnx.export(
        sg.module, args, str(path), input_names=sg.inputs, output_names=sg.outputs, opset_version=17, dynamo=False
    )
    onnx.checker.check_model(str(path), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: a.numpy() for n, a in zip(sg.inputs, args, strict=True)})
    for name, out in zip(sg.outputs, got, strict=True):
        ref = values[name].numpy()
        assert out.shape == ref.shape, name
        if ref.dtype.kind in "iu":
            assert np.array_equal(out, ref), name
        else:
            np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())), err_msg=name)
