"""BEVDet model: upstream key names/shapes, the graph equals the eager model, ranks cached per rig,
the decode's conventions, and the one-engine export with its bev_pool_v2 node on ONNX Runtime."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx
import pytest
import torch
from bevdeploy.graph import DeployGraph
from bevdeploy.manager import get_plugin_manager, registered_models
from bevdeploy.plugins.bevdet.config import R50, REG_CHANNELS, TASKS, TINY
from bevdeploy.plugins.bevdet.head import circle_nms, decode, to_lidar_frame
from bevdeploy.plugins.bevdet.partition import RANK_NAMES, partition, single_engine
from bevdeploy.specs.run import RunSpec

# (key, shape) pairs of HuangJunJie2017/BEVDet bevdet-r50 checkpoints, as derived from upstream's
# source (configs/bevdet/bevdet-r50.py, necks/fpn.py CustomFPN, necks/view_transformer.py
# LSSViewTransformer, backbones/resnet.py CustomResNet, necks/lss_fpn.py FPN_LSS,
# dense_heads/centerpoint_head.py; mmdet ResNet, mmcv ConvModule); see bevdet/model.py's docstring
R50_KEYS = {
    "img_backbone.conv1.weight": (64, 3, 7, 7),
    "img_backbone.bn1.running_var": (64,),
    "img_backbone.layer1.0.conv1.weight": (64, 64, 1, 1),
    "img_backbone.layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "img_backbone.layer1.0.downsample.1.num_batches_tracked": (),
    "img_backbone.layer2.3.conv3.weight": (512, 128, 1, 1),
    "img_backbone.layer3.5.bn2.weight": (256,),
    "img_backbone.layer4.0.conv2.weight": (512, 512, 3, 3),
    "img_backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
    "img_neck.lateral_convs.0.conv.weight": (256, 1024, 1, 1),
    "img_neck.lateral_convs.0.conv.bias": (256,),
    "img_neck.lateral_convs.1.conv.weight": (256, 2048, 1, 1),
    "img_neck.fpn_convs.0.conv.weight": (256, 256, 3, 3),
    "img_neck.fpn_convs.0.conv.bias": (256,),
    "img_view_transformer.depth_net.weight": (59 + 64, 256, 1, 1),
    "img_view_transformer.depth_net.bias": (123,),
    "img_bev_encoder_backbone.layers.0.0.conv1.weight": (128, 64, 3, 3),
    "img_bev_encoder_backbone.layers.0.0.bn1.running_mean": (128,),
    "img_bev_encoder_backbone.layers.0.0.downsample.weight": (128, 64, 3, 3),
    "img_bev_encoder_backbone.layers.0.0.downsample.bias": (128,),
    "img_bev_encoder_backbone.layers.0.1.conv2.weight": (128, 128, 3, 3),
    "img_bev_encoder_backbone.layers.1.0.conv1.weight": (256, 128, 3, 3),
    "img_bev_encoder_backbone.layers.2.1.bn2.weight": (512,),
    "img_bev_encoder_neck.conv.0.weight": (512, 640, 3, 3),
    "img_bev_encoder_neck.conv.1.weight": (512,),
    "img_bev_encoder_neck.conv.3.weight": (512, 512, 3, 3),
    "img_bev_encoder_neck.conv.4.running_var": (512,),
    "img_bev_encoder_neck.up2.1.weight": (256, 512, 3, 3),
    "img_bev_encoder_neck.up2.2.weight": (256,),
    "img_bev_encoder_neck.up2.4.weight": (256, 256, 1, 1),
    "img_bev_encoder_neck.up2.4.bias": (256,),
    "pts_bbox_head.shared_conv.conv.weight": (64, 256, 3, 3),
    "pts_bbox_head.shared_conv.bn.weight": (64,),
    "pts_bbox_head.task_heads.0.reg.0.conv.weight": (64, 64, 3, 3),
    "pts_bbox_head.task_heads.0.reg.0.bn.running_mean": (64,),
    "pts_bbox_head.task_heads.0.reg.1.weight": (2, 64, 3, 3),
    "pts_bbox_head.task_heads.0.height.1.bias": (1,),
    "pts_bbox_head.task_heads.0.dim.1.weight": (3, 64, 3, 3),
    "pts_bbox_head.task_heads.0.rot.1.weight": (2, 64, 3, 3),
    "pts_bbox_head.task_heads.0.vel.1.weight": (2, 64, 3, 3),
    "pts_bbox_head.task_heads.0.heatmap.0.conv.weight": (64, 64, 3, 3),
    "pts_bbox_head.task_heads.0.heatmap.1.weight": (10, 64, 3, 3),  # one task of all ten classes
    "pts_bbox_head.task_heads.0.heatmap.1.bias": (10,),
}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _upstream_head_keys(num_tasks: int) -> set[str]:
    """CenterHead's keys by upstream's construction: shared_conv ConvModule(conv, bn); per task a
    SeparateHead whose heads (reg, height, dim, rot, vel, heatmap) are [ConvModule, biased conv]."""
    keys = {"pts_bbox_head.shared_conv.conv.weight", *(f"pts_bbox_head.shared_conv.bn.{b}" for b in BN)}
    for t in range(num_tasks):
        for head in ("reg", "height", "dim", "rot", "vel", "heatmap"):
            p = f"pts_bbox_head.task_heads.{t}.{head}"
            keys |= {f"{p}.0.conv.weight", f"{p}.1.weight", f"{p}.1.bias", *(f"{p}.0.bn.{b}" for b in BN)}
    return keys


def _upstream_bev_keys() -> set[str]:
    """View transformer, CustomResNet [2, 2, 2] and FPN_LSS keys by upstream's construction."""
    keys = {"img_view_transformer.depth_net.weight", "img_view_transformer.depth_net.bias"}
    for i in range(3):
        for j in range(2):
            p = f"img_bev_encoder_backbone.layers.{i}.{j}"
            keys |= {f"{p}.conv1.weight", f"{p}.conv2.weight", *(f"{p}.bn{n}.{b}" for n in (1, 2) for b in BN)}
        keys |= {f"img_bev_encoder_backbone.layers.{i}.0.downsample.{w}" for w in ("weight", "bias")}
    neck = "img_bev_encoder_neck"
    keys |= {f"{neck}.conv.0.weight", f"{neck}.conv.3.weight", f"{neck}.up2.1.weight", f"{neck}.up2.4.weight",
             f"{neck}.up2.4.bias", *(f"{neck}.{m}.{b}" for m in ("conv.1", "conv.4", "up2.2") for b in BN)}
    return keys


def test_plugin_found_through_hooks():
    pm = get_plugin_manager()
    spec = registered_models(pm)["bevdet"]
    assert spec.plugin.endswith("bevdet") and set(spec.variants) == {"r50", "tiny"} and spec.demo_variant == "tiny"
    model = spec.build("tiny")
    graph = pm.hook.bevdeploy_partition(model=model, spec=RunSpec(model="bevdet", variant="tiny"))
    assert isinstance(graph, DeployGraph)
    assert [n.name for n in graph.nodes] == ["camera.geometry", "image.encoder", "bevpool", "bev.head", "decode"]
    assert graph.node("bevpool").op == "bev_pool_v2"


def test_r50_official_names_and_strict_load(tmp_path):
    spec = registered_models()["bevdet"]
    model = spec.build("r50")
    sd = model.state_dict()
    got = {k: tuple(sd[k].shape) for k in R50_KEYS if k in sd}
    assert got == R50_KEYS
    assert not any("frustum" in k or "grid_" in k for k in sd)  # plain attributes upstream, not weights
    assert {k for k in sd if k.startswith("pts_bbox_head.")} == _upstream_head_keys(1)
    assert {k for k in sd if k.startswith(("img_view_transformer.", "img_bev_encoder_"))} == _upstream_bev_keys()
    neck = {k for k in sd if k.startswith("img_neck.")}
    assert neck == {f"img_neck.{m}.conv.{w}" for m in ("lateral_convs.0", "lateral_convs.1", "fpn_convs.0") for w in ("weight", "bias")}
    backbone = [k for k in sd if k.startswith("img_backbone.")]
    # stem conv1 + bn1; per Bottleneck conv1-3 + bn1-3; per stage downsample.0 conv + downsample.1 BN
    assert len(backbone) == 6 + sum((3, 4, 6, 3)) * 3 * 6 + 4 * 6
    assert {k.split(".")[1] for k in backbone} == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}
    # an mmdet-style file: {"state_dict": ...} beside metadata, DDP "module." prefix; the core loader opens it
    from bevdeploy.checkpoint import load_checkpoint

    torch.manual_seed(1)
    for v in sd.values():  # values unlike a fresh build's, so the load is seen to take effect
        if v.is_floating_point():
            v.uniform_()
    path = tmp_path / "bevdet-r50.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "meta": {"epoch": 24}}, path)
    loaded = load_checkpoint(spec.build("r50"), path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())


def test_graph_equals_eager(tiny, tiny_inputs):
    graph = partition(tiny, "tiny")
    from bevdeploy._defaults import execute_graph, module_outputs

    inputs = tiny_inputs[0]
    values = execute_graph(graph, module_outputs, inputs)
    with torch.no_grad():
        eager = tiny(**inputs)
    for name in ("heatmap", "bbox_reg"):
        torch.testing.assert_close(values[name], eager[name])
    dets = tiny.decode(eager["heatmap"], eager["bbox_reg"], inputs["lidar2ego"])
    np.testing.assert_array_equal(values["detections"].boxes, dets.boxes)
    assert 0 < len(dets) <= TINY.head.max_per_img


def test_ranks_computed_once_per_rig(tiny, tiny_inputs):
    args = [tiny_inputs[0][k] for k in ("camera2ego", "camera_intrinsics", "img_aug_matrix")]
    first = tiny.bev_ranks(*args)
    assert tiny.bev_ranks(*[a.clone() for a in args]) is first
    moved = args[0].clone()
    moved[0, 0, 0, 3] += 1.0  # a different rig
    other = tiny.bev_ranks(moved, *args[1:])
    assert other is not first and not torch.equal(other[2], first[2])


def test_tiny_keeps_six_head_tasks(tiny):
    """tiny's head keeps CenterPoint's six groups (its shipped weights have them), r50 has one."""
    assert {k for k in tiny.state_dict() if k.startswith("pts_bbox_head.")} == _upstream_head_keys(6)
    assert tiny.pts_bbox_head.task_heads[5].heatmap[1].weight.shape[0] == 2


def test_decode_same_for_one_or_six_head_tasks():
    """The head's task layout changes the checkpoint, not the decode: upstream r50's one task
    decodes exactly as six tasks that all carry the same regression."""
    g = torch.Generator().manual_seed(0)
    h, w = R50.grid_size[1], R50.grid_size[0]
    heat = torch.rand(1, 10, h, w, generator=g) * 0.12
    heat[0, 8, 60, 70] = 0.9  # a pedestrian peak
    reg = torch.randn(1, REG_CHANNELS, h, w, generator=g) * 0.3
    six = dataclasses.replace(R50, head=dataclasses.replace(R50.head, tasks=TASKS))
    one_task = decode(heat, reg, torch.eye(4), R50)
    six_tasks = decode(heat, reg.repeat(1, len(TASKS), 1, 1), torch.eye(4), six)
    assert len(one_task) > 100 and 8 in one_task.labels.tolist()
    for field in ("boxes", "scores", "labels", "velocity"):
        np.testing.assert_array_equal(getattr(one_task, field), getattr(six_tasks, field))


def _decode_per_group(heatmap, bbox_reg, lidar2ego, cfg):
    """CenterPoint's decode written the plain way, one NMS group after the other on the CPU: the reference the
    batched decode must reproduce exactly."""
    from bevdeploy.data.types import DETECTION_CLASSES, Detections

    hc = cfg.head
    heat_all, reg_all = heatmap.float()[0].cpu(), bbox_reg.float()[0].cpu()
    channels = [n for names in hc.tasks for n in names]
    parts = []
    for g, names in enumerate(TASKS):
        t = next(t for t, task in enumerate(hc.tasks) if set(names) <= set(task))
        heat, reg = heat_all[[channels.index(n) for n in names]], reg_all[t * REG_CHANNELS : (t + 1) * REG_CHANNELS]
        _, h, w = heat.shape
        idx = heat.reshape(-1).sort(descending=True, stable=True).indices[: hc.pre_max_size]
        scores, cls, pix = heat.reshape(-1)[idx], idx // (h * w), idx % (h * w)
        r = reg.reshape(REG_CHANNELS, -1)[:, pix]
        x = (pix % w).float().add(r[0]) * hc.out_size_factor * hc.voxel_size[0] + cfg.xbound[0]
        y = (pix // w).float().add(r[1]) * hc.out_size_factor * hc.voxel_size[1] + cfg.ybound[0]
        dims = r[3:6].exp()
        boxes = torch.stack([x, y, r[2], dims[0], dims[1], dims[2], torch.atan2(r[6], r[7])], dim=1)
        lo, hi = torch.tensor(hc.post_center_range[:3]), torch.tensor(hc.post_center_range[3:])
        keep = (scores > hc.score_threshold) & (boxes[:, :3] >= lo).all(1) & (boxes[:, :3] <= hi).all(1)
        boxes, scores, cls, vel = boxes[keep].numpy(), scores[keep].numpy(), cls[keep].numpy(), r[8:10].t()[keep].numpy()
        kept = circle_nms(boxes[:, :2], scores, hc.min_radius[g], hc.post_max_size)
        labels = np.array([DETECTION_CLASSES.index(n) for n in names])[cls[kept]]
        parts.append((boxes[kept], scores[kept], labels, vel[kept]))
    boxes, scores, labels, vel = (np.concatenate([p[i] for p in parts]) for i in range(4))
    best = np.argsort(-scores, kind="stable")[: hc.max_per_img]
    boxes, vel = to_lidar_frame(boxes[best].reshape(-1, 7), vel[best].reshape(-1, 2), lidar2ego.double().numpy())
    return Detections(boxes=boxes, scores=scores[best], labels=labels[best], velocity=vel)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("variant", ["tiny", "r50"])
def test_batched_decode_is_the_per_group_decode(variant, seed):
    """All groups' top-K and boxes in one batch give exactly what one group at a time gives: tied scores (maps
    rounded to 2 decimals), a group of one class and of two, peaks outside the centre range, and a density of
    candidates from a trained head's (~5%) to a random head's (~50% above the threshold)."""
    cfg = TINY if variant == "tiny" else R50
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.grid_size[1], cfg.grid_size[0]
    tasks = len(cfg.head.tasks)
    centre = (-2.19, 0.0)[seed % 2]  # trained-like sparse peaks / random-weights-like
    heat = (torch.randn(1, 10, h, w, generator=g) + centre).sigmoid().mul(100).round().div(100)
    reg = torch.randn(1, tasks * REG_CHANNELS, h, w, generator=g) * (1.0, 40.0)[seed // 2]  # far: out of range
    lidar2ego = torch.eye(4, dtype=torch.float64)
    lidar2ego[:3, 3] = torch.tensor([0.9, 0.0, 1.8])
    got, want = decode(heat, reg, lidar2ego, cfg), _decode_per_group(heat, reg, lidar2ego, cfg)
    assert len(want) > 0
    for field in ("boxes", "scores", "labels", "velocity"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
        assert getattr(got, field).dtype == getattr(want, field).dtype, field


def test_decode_peak_to_box():
    cfg = TINY
    h = w = cfg.grid_size[0]
    heat = torch.zeros(1, 10, h, w)
    reg = torch.zeros(1, 6 * REG_CHANNELS, h, w)
    heat[0, 3, 40, 20] = 0.9  # bus (task 2, first class)
    r = reg[0, 2 * REG_CHANNELS : 3 * REG_CHANNELS, 40, 20]
    r[:] = torch.tensor([0.5, 0.25, 1.0, math.log(10.0), math.log(3.0), math.log(3.5), math.sin(0.3), math.cos(0.3), 2.0, -1.0])
    dets = decode(heat, reg, torch.eye(4), cfg)
    assert len(dets) == 1 and dets.labels[0] == 3
    cell = cfg.head.out_size_factor * cfg.head.voxel_size[0]
    np.testing.assert_allclose(dets.boxes[0], [-51.2 + 20.5 * cell, -51.2 + 40.25 * cell, 1.0, 10.0, 3.0, 3.5, 0.3], atol=1e-4)
    np.testing.assert_allclose(dets.velocity[0], [2.0, -1.0], atol=1e-6)


def test_circle_nms_and_lidar_frame():
    centers = np.array([[0.0, 0.0], [0.5, 0.0], [5.0, 0.0]])
    assert circle_nms(centers, np.array([0.5, 0.9, 0.8]), radius=1.0, max_keep=10).tolist() == [1, 2]
    lidar2ego = np.eye(4)
    lidar2ego[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # LiDAR x = ego y (nuScenes-like)
    lidar2ego[:3, 3] = [1.0, 0.0, 1.8]
    boxes = np.array([[1.0, 5.0, 1.8, 4.0, 2.0, 1.5, math.pi / 2]], np.float32)
    out, vel = to_lidar_frame(boxes, np.array([[0.0, 3.0]], np.float32), lidar2ego)
    np.testing.assert_allclose(out[0], [5.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(vel[0], [3.0, 0.0], atol=1e-6)


def _greedy_circle_nms(centers, scores, radius, max_keep):
    """CenterPoint's greedy circle NMS written the plain way: visit boxes best first, keep one unless a kept box
    lies within ``radius`` (squared distance)."""
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if all(((centers[i] - centers[j]) ** 2).sum() > radius for j in keep):
            keep.append(int(i))
            if len(keep) == max_keep:
                break
    return keep


@pytest.mark.parametrize("seed", range(40))
def test_circle_nms_is_greedy_circle_nms(seed):
    """The vectorized NMS keeps what the plain greedy one keeps, with ties in scores and on the radius."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 120))
    centers = np.round(rng.random((n, 2)) * rng.choice([4, 20]), 1).astype(np.float32)  # many exact distances
    scores = np.round(rng.random(n), 1).astype(np.float32)  # many equal scores
    radius, max_keep = float(rng.choice([0.175, 1.0, 4.0])), int(rng.choice([1, 5, 500]))
    got = circle_nms(centers, scores, radius, max_keep).tolist()
    assert got == _greedy_circle_nms(centers, scores, radius, max_keep)


def test_single_engine_onnx_has_bev_pool_v2_and_runs_in_ort(tiny, tiny_inputs, tmp_path):
    from bevdeploy.backends.onnxruntime import build as ort_build
    from bevdeploy.export import export_subgraph

    inputs = tiny_inputs[0]
    ranks = tiny.bev_ranks(inputs["camera2ego"], inputs["camera_intrinsics"], inputs["img_aug_matrix"])
    example = {"img": inputs["img"], **dict(zip(RANK_NAMES, ranks, strict=True))}
    sg = single_engine(tiny)
    sg.module.eval()
    art = export_subgraph(sg, example, "fp32", "ort", tmp_path, "onnxruntime")
    nodes = onnx.load(str(art.path)).graph.node
    assert [n.op_type for n in nodes if n.domain == "bevdeploy"] == ["BEVPoolV2"]
    out = ort_build(art, "fp32").infer(example)
    with torch.no_grad():
        ref = tiny(**inputs)
    for name in ("heatmap", "bbox_reg"):
        torch.testing.assert_close(torch.as_tensor(out[name]), ref[name], atol=1e-4, rtol=1e-4)
