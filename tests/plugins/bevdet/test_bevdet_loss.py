"""BEVDet's CenterPoint loss: targets where the boxes are, finite terms per task, gradients that
reach the image backbone through bev_pool_v2, and a few steps on one sample lower it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bevdeploy.manager import registered_models
from bevdeploy.plugins.bevdet.config import TINY
from bevdeploy.plugins.bevdet.loss import centerpoint_targets, gaussian_radius


def test_targets_peak_at_box_centre():
    boxes = np.array([[10.0, -5.0, 0.5, 4.5, 1.9, 1.6, 0.4]])  # a car, ego frame
    tg = centerpoint_targets(TINY, boxes, np.array([[1.0, 2.0]]), np.array([0]))
    heat, ind, box = tg[0]["heatmap"], tg[0]["ind"], tg[0]["box"]
    cell = 1.6
    xi, yi = int((10.0 + 51.2) / cell), int((-5.0 + 51.2) / cell)
    assert heat[0, yi, xi] == 1.0 and int(heat.eq(1).sum()) == 1 and ind.tolist() == [yi * 64 + xi]
    np.testing.assert_allclose(box[0, 2:], [0.5, math.log(4.5), math.log(1.9), math.log(1.6), math.sin(0.4), math.cos(0.4), 1.0, 2.0], rtol=1e-5)
    assert all(t["ind"].numel() == 0 and t["heatmap"].sum() == 0 for t in tg[1:])
    assert gaussian_radius(3.0, 3.0) > 0


@pytest.mark.slow
def test_loss_terms_gradients_and_descent(small_dataroot):
    from bevdeploy.data import open_dataset
    from bevdeploy.plugins.bevdet.model import build
    from bevdeploy.specs.run import DataSpec

    spec = registered_models()["bevdet"]
    assert spec.loss is not None
    dataroot, version = small_dataroot
    sample = open_dataset(DataSpec(dataroot=dataroot, version=version, split="synth_val"), role="eval")[0]
    model = build("tiny").train()
    x = spec.prepare(model, sample)
    terms = spec.loss(model, [x], [sample])
    assert set(terms) == {f"task{t}.{n}" for t in range(6) for n in ("loss_heatmap", "loss_bbox")}
    total = sum(terms.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.img_backbone.conv1.weight.grad.abs().sum() > 0  # through bev_pool_v2 into the image path
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = float(total.detach())
    for _ in range(3):
        opt.zero_grad()
        loss = sum(spec.loss(model, [x], [sample]).values())
        loss.backward()
        opt.step()
    assert float(sum(spec.loss(model, [x], [sample]).values())) < first


def test_batched_training_forward_matches_frames_alone(tiny, tiny_inputs):
    """forward_tasks on a batch of two frames (ranks of both computed together, one bev_pool_v2
    call) gives each frame's outputs as if it ran alone."""
    keys = ("img", "camera2ego", "camera_intrinsics", "img_aug_matrix")
    a, b = tiny_inputs
    moved = dict(b, camera2ego=b["camera2ego"].clone())
    moved["camera2ego"][..., 0, 3] += 3.0  # a different rig pose: different ranks per frame
    with torch.no_grad():
        both = tiny.forward_tasks(**{k: torch.cat([a[k], moved[k]]) for k in keys})
        alone = [tiny.forward_tasks(**{k: x[k] for k in keys}) for x in (a, moved)]
    for t, task in enumerate(both):
        for name, value in task.items():
            for i in range(2):
                torch.testing.assert_close(value[i : i + 1], alone[i][t][name], rtol=1e-4, atol=1e-5)


def test_targets_follow_the_augmented_bev_frame(small_dataroot):
    """Under a global augmentation m the images are lifted with camera2bev = (L m L^-1) camera2ego
    (L the rig's lidar2ego), so box targets must move the same way: target centre = L m b, not the
    un-augmented L b that the augmented Sample's own lidar2ego (L m^-1) would give."""
    from bevdeploy.data import open_dataset
    from bevdeploy.data.augment import global_transform, lidar_transform
    from bevdeploy.plugins.bevdet.loss import bev_boxes
    from bevdeploy.plugins.bevdet.prepare import camera2bev
    from bevdeploy.specs.run import DataSpec

    dataroot, version = small_dataroot
    sample = open_dataset(DataSpec(dataroot=dataroot, version=version, split="synth_val"), role="eval")[0]
    m = lidar_transform(rotate=0.6, scale=1.05, flip_x=True)
    aug = global_transform(sample, m)
    lidar2ego = np.asarray(sample.lidar2ego, dtype=np.float64)
    boxes, _ = bev_boxes(aug)
    expect = (np.asarray(sample.gt_boxes, np.float64)[:, :3] @ (lidar2ego @ m)[:3, :3].T) + (lidar2ego @ m)[:3, 3]
    np.testing.assert_allclose(boxes[:, :3], expect, atol=1e-3)
    # the same map the camera geometry uses: BEV position = camera2bev @ camera2ego^-1 @ ego position
    bev_of_ego = camera2bev(aug)[0] @ np.linalg.inv(np.asarray(sample.camera2ego[0], np.float64))
    ego = np.asarray(sample.gt_boxes, np.float64)[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    np.testing.assert_allclose(ego @ bev_of_ego[:3, :3].T + bev_of_ego[:3, 3], boxes[:, :3], atol=1e-3)


def test_targets_decode_back_to_the_ground_truth(small_dataroot):
    """Head maps written from the CenterPoint targets (target heatmap as scores, box targets at
    their cells) decode, through the ego->LiDAR move, to the ground truth: centre, size, yaw and
    velocity errors ~0. Only boxes sharing a 1.6 m cell with another are lost, so mAP < 1."""
    from bevdeploy.data import open_dataset
    from bevdeploy.eval import evaluate_detections
    from bevdeploy.plugins.bevdet.loss import sample_targets
    from bevdeploy.plugins.bevdet.model import build
    from bevdeploy.specs.run import DataSpec

    dataroot, version = small_dataroot
    ds = open_dataset(DataSpec(dataroot=dataroot, version=version, split="synth_val"), role="eval")
    model = build("tiny")
    dets = {}
    for i in range(len(ds)):
        sample = ds[i]
        heats, regs = [], []
        for t in sample_targets(model, sample):
            reg = torch.zeros(10, *t["heatmap"].shape[1:])
            reg.view(10, -1)[:, t["ind"]] = t["box"].t()
            heats.append(t["heatmap"])
            regs.append(reg)
        l2e = torch.from_numpy(np.asarray(sample.lidar2ego, np.float32))[None]
        dets[sample.token] = model.decode(torch.cat(heats)[None], torch.cat(regs)[None], l2e)
    m = evaluate_detections(dets, ds)
    assert m["mAP"] > 0.6
    assert m["tp_errors"]["ATE"] < 1e-2 and m["tp_errors"]["ASE"] < 1e-3 and m["tp_errors"]["AOE"] < 1e-2  # float32


def test_targets_follow_the_head_task_layout():
    """Targets come per head task: six CenterPoint groups for tiny, one ten-class task for r50
    (upstream's bevdet-r50 layout), the class channels in the task's own order."""
    from bevdeploy.plugins.bevdet.config import R50

    boxes = np.array([[10.0, -5.0, 0.5, 4.5, 1.9, 1.6, 0.4], [3.0, 8.0, 0.2, 0.5, 0.5, 1.7, 0.0]])
    labels = np.array([0, 7])  # car, bicycle
    six = centerpoint_targets(TINY, boxes, np.zeros((2, 2)), labels)
    one = centerpoint_targets(R50, boxes, np.zeros((2, 2)), labels)
    assert len(six) == 6 and len(one) == 1
    assert one[0]["heatmap"].shape[0] == 10 and one[0]["ind"].numel() == 2
    assert [int(t["heatmap"].eq(1).sum()) for t in six] == [1, 0, 0, 0, 1, 0]
    assert int(one[0]["heatmap"][0].eq(1).sum()) == 1 and int(one[0]["heatmap"][7].eq(1).sum()) == 1
