"""Training-time augmentation of a :class:`Sample` that keeps every quantity consistent.

Global LiDAR-frame augmentation (rotation about z, uniform scale, flips) moves the points, the
ground-truth boxes and velocities, and re-expresses every camera matrix that involves the LiDAR
frame, so that a point still projects to the same pixel: the images themselves do not change.
Image augmentation (resize, crop, horizontal flip) changes the pixels, so it is only *requested*
here (``sample.extra["img_aug"]``); the model's ``prepare`` applies it and folds it into its
image-augmentation matrix (see ``ModelSpec.loss``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .types import Sample

LIDAR_AUG_KEY = "lidar_aug"
IMG_AUG_KEY = "img_aug"
TARGETS_KEY = "targets"  # a model's loss targets, drawn by the trainer's workers (ModelSpec.targets)


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (mit-han-lab's nuScenes training values by default)."""

    rotate: tuple[float, float] = (-math.pi / 4, math.pi / 4)  # radians, uniform
    scale: tuple[float, float] = (0.9, 1.1)
    flip_x: float = 0.5  # probability of mirroring y -> -y (flip about the x axis)
    flip_y: float = 0.5  # probability of mirroring x -> -x
    img_resize: tuple[float, float] | None = None  # factor on the model's test-time resize; None: off
    img_flip: float = 0.0


def lidar_transform(rotate: float = 0.0, scale: float = 1.0, flip_x: bool = False, flip_y: bool = False) -> np.ndarray:
    """The 4x4 map of old LiDAR coordinates to augmented ones: rotate about z, scale, then flip."""
    c, s = math.cos(rotate), math.sin(rotate)
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    m[:3, :3] *= scale
    if flip_x:
        m[1] *= -1.0
    if flip_y:
        m[0] *= -1.0
    return m


def transform_boxes(boxes: np.ndarray, velocity: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x, y, z, l, w, h, yaw) and velocities (vx, vy) under ``m`` (a rotation about z times
    a uniform scale, possibly mirrored). The heading follows the image of the box's +l axis."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    velocity = np.asarray(velocity, dtype=np.float64).reshape(-1, 2)
    lin = m[:3, :3]
    scale = abs(np.linalg.det(lin)) ** (1.0 / 3.0)
    out = boxes.copy()
    out[:, :3] = boxes[:, :3] @ lin.T + m[:3, 3]
    out[:, 3:6] = boxes[:, 3:6] * scale
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], axis=1) @ lin[:2, :2].T
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    out[:, 6] = np.remainder(yaw + np.pi, 2 * np.pi) - np.pi
    vel = velocity @ lin[:2, :2].T
    return out.astype(np.float32), vel.astype(np.float32)


def global_transform(sample: Sample, m: np.ndarray) -> Sample:
    """A copy of ``sample`` in the augmented LiDAR frame ``x' = m @ x``.

    Points, boxes and velocities move; ``lidar2camera``/``lidar2image`` become ``... @ inv(m)``,
    ``camera2lidar`` becomes ``m @ ...`` and ``lidar2ego`` ``lidar2ego @ inv(m)``, so projections are
    unchanged. ``extra['lidar_aug']`` accumulates ``m`` (the composite applied so far)."""
    m = np.asarray(m, dtype=np.float64)
    inv = np.linalg.inv(m)
    pts = np.array(sample.points, dtype=np.float32, copy=True)
    pts[:, :3] = (pts[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
    boxes, vel = transform_boxes(sample.gt_boxes, sample.gt_velocity, m)
    extra = dict(sample.extra)
    extra[LIDAR_AUG_KEY] = m @ np.asarray(extra.get(LIDAR_AUG_KEY, np.eye(4)), dtype=np.float64)
    return dataclasses.replace(
        sample,
        points=pts,
        gt_boxes=boxes,
        gt_velocity=vel,
        lidar2camera=np.asarray(sample.lidar2camera) @ inv,
        lidar2image=np.asarray(sample.lidar2image) @ inv,
        camera2lidar=m @ np.asarray(sample.camera2lidar),
        lidar2ego=np.asarray(sample.lidar2ego) @ inv,
        extra=extra,
    )


def random_augment(sample: Sample, cfg: AugmentConfig, rng: np.random.Generator) -> Sample:
    """``sample`` with a random global transform and, if configured, a random image-augmentation
    request: a resize factor on the model's test-time scale, a horizontal crop position
    (``crop_frac``, so the model's ``prepare`` keeps the window inside the resized image whatever
    its input size) and a flip."""
    m = lidar_transform(
        rotate=float(rng.uniform(*cfg.rotate)),
        scale=float(rng.uniform(*cfg.scale)),
        flip_x=bool(rng.random() < cfg.flip_x),
        flip_y=bool(rng.random() < cfg.flip_y),
    )
    out = global_transform(sample, m)
    if cfg.img_resize is not None or cfg.img_flip > 0:
        lo, hi = cfg.img_resize or (1.0, 1.0)
        out.extra[IMG_AUG_KEY] = {
            "resize": float(rng.uniform(lo, hi)),
            "crop_frac": (float(rng.random()), 1.0),  # horizontal position, bottom-aligned like the test crop
            "flip": bool(rng.random() < cfg.img_flip),
        }
    return out
