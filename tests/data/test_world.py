"""The synthetic world: road coordinates invert, objects never overlap, every class appears."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bevdeploy.data.lidar_sim import box_corners
from bevdeploy.data.synth_world import Road, build_world

DURATION = 9.5  # s, a 20-sample scene


@pytest.mark.parametrize("curvature", [0.0, 1 / 150, -1 / 300])
def test_road_coordinates_round_trip(curvature: float) -> None:
    road = Road(np.array([300.0, -20.0]), 2.1, curvature)
    s, d = np.array([-60.0, 0.0, 15.0, 140.0]), np.array([-12.0, 0.0, 3.5, 9.6])
    s2, d2 = road.to_sd(road.point(s, d))
    np.testing.assert_allclose(s2, s, atol=1e-9)
    np.testing.assert_allclose(d2, d, atol=1e-9)
    h = road.heading_at(s[:1])  # +d is to the left of the driving direction
    left = road.point(s[:1], np.array([1.0])) - road.point(s[:1], np.array([0.0]))
    np.testing.assert_allclose(left[0], [-np.sin(h[0]), np.cos(h[0])], atol=1e-9)


def test_objects_never_overlap() -> None:
    for index in range(4):
        world = build_world(np.random.default_rng([0, index]), DURATION)
        annotated = world.arrays["cls"] >= 0
        for t in np.linspace(0, DURATION, 20):
            boxes = world.boxes_at(t)[annotated]
            feet = np.ascontiguousarray(box_corners(boxes)[:, [0, 4, 6, 2], :2], dtype=np.float32)
            reach = 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
            dist = np.linalg.norm(boxes[:, None, :2] - boxes[None, :, :2], axis=-1)
            for a, b in zip(*np.nonzero(np.triu(dist < reach[:, None] + reach[None, :], 1)), strict=True):
                area, _ = cv2.intersectConvexConvex(feet[a], feet[b])
                assert area < 1e-6, (index, t, a, b, area)


def test_every_class_in_every_scene() -> None:
    for index in range(10):
        world = build_world(np.random.default_rng([3, index]), DURATION)
        cls = world.arrays["cls"]
        assert np.bincount(cls[cls >= 0], minlength=10).min() >= 2, index
