"""`bevdeploy run --backend torch` on a CUDA GPU, end to end, for both built-in model families (skipped without
a GPU). On the CPU the torch backend is covered by the pipeline tests; here every engine runs on the GPU, the
sample's tensors move there first, and so the ops between engines (geometry, bev_pool_v2's Triton kernel,
voxelization, decode) run there too, against the FP32 pieces the fidelity check runs on the CPU."""

from __future__ import annotations

import json
import re

import pytest
import torch
from bevdeploy.cli import main

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

MODELS = {
    "bevfusion": {
        "pieces": {"camera.backbone", "camera.vtransform", "lidar.backbone", "fuser", "head.bbox"},
        "ops": {"camera.geometry", "bevpool", "lidar.voxelize", "decode"},
        "dense": ("camera.backbone", "camera.vtransform", "fuser"),
        # the policy keeps vtransform and head in FP16 under int8, which the GPU runs natively
        "int8": {"camera.backbone": "int8", "camera.vtransform": "fp16", "lidar.backbone": "int8", "fuser": "int8",
                 "head.bbox": "fp16"},
    },
    "bevdet": {
        "pieces": {"image.encoder", "bev.head"},
        "ops": {"camera.geometry", "bevpool", "decode"},
        "dense": ("image.encoder", "bev.head"),
        "int8": {"image.encoder": "int8", "bev.head": "int8"},
    },
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu-runs")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_torch_backend_on_the_gpu(small_dataroot, runs, capsys, model, precision):
    dataroot, version = small_dataroot
    argv = ["run", "--model", model, "--precision", precision, "--backend", "torch", "--data", str(dataroot),
            "--version", version, "--split", "synth_val", "--calib-split", "synth_calib", "--calib-batches", "2",
            "--max-samples", "3", "--out", str(runs / f"{model}-{precision}"), "--json"]
    code = main(argv)
    cap = capsys.readouterr()
    assert code == 0, cap.err
    rep = json.loads(cap.out)
    m = MODELS[model]
    assert rep["device"].startswith("cuda: ")
    assert set(rep["latency_ms"]) == m["pieces"] | m["ops"] | {"end_to_end"}
    assert rep["dataset"]["samples"] == 3 and rep["fps"] > 0
    assert rep["piece_precisions"] == (m["int8"] if precision == "int8" else dict.fromkeys(m["pieces"], precision))
    assert not [n for n in rep["not_honoured"] if "fp16 not executed" in n]  # FP16 really ran in FP16
    # the GPU pieces against the FP32 pieces on the CPU, on identical inputs
    floor = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.98}[precision]
    for piece in m["dense"]:
        assert rep["fidelity"][piece]["cosine"] > floor, (piece, rep["fidelity"][piece])
    for k in ("mAP", "NDS"):
        assert 0.0 <= rep["metrics"][k] <= 1.0
    # the torch backend replays its pieces as CUDA graphs, the INT8-simulated ones too (sync-free fake-quant). The
    # sparse backbone is the plugin's own engine: on the GPU it folds BN, or at INT8 (BNs folded before calibration)
    # runs sync-free fake-quant
    ex = rep["execution"]
    assert set(ex) == m["pieces"]
    if "lidar.backbone" in ex:
        what = r"\d+ fake-quant quantizers without host syncs" if precision == "int8" else r"BatchNorm folded into \d+ sparse convs"
        assert re.fullmatch(what + " on cuda", ex["lidar.backbone"]), ex["lidar.backbone"]
    for piece in m["dense"]:
        assert ex[piece] == "CUDA graph (1 input signature)", (piece, ex[piece])


def test_gpu_fp32_detects_what_the_cpu_does(small_dataroot, runs, capsys):
    """The same FP32 BEVFusion on the GPU (torch) and on the CPU (ONNX Runtime): the geometry, bev_pool_v2 and
    the decode moved to the GPU must not change the detections beyond float rounding."""
    dataroot, version = small_dataroot
    metrics = {}
    for backend in ("torch", "onnxruntime"):
        argv = ["run", "--model", "bevfusion", "--precision", "fp32", "--backend", backend, "--data", str(dataroot),
                "--version", version, "--split", "synth_val", "--max-samples", "3",
                "--out", str(runs / f"same-{backend}"), "--json"]
        code = main(argv)
        cap = capsys.readouterr()
        assert code == 0, cap.err
        metrics[backend] = json.loads(cap.out)["metrics"]
    assert metrics["torch"]["mAP"] == pytest.approx(metrics["onnxruntime"]["mAP"], abs=0.01)
    assert metrics["torch"]["NDS"] == pytest.approx(metrics["onnxruntime"]["NDS"], abs=0.01)
