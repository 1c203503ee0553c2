"""The sample picture: expected size, real content, GT in green, predictions in red only when given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bevdeploy.data.types import Detections
from bevdeploy.eval import render_sample
from bevdeploy.eval.viz import PNG_SIZE, box_corners
from PIL import Image


def _colour_pixels(png: Path, rgb: tuple[int, int, int]) -> int:
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(img - np.array(rgb)).sum(axis=2) < 40).sum())


def test_render_sample_writes_the_picture(synth_all, tmp_path: Path) -> None:
    sample = synth_all[1]
    assert len(sample.gt_boxes) > 0
    gt_only = render_sample(sample, tmp_path / "gt.png")
    assert gt_only == tmp_path / "gt.png"
    with Image.open(gt_only) as im:
        assert im.size == PNG_SIZE and im.format == "PNG"
        assert np.asarray(im.convert("L")).std() > 20  # images and points, not a blank canvas
    assert _colour_pixels(gt_only, (0x22, 0xDD, 0x44)) > 500  # green GT boxes
    red_without = _colour_pixels(gt_only, (0xFF, 0x33, 0x33))  # red objects or high points only

    boxes = sample.gt_boxes.copy()
    boxes[:, 0] += 1.0
    n = len(boxes)
    scores = np.where(np.arange(n) % 2 == 0, 0.9, 0.1).astype(np.float32)
    dets = Detections(boxes, scores, sample.gt_labels.copy(), np.zeros((n, 2), np.float32))
    with_pred = render_sample(sample, tmp_path / "sub" / "pred.png", dets, score_threshold=0.5)
    assert _colour_pixels(with_pred, (0xFF, 0x33, 0x33)) > red_without + 500  # red predictions
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gt.png", "pred.png", "sub"]  # no temp files left


def test_box_corners_follow_the_box_convention() -> None:
    # l along the heading: a 4 x 2 x 1 box turned by 90 degrees spans 2 m in x and 4 m in y.
    c = box_corners(np.array([[10.0, 5.0, 1.0, 4.0, 2.0, 1.0, np.pi / 2]]))[0]
    assert np.allclose(c.min(axis=0), [9.0, 3.0, 0.5]) and np.allclose(c.max(axis=0), [11.0, 7.0, 1.5])
    assert np.allclose(c[[0, 1], :2].mean(axis=0), [10.0, 7.0])  # front face centre lies ahead (+y)
