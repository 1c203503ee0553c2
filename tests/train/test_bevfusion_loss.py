"""BEVFusion's TransFusion targets: the box code is the exact inverse of the head's decode, the
heatmap peaks at box centres, and a perfect prediction is matched to its boxes at zero L1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bevdeploy.plugins.bevfusion.head import decode
from bevdeploy.plugins.bevfusion.loss import assign, draw_heatmap, encode_boxes, gaussian_radius, hull_iou
from bevdeploy.plugins.bevfusion.model import build


@pytest.fixture(scope="module")
def model():
    return build("tiny")


BOXES = np.array(
    [[10.0, -5.0, 0.5, 4.5, 1.9, 1.6, 0.3], [-20.0, 30.0, 1.0, 12.0, 2.9, 3.5, -2.5], [3.3, 44.0, -1.2, 0.6, 0.6, 1.8, 3.0]],
    np.float32,
)
VEL = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, 0.0]], np.float32)


def _outputs(code: np.ndarray, labels: list[int], k: int = 10):
    c = torch.from_numpy(code).t()[None]  # (1, 10, P)
    p = c.shape[-1]
    logits = torch.full((1, k, p), 6.0)
    return (c[:, 0:2], c[:, 2:3], c[:, 3:6], c[:, 6:8], c[:, 8:10], logits, torch.ones(1, k, p), torch.tensor([labels]))


def test_encode_decode_round_trip(model):
    code = encode_boxes(model, BOXES, VEL)
    det = decode(_outputs(code, [0, 3, 8]), model.cfg.head, model.cfg.lidar.voxel_size[:2],
                 model.cfg.lidar.point_cloud_range[:2])
    np.testing.assert_allclose(det.boxes[:, :6], BOXES[:, :6], atol=1e-4)
    dyaw = np.remainder(det.boxes[:, 6] - BOXES[:, 6] + math.pi, 2 * math.pi) - math.pi
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-5)
    np.testing.assert_allclose(det.velocity, VEL, atol=1e-6)
    np.testing.assert_array_equal(det.labels, [0, 3, 8])  # head order == DETECTION_CLASSES order here


def test_heatmap_peaks_at_centres(model):
    code = encode_boxes(model, BOXES, VEL)
    heat = draw_heatmap(model, BOXES, code, np.array([0, 3, 8]))
    assert heat.shape == (10, *model.cfg.bev_size)
    for c, label in zip(code, (0, 3, 8), strict=True):
        assert heat[label, int(c[0]), int(c[1])] == 1.0
    assert heat.sum() > 3 and heat[1].max() == 0.0  # nothing drawn for classes without boxes
    assert gaussian_radius(10.0, 4.0) > gaussian_radius(2.0, 1.0)


def test_perfect_proposals_are_matched_exactly(model):
    code = torch.from_numpy(encode_boxes(model, BOXES, VEL))
    labels = torch.tensor([0, 3, 8])
    noise = torch.from_numpy(encode_boxes(model, BOXES + np.array([15.0, -9, 0, 0, 0, 0, 0], np.float32), VEL))
    pred = torch.cat([noise, code.flip(0)])  # proposals 3..5 are the boxes in reverse order
    logits = torch.full((10, 6), -4.0)
    logits[labels, torch.tensor([5, 4, 3])] = 4.0
    rows, cols = assign(model, pred, logits, code, labels)
    pairs = dict(zip(cols.tolist(), rows.tolist(), strict=True))
    assert pairs == {0: 5, 1: 4, 2: 3}
    assert torch.allclose(hull_iou(code_boxes := torch.from_numpy(BOXES), code_boxes).diag(), torch.ones(3))


@pytest.mark.slow
def test_batched_train_forward_matches_frames_alone(model, small_dataroot):
    """train_forward on two frames (one backbone pass, ranks and bev_pool_v2 for the batch, one
    sparse tensor) gives each frame's head outputs as if it ran alone."""
    from bevdeploy.data import open_dataset
    from bevdeploy.data.augment import AugmentConfig, random_augment
    from bevdeploy.plugins.bevfusion.loss import train_forward
    from bevdeploy.plugins.bevfusion.prepare import prepare
    from bevdeploy.specs.run import DataSpec

    dataroot, version = small_dataroot
    ds = open_dataset(DataSpec(dataroot=dataroot, version=version, split="synth_val"), role="eval")
    frames = [prepare(model, random_augment(ds[i], AugmentConfig(), np.random.default_rng(i))) for i in range(2)]
    with torch.no_grad():
        both = train_forward(model, frames)
        alone = [train_forward(model, [f]) for f in frames]
    for name, value in both.items():
        if value.is_floating_point():
            for i in range(2):
                torch.testing.assert_close(value[i : i + 1], alone[i][name], rtol=1e-4, atol=1e-5)
