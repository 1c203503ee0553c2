"""Global LiDAR-frame augmentation keeps boxes consistent with the points inside them and with
every camera projection; the image-augmentation request reaches BEVFusion's prepare."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bevdeploy.data.augment import (
    IMG_AUG_KEY,
    LIDAR_AUG_KEY,
    AugmentConfig,
    global_transform,
    lidar_transform,
    random_augment,
)
from bevdeploy.data.nuscenes import NuScenesDataset

TRANSFORMS = [
    dict(rotate=0.7),
    dict(scale=1.08),
    dict(flip_x=True),
    dict(flip_y=True),
    dict(rotate=-2.5, scale=0.93, flip_x=True, flip_y=True),
]


@pytest.fixture(scope="module")
def sample(small_dataroot):
    root, version = small_dataroot
    return NuScenesDataset(root, version, "synth_all", sweeps=0)[1]


def _inside(points: np.ndarray, box: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """Which points lie in the box (x, y, z, l, w, h, yaw), ``tol`` metres beyond its faces allowed."""
    d = points[:, :3] - box[:3]
    c, s = math.cos(box[6]), math.sin(box[6])
    along, across = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
    return (
        (np.abs(along) <= box[3] / 2 + tol) & (np.abs(across) <= box[4] / 2 + tol) & (np.abs(d[:, 2]) <= box[5] / 2 + tol)
    )


@pytest.mark.parametrize("kw", TRANSFORMS)
def test_points_in_boxes_stay_inside(sample, kw):
    aug = global_transform(sample, lidar_transform(**kw))
    checked = 0
    for before, after in zip(sample.gt_boxes, aug.gt_boxes, strict=True):
        inside = _inside(sample.points, before)
        if inside.sum() < 5:
            continue
        # strictly inside before; after, a millimetre of float32 slack at the faces
        assert _inside(aug.points[inside], after, tol=1e-3).all()
        checked += 1
    assert checked >= 3
    np.testing.assert_allclose(aug.extra[LIDAR_AUG_KEY], lidar_transform(**kw))


@pytest.mark.parametrize("kw", TRANSFORMS)
def test_projections_unchanged(sample, kw):
    aug = global_transform(sample, lidar_transform(**kw))
    pts = np.c_[sample.points[:200, :3], np.ones(200)]
    pts_aug = np.c_[aug.points[:200, :3], np.ones(200)]
    for c in range(6):
        a, b = sample.lidar2image[c] @ pts.T, aug.lidar2image[c] @ pts_aug.T
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(aug.camera2lidar[c] @ aug.lidar2camera[c], np.eye(4), atol=1e-9)
    # the LiDAR frame still maps to the same ego coordinates
    np.testing.assert_allclose(aug.lidar2ego @ pts_aug.T, sample.lidar2ego @ pts.T, rtol=1e-4, atol=1e-3)


def test_velocity_and_heading_follow_the_transform():
    box = np.array([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3]], np.float32)
    vel = np.array([[math.cos(0.3), math.sin(0.3)]], np.float32)  # moving along its heading
    from bevdeploy.data.augment import transform_boxes

    for kw in TRANSFORMS:
        b, v = transform_boxes(box, vel, lidar_transform(**kw))
        heading = np.array([math.cos(b[0, 6]), math.sin(b[0, 6])])
        speed = np.linalg.norm(v[0])
        np.testing.assert_allclose(v[0] / speed, heading, atol=1e-5)  # still along the heading
        np.testing.assert_allclose(speed, kw.get("scale", 1.0), rtol=1e-5)


def test_random_augment_is_seeded_and_requests_image_aug(sample):
    cfg = AugmentConfig(img_resize=(0.9, 1.1), img_flip=0.5)
    a = random_augment(sample, cfg, np.random.default_rng(3))
    b = random_augment(sample, cfg, np.random.default_rng(3))
    np.testing.assert_array_equal(a.points, b.points)
    assert a.extra[IMG_AUG_KEY] == b.extra[IMG_AUG_KEY]
    assert 0.9 <= a.extra[IMG_AUG_KEY]["resize"] <= 1.1
    assert LIDAR_AUG_KEY not in sample.extra  # the input sample is untouched


def test_prepare_honours_img_aug(sample):
    """A flipped, rescaled crop: the image-augmentation matrix maps the original pixels of a LiDAR
    point to where that point's depth lands in the prepared depth image."""
    import torch
    from bevdeploy.plugins.bevfusion.model import build
    from bevdeploy.plugins.bevfusion.prepare import prepare

    model = build("tiny")
    s = global_transform(sample, lidar_transform(rotate=0.4))
    s.extra[IMG_AUG_KEY] = {"resize": 1.1, "crop_frac": (0.2, 0.8), "flip": True}
    inputs = prepare(model, s)
    plain = prepare(model, sample)
    assert inputs["img"].shape == plain["img"].shape
    aug = inputs["img_aug_matrix"][0].numpy()
    assert (aug[:, 0, 0] < 0).all()  # the flip is in every camera's matrix
    h, w = model.cfg.camera.image_size
    depth = inputs["depth"][0, :, 0]
    hits = 0
    for p in s.points[::50, :3]:
        for c in range(6):
            uvw = s.lidar2image[c] @ np.append(p, 1.0)
            if uvw[2] < 1.0:
                continue
            u, v, _, _ = aug[c] @ np.array([uvw[0] / uvw[2], uvw[1] / uvw[2], 1.0, 1.0])
            if 0 <= u < w and 0 <= v < h and depth[c, int(v), int(u)] > 0:
                hits += 1
    assert hits > 20
    assert torch.count_nonzero(inputs["depth"]) > 0


def test_img_aug_flip_moves_pixels_and_matrix_together(sample):
    import torch
    from bevdeploy.plugins.bevfusion.model import build
    from bevdeploy.plugins.bevfusion.prepare import prepare

    model = build("tiny")
    w = model.cfg.camera.image_size[1]
    out = {}
    for flip in (False, True):
        s = global_transform(sample, np.eye(4))
        s.extra[IMG_AUG_KEY] = {"resize": 1.2, "crop_frac": (0.7, 0.5), "flip": flip}
        out[flip] = prepare(model, s)
    torch.testing.assert_close(out[True]["img"], out[False]["img"].flip(-1))
    m0, m1 = out[False]["img_aug_matrix"][0].numpy(), out[True]["img_aug_matrix"][0].numpy()
    flip = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)
    flip[0, 3] = w
    np.testing.assert_allclose(m1, flip @ m0, atol=1e-4)
