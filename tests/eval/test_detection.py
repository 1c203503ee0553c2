"""nuScenes metrics through the devkit: ground truth fed back scores 1, and each kind of error
moves exactly the metric the devkit defines for it by the amount it defines."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bevdeploy import BevDeployError
from bevdeploy.data.types import DETECTION_CLASSES, Detections
from bevdeploy.eval import (
    default_attribute,
    evaluate_detections,
    evaluate_results,
    format_table,
    load_results_file,
    to_nuscenes_results,
)
from nuscenes.eval.common.utils import quaternion_yaw
from pyquaternion import Quaternion


def gt_as_detections(dataset) -> dict[str, Detections]:
    """The loader's ground truth as predictions (score 1). Boxes without a LiDAR point are left
    out: the devkit drops such GT, so predicting them would only add false positives."""
    out = {}
    for sample in (dataset[i] for i in range(len(dataset))):
        keep = sample.gt_num_lidar_pts > 0
        out[sample.token] = Detections(
            boxes=sample.gt_boxes[keep],
            scores=np.ones(int(keep.sum()), np.float32),
            labels=sample.gt_labels[keep],
            velocity=sample.gt_velocity[keep],
            attributes=[a for a, k in zip(sample.gt_attributes, keep, strict=True) if k],
        )
    return out


@pytest.fixture(scope="module")
def gt_dets(synth_all) -> dict[str, Detections]:
    return gt_as_detections(synth_all)


def jitter(dets: dict[str, Detections], boxes=None, velocity=None) -> dict[str, Detections]:
    """Apply in-place edits ``boxes(b)`` / ``velocity(v)`` to copies of every sample's arrays."""
    out = {}
    for token, d in dets.items():
        b, v = d.boxes.copy(), d.velocity.copy()
        if boxes:
            boxes(b)
        if velocity:
            velocity(v)
        out[token] = replace(d, boxes=b, velocity=v)
    return out


def matched_classes(m: dict) -> list[str]:
    return [c for c, row in m["per_class"].items() if m["num_gt_boxes"][c] > 0]


def test_ground_truth_scores_one(synth_all, gt_dets, tmp_path: Path) -> None:
    m = evaluate_detections(gt_dets, synth_all, out_dir=tmp_path)
    missing = [c for c in DETECTION_CLASSES if m["num_gt_boxes"][c] == 0]
    assert not missing, f"the tiny synthetic set lacks classes {missing}; the devkit scores them AP 0"
    assert m["mAP"] >= 0.99 and m["NDS"] >= 0.99, format_table(m)
    assert m["num_samples"] == len(synth_all)
    for row in m["per_class"].values():
        assert row["AP"] >= 0.99 and row["ATE"] < 0.01 and row["ASE"] < 0.01
    assert m["per_class"]["traffic_cone"]["AOE"] is None and m["per_class"]["barrier"]["AVE"] is None
    saved = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert saved["mAP"] == m["mAP"]
    # The written results file is a valid devkit submission that scores the same.
    results = load_results_file(tmp_path / "results_nusc.json", synth_all)
    assert evaluate_results(results, synth_all)["NDS"] == pytest.approx(m["NDS"])


def test_translation_offset_is_ate(synth_all, gt_dets) -> None:
    d = 0.7  # a match at the 1, 2 and 4 m thresholds, not at 0.5 m

    def shift(b):
        b[:, 0] += d * 0.6
        b[:, 1] += d * 0.8

    m = evaluate_detections(jitter(gt_dets, boxes=shift), synth_all)
    for c in matched_classes(m):
        row = m["per_class"][c]
        assert row["ATE"] == pytest.approx(d, abs=0.01), c
        assert row["ASE"] < 0.01
        # No match within 0.5 m; at 1, 2 and 4 m the same matches (AP below 1 only where a box
        # crossed the devkit's class range boundary when shifted).
        ap = m["ap_by_distance"][c]
        assert ap["0.5"] == 0.0 and ap["1.0"] == ap["2.0"] == ap["4.0"] >= 0.8, (c, ap)
        assert row["AP"] == pytest.approx(0.75 * ap["4.0"]), c
    assert m["tp_errors"]["ATE"] == pytest.approx(d, abs=0.02)


def test_yaw_offset_is_aoe(synth_all, gt_dets) -> None:
    def turn(b):
        b[:, 6] += 0.3

    m = evaluate_detections(jitter(gt_dets, boxes=turn), synth_all)
    assert m["mAP"] >= 0.99  # matching is by centre distance only
    for c in matched_classes(m):
        aoe = m["per_class"][c]["AOE"]
        assert aoe is None if c == "traffic_cone" else aoe == pytest.approx(0.3, abs=1e-3), c


def test_scale_change_is_one_minus_iou(synth_all, gt_dets) -> None:
    s = 1.2  # aligned boxes: IoU = 1 / s^3

    def grow(b):
        b[:, 3:6] *= s

    m = evaluate_detections(jitter(gt_dets, boxes=grow), synth_all)
    for c in matched_classes(m):
        assert m["per_class"][c]["ASE"] == pytest.approx(1 - 1 / s**3, abs=1e-4), c


def test_velocity_offset_is_ave(synth_all, gt_dets) -> None:
    def faster(v):
        v[:, 0] += 1.0

    m = evaluate_detections(jitter(gt_dets, velocity=faster), synth_all)
    for c in matched_classes(m):
        ave = m["per_class"][c]["AVE"]
        assert ave is None if c in ("traffic_cone", "barrier") else ave == pytest.approx(1.0, abs=0.02), c


def test_offset_beyond_four_metres_scores_zero(synth_all, gt_dets) -> None:
    m = evaluate_detections(
        jitter(gt_dets, boxes=lambda b: b.__setitem__((slice(None), 1), b[:, 1] + 300.0)), synth_all
    )
    assert m["mAP"] == 0.0 and m["NDS"] == 0.0
    assert all(v == 1.0 for v in m["tp_errors"].values())


def test_first_samples_only(synth_all, gt_dets) -> None:
    """A run over the first N samples is scored on those N, not on the whole split."""
    first = synth_all.sample_tokens[:3]
    subset = {t: gt_dets[t] for t in first}
    m = evaluate_detections(subset, synth_all, sample_tokens=first)
    assert m["num_samples"] == 3
    classes = [c for c, n in m["num_gt_boxes"].items() if n > 0]
    assert all(m["per_class"][c]["AP"] >= 0.99 for c in classes)
    assert m["mAP"] == pytest.approx(len(classes) / 10, abs=0.01)  # absent classes score AP 0
    whole = evaluate_detections(subset, synth_all)  # the rest of the split counts as missed
    assert whole["num_samples"] == len(synth_all) and whole["mAP"] < m["mAP"]


def test_no_detections_scores_zero(synth_all) -> None:
    m = evaluate_detections({}, synth_all)
    assert m["mAP"] == 0.0 and m["NDS"] == 0.0 and m["num_pred_boxes"] == 0


def test_conversion_to_global(synth_all, gt_dets) -> None:
    res = to_nuscenes_results(gt_dets, synth_all)
    assert set(res["results"]) == set(synth_all.sample_tokens)
    nusc = synth_all.nusc
    token = synth_all.sample_tokens[1]
    anns = [nusc.get("sample_annotation", a) for a in nusc.get("sample", token)["anns"]]
    by_pos = {tuple(np.round(a["translation"], 2)): a for a in anns}
    for box in res["results"][token]:
        ann = by_pos[tuple(np.round(box["translation"], 2))]
        assert np.allclose(box["size"], ann["size"], atol=1e-4)
        # Same heading. (Not the same quaternion: a 7-DoF LiDAR box carries no pitch/roll, so the
        # ego's tilt composes into the global rotation; the devkit scores yaw only.)
        yaw_diff = quaternion_yaw(Quaternion(box["rotation"])) - quaternion_yaw(Quaternion(ann["rotation"]))
        assert abs((yaw_diff + np.pi) % (2 * np.pi) - np.pi) < 1e-3


def test_nonfinite_boxes_are_dropped_and_counted(synth_all, gt_dets) -> None:
    token = next(t for t, d in gt_dets.items() if len(d) >= 2)
    bad = dict(gt_dets)
    b = gt_dets[token].boxes.copy()
    b[0, 0] = np.nan
    bad[token] = replace(gt_dets[token], boxes=b)
    m = evaluate_detections(bad, synth_all)
    assert m["num_dropped_nonfinite"] == 1 and m["mAP"] < 1.0 and math.isfinite(m["NDS"])


def test_caller_errors(synth_all, gt_dets) -> None:
    with pytest.raises(BevDeployError, match="not evaluated in split"):
        evaluate_detections({"no-such-token": Detections.empty()}, synth_all)
    with pytest.raises(BevDeployError, match="not in split"):
        evaluate_detections(gt_dets, synth_all, sample_tokens=["no-such-token"])
    res = to_nuscenes_results(gt_dets, synth_all)
    del res["results"][synth_all.sample_tokens[0]]
    with pytest.raises(BevDeployError, match="lack 1 evaluated sample"):
        evaluate_results(res, synth_all)
    res = to_nuscenes_results(gt_dets, synth_all)
    token = next(t for t, boxes in res["results"].items() if boxes)
    res["results"][token][0]["detection_name"] = "van"
    with pytest.raises(BevDeployError, match="unknown detection_name 'van'"):
        evaluate_results(res, synth_all)


def test_default_attributes_follow_speed() -> None:
    assert default_attribute("car", 5.0) == "vehicle.moving"
    assert default_attribute("car", 0.0) == "vehicle.parked"
    assert default_attribute("bus", 0.0) == "vehicle.stopped"
    assert default_attribute("bicycle", 3.0) == "cycle.with_rider"
    assert default_attribute("pedestrian", 0.0) == "pedestrian.standing"
    assert default_attribute("traffic_cone", 1.0) == ""


def test_format_table_matches_the_devkit_layout(synth_all, gt_dets) -> None:
    table = format_table(evaluate_detections(gt_dets, synth_all))
    lines = table.splitlines()
    assert (
        lines[0] == "All-Classes results:" and lines[1].startswith("mAP: ") and lines[2].startswith("NDS: ")
    )
    assert lines[5].split() == ["Object", "Class", "AP", "ATE", "ASE", "AOE", "AVE", "AAE"]
    cone = next(line for line in lines if line.startswith("traffic_cone"))
    assert cone.split()[-3:] == ["nan", "nan", "nan"]
    assert len(lines) == 6 + 10
