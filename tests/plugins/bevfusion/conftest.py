"""Fixtures for the BEVFusion plugin tests: the tiny model, a synthetic Sample built in code
(six cameras looking around a LiDAR at the origin, a ground ring and two box-shaped clusters),
and its prepared inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bevdeploy.data.types import Sample
from bevdeploy.plugins.bevfusion.model import build
from bevdeploy.plugins.bevfusion.prepare import prepare

CAMERA_YAWS_DEG = (0.0, -55.0, 55.0, 180.0, 110.0, -110.0)


def camera2lidar(yaw_deg: float) -> np.ndarray:
    """Camera (x right, y down, z forward) looking horizontally along ``yaw`` from 1.5 m up."""
    a = np.deg2rad(yaw_deg)
    forward = np.array([np.cos(a), np.sin(a), 0.0])
    right = np.array([np.sin(a), -np.cos(a), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = right, down, forward
    m[:3, 3] = (0.0, 0.0, 1.5)
    return m


def synthetic_points(rng: np.random.Generator) -> np.ndarray:
    ang = rng.uniform(-np.pi, np.pi, 3000)
    r = rng.uniform(4.0, 40.0, 3000)
    ground = np.stack([r * np.cos(ang), r * np.sin(ang), np.full_like(r, -1.8)], 1)
    boxes = []
    for cx, cy in ((10.0, 2.0), (-6.0, -12.0)):
        boxes.append(rng.uniform([cx - 2, cy - 1, -1.8], [cx + 2, cy + 1, 0.0], (600, 3)))
    xyz = np.concatenate([ground, *boxes])
    extra = np.stack([rng.uniform(0, 255, len(xyz)), rng.choice([0.0, 0.05, 0.1], len(xyz))], 1)
    return np.concatenate([xyz, extra], 1).astype(np.float32)


def make_sample(seed: int = 0) -> Sample:
    rng = np.random.default_rng(seed)
    k = np.array([[1260.0, 0.0, 800.0], [0.0, 1260.0, 450.0], [0.0, 0.0, 1.0]])
    c2l = np.stack([camera2lidar(y) for y in CAMERA_YAWS_DEG])
    l2c = np.linalg.inv(c2l)
    k4 = np.eye(4)
    k4[:3, :3] = k
    images = [rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8) for _ in CAMERA_YAWS_DEG]
    eye = np.eye(4)
    return Sample(
        token=f"synthetic-{seed}", scene_token="scene", scene_name="scene-0", timestamp=0, is_first_in_scene=True,
        prev_token="", image_paths=[f"cam{i}" for i in range(6)], cam_intrinsics=np.stack([k] * 6),
        camera2ego=c2l, camera_ego2global=np.stack([eye] * 6), lidar2camera=l2c, lidar2image=k4 @ l2c,
        camera2lidar=c2l, lidar2ego=eye, ego2global=eye, points=synthetic_points(rng),
        can_bus=np.zeros(18, np.float32), delta_translation=np.zeros(3), delta_yaw_deg=0.0,
        gt_boxes=np.zeros((0, 7), np.float32), gt_velocity=np.zeros((0, 2), np.float32),
        gt_labels=np.zeros(0, np.int64), gt_names=[], gt_attributes=[], gt_num_lidar_pts=np.zeros(0, np.int64),
        _image_loader=lambda p: images[int(p[3:])],
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    return build("tiny")


@pytest.fixture(scope="module")
def sample() -> Sample:
    return make_sample()


@pytest.fixture(scope="module")
def inputs(tiny, sample) -> dict[str, torch.Tensor]:
    return prepare(tiny, sample)
