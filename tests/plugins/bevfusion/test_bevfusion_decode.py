"""Decode conventions and the head's proposal selection on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bevdeploy.data.types import DETECTION_CLASSES
from bevdeploy.plugins.bevfusion.config import get_config
from bevdeploy.plugins.bevfusion.head import decode


def _outputs(p: int = 3) -> list[torch.Tensor]:
    center = torch.zeros(1, 2, p)
    height, dim, rot, vel = torch.zeros(1, 1, p), torch.zeros(1, 3, p), torch.zeros(1, 2, p), torch.zeros(1, 2, p)
    rot[0, 1] = 1.0  # yaw_mm = 0 for the unused proposals
    logits = torch.full((1, 10, p), -20.0)
    return [center, height, dim, rot, vel, logits, torch.ones(1, 10, p), torch.zeros(1, p, dtype=torch.long)]


def test_peak_decodes_to_box_in_our_convention():
    cfg = get_config("tiny")
    center, height, dim, rot, vel, logits, score, labels = _outputs()
    # proposal 0: a truck at grid cell (40.5, 20.5), gravity centre z 0.3, mmdet3d dims (w=2, l=5, h=3)
    center[0, :, 0] = torch.tensor([40.5, 20.5])
    height[0, 0, 0] = 0.3
    dim[0, :, 0] = torch.log(torch.tensor([2.0, 5.0, 3.0]))
    yaw_mm = 0.4
    rot[0, :, 0] = torch.tensor([math.sin(yaw_mm), math.cos(yaw_mm)])
    vel[0, :, 0] = torch.tensor([1.5, -0.5])
    logits[0, 1, 0] = 3.0  # class 1 = truck in the head's order
    labels[0, 0] = 1
    score[0, 1, 0] = 0.9
    det = decode([center, height, dim, rot, vel, logits, score, labels], cfg.head, (0.2, 0.2), (-51.2, -51.2))
    i = int(np.argmax(det.scores))
    cell = 8 * 0.2
    expected = [40.5 * cell - 51.2, 20.5 * cell - 51.2, 0.3, 5.0, 2.0, 3.0, -yaw_mm - math.pi / 2]
    np.testing.assert_allclose(det.boxes[i], expected, rtol=1e-5, atol=1e-5)
    assert det.scores[i] == pytest.approx(0.9 / (1 + math.exp(-3.0)), rel=1e-5)
    assert DETECTION_CLASSES[det.labels[i]] == "truck"
    np.testing.assert_allclose(det.velocity[i], [1.5, -0.5])


def test_range_filter_and_yaw_wrap():
    cfg = get_config("r50")
    center, height, dim, rot, vel, logits, score, labels = _outputs()
    logits[:] = 0.0
    center[0, :, 0] = torch.tensor([200.0, 90.0])  # x = 200 * 0.6 - 54 = 66 m, beyond the 61.2 m post range
    center[0, :, 1] = torch.tensor([90.0, 90.0])
    rot[0, :, 1] = torch.tensor([math.sin(-2.0), math.cos(-2.0)])  # -(-2) - pi/2 = 0.43 stays
    center[0, :, 2] = torch.tensor([90.0, 90.0])
    rot[0, :, 2] = torch.tensor([math.sin(2.0), math.cos(2.0)])  # -2 - pi/2 wraps to 2*pi - 3.57
    det = decode([center, height, dim, rot, vel, logits, score, labels], cfg.head, (0.075, 0.075), (-54.0, -54.0))
    assert len(det) == 2
    np.testing.assert_allclose(det.boxes[:, 0], [0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(det.boxes[:, 6], [2.0 - math.pi / 2, 2 * math.pi - 2.0 - math.pi / 2], atol=1e-5)


def test_head_selects_local_maxima(tiny):
    head = tiny.heads["object"]
    hm = torch.full((1, 10, 8, 8), 0.1)
    hm[0, 0, 3, 4] = 0.9
    hm[0, 0, 3, 5] = 0.8  # next to a higher peak: suppressed by the 3x3 local maximum
    hm[0, 8, 6, 6] = 0.7  # pedestrian: no suppression
    hm[0, 8, 6, 5] = 0.6
    hm[0, 2, 0, 0] = 0.95  # border cells are never peaks (official zero-filled border)
    peaks = head._peaks(hm)
    assert peaks[0, 0, 3, 4] == pytest.approx(0.9) and peaks[0, 0, 3, 5] == 0
    assert peaks[0, 8, 6, 5] == pytest.approx(0.6) and peaks[0, 2, 0, 0] == 0
