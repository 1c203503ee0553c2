"""nuScenes detection metrics (mAP, NDS, per-class AP and TP errors) through the official devkit.

Detections arrive in the LiDAR frame of each key frame (see :mod:`bevdeploy.data.types`); the
devkit scores boxes in the global frame, so they are converted with the same ``calibrated_sensor``
and ``ego_pose`` records of the LIDAR_TOP sample_data that the devkit uses for its range filter.
The scoring itself is the devkit's ``DetectionEval`` with the ``detection_cvpr_2019`` config.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pyquaternion import Quaternion

from ..data.types import DETECTION_CLASSES, Detections
from ..errors import BevDeployError
from ._io import atomic_write_json, finite_or_none
from .results import MAX_BOXES_PER_SAMPLE, load_results_file, validate_results

__all__ = [
    "DEVKIT_CONFIG",
    "TP_METRICS",
    "default_attribute",
    "evaluate_detections",
    "evaluate_results",
    "format_table",
    "lidar_poses",
    "load_results_file",
    "to_nuscenes_results",
]

DEVKIT_CONFIG = "detection_cvpr_2019"
TP_METRICS: dict[str, str] = {
    "trans_err": "ATE",
    "scale_err": "ASE",
    "orient_err": "AOE",
    "vel_err": "AVE",
    "attr_err": "AAE",
}
"""The devkit's TP error names and the short names used in tables and reports."""

MOVING_SPEED = 0.2
"""m/s above which a box without a predicted attribute counts as moving (mmdet3d's threshold)."""
MIN_SIZE = 1e-3
"""Sizes are clamped to this (metres): the devkit asserts sizes > 0; a degenerate box then scores
the worst scale error instead of aborting the evaluation."""

_VEHICLES = ("car", "truck", "bus", "trailer", "construction_vehicle")
_CYCLES = ("bicycle", "motorcycle")
# The attribute a class gets when the model predicts none, by motion (mmdet3d's defaults).
_ATTR_MOVING = {c: "vehicle.moving" for c in _VEHICLES} | {c: "cycle.with_rider" for c in _CYCLES}
_ATTR_MOVING |= {"pedestrian": "pedestrian.moving", "barrier": "", "traffic_cone": ""}
_ATTR_STILL = {c: "vehicle.parked" for c in _VEHICLES} | {c: "cycle.without_rider" for c in _CYCLES}
_ATTR_STILL |= {
    "bus": "vehicle.stopped",
    "pedestrian": "pedestrian.standing",
    "barrier": "",
    "traffic_cone": "",
}


def default_attribute(name: str, speed: float) -> str:
    """The nuScenes attribute for a box of class ``name`` moving at ``speed`` m/s, used when the
    model predicts no attribute (AAE then measures how well motion state follows velocity)."""
    table = _ATTR_MOVING if speed > MOVING_SPEED else _ATTR_STILL
    return table[name]


def lidar_poses(nusc: Any, sample_token: str) -> tuple[np.ndarray, np.ndarray]:
    """(lidar2ego, ego2global) 4x4 of a sample's LIDAR_TOP key frame, from the devkit's tables."""
    from nuscenes.utils.geometry_utils import transform_matrix

    sample = nusc.get("sample", sample_token)
    if "LIDAR_TOP" not in sample["data"]:
        raise BevDeployError(
            f"sample {sample_token} has no LIDAR_TOP key frame; the nuScenes metrics need one per sample"
        )
    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    lidar2ego = transform_matrix(cs["translation"], Quaternion(cs["rotation"]))
    ego2global = transform_matrix(pose["translation"], Quaternion(pose["rotation"]))
    return lidar2ego, ego2global


def _valid_rows(det: Detections) -> np.ndarray:
    """Rows whose score, centre, size and yaw are finite (a broken INT8 model can emit NaN)."""
    ok = np.isfinite(det.scores) & np.isfinite(det.boxes).all(axis=1)
    return np.nonzero(ok)[0]


def boxes_to_global(
    det: Detections, lidar2ego: np.ndarray, ego2global: np.ndarray, sample_token: str
) -> tuple[list[dict], int]:
    """One sample's detections as devkit result boxes in the global frame.

    Returns the boxes (highest score first, at most the devkit's 500) and the number of boxes
    dropped because a value was not finite. Non-finite velocities are scored as zero velocity.
    """
    if len(det) and (det.labels.min() < 0 or det.labels.max() >= len(DETECTION_CLASSES)):
        raise ValueError(
            f"detection labels must index DETECTION_CLASSES, got {sorted(set(det.labels.tolist()))}"
        )
    if det.attributes is not None and len(det.attributes) != len(det):
        raise ValueError(f"{len(det.attributes)} attributes for {len(det)} detections")
    keep = _valid_rows(det)
    dropped = len(det) - len(keep)
    keep = keep[np.argsort(-det.scores[keep], kind="stable")][:MAX_BOXES_PER_SAMPLE]
    lidar2global = ego2global @ lidar2ego
    rot = lidar2global[:3, :3]
    u, _, vt = np.linalg.svd(rot)  # re-orthonormalise: poses read from JSON carry rounding
    q_l2g = Quaternion(matrix=u @ vt)
    boxes = det.boxes[keep].astype(np.float64)
    centres = boxes[:, :3] @ rot.T + lidar2global[:3, 3]
    vel = np.nan_to_num(det.velocity[keep].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    vel_g = np.concatenate([vel, np.zeros((len(vel), 1))], axis=1) @ rot.T
    out = []
    for i, row in enumerate(keep):
        name = DETECTION_CLASSES[int(det.labels[row])]
        attr = det.attributes[row] if det.attributes is not None else None
        if attr is None:
            attr = default_attribute(name, float(np.hypot(vel_g[i, 0], vel_g[i, 1])))
        q = q_l2g * Quaternion(axis=[0.0, 0.0, 1.0], radians=float(boxes[i, 6]))
        length, width, height = np.maximum(boxes[i, 3:6], MIN_SIZE)
        out.append(
            {
                "sample_token": sample_token,
                "translation": centres[i].tolist(),
                "size": [float(width), float(length), float(height)],
                "rotation": [float(v) for v in q.elements],
                "velocity": vel_g[i, :2].tolist(),
                "detection_name": name,
                "detection_score": float(det.scores[row]),
                "attribute_name": attr,
            }
        )
    return out, dropped


def _evaluated_tokens(dataset: Any, sample_tokens: Sequence[str] | None) -> list[str]:
    """The samples scored: ``sample_tokens`` (e.g. the first N of a split) or the whole dataset."""
    if sample_tokens is None:
        return list(dataset.sample_tokens)
    tokens = list(sample_tokens)
    outside = set(tokens) - set(dataset.sample_tokens)
    if outside:
        raise BevDeployError(
            f"{len(outside)} sample(s) to evaluate are not in split '{dataset.split}' (e.g. {sorted(outside)[0]}); "
            "evaluate on the split the detections were computed on"
        )
    return tokens


def to_nuscenes_results(
    detections: dict[str, Detections], dataset: Any, sample_tokens: Sequence[str] | None = None
) -> dict:
    """The devkit's results JSON for ``detections`` (by sample token) over the evaluated samples.

    The evaluated samples are ``sample_tokens`` or, by default, all of ``dataset.sample_tokens``;
    each is present (an empty list when it has no detections). Detections for a token outside
    them are a caller error.
    """
    tokens = _evaluated_tokens(dataset, sample_tokens)
    unknown = set(detections) - set(tokens)
    if unknown:
        raise BevDeployError(
            f"detections given for {len(unknown)} sample(s) not evaluated in split '{dataset.split}' "
            f"(e.g. {sorted(unknown)[0]}); evaluate on the split the detections were computed on"
        )
    results: dict[str, list[dict]] = {}
    dropped = 0
    for token in tokens:
        det = detections.get(token)
        if det is None or len(det) == 0:
            results[token] = []
            continue
        lidar2ego, ego2global = lidar_poses(dataset.nusc, token)
        results[token], n = boxes_to_global(det, lidar2ego, ego2global, token)
        dropped += n
    meta = {
        "use_camera": False,
        "use_lidar": False,
        "use_radar": False,
        "use_map": False,
        "use_external": False,
        "num_dropped_nonfinite": dropped,
    }
    return {"meta": meta, "results": results}


@contextlib.contextmanager
def _quiet():
    """Swallow the devkit's prints and tqdm bars; our caller prints the table it wants."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _build_devkit_eval(nusc: Any, results: dict, split: str, tokens: list[str]) -> Any:
    """The devkit's ``DetectionEval`` over an explicit list of sample tokens.

    This is the devkit's own custom-split path (``load_gt_of_sample_tokens``, deserialised
    predictions, ``add_center_dist``, ``filter_eval_boxes``), with the tokens given by the dataset
    instead of re-derived from a split name: the dataset has already resolved its split (a devkit
    name or one from splits.json, possibly cut to the first N samples), and the devkit would
    resolve a custom split named like a predefined one ('val') to the official scenes.
    ``evaluate()`` is the devkit's, unchanged.
    """
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes, load_gt_of_sample_tokens
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.eval.detection.evaluate import DetectionEval

    ev = DetectionEval.__new__(DetectionEval)
    ev.nusc, ev.cfg, ev.eval_set, ev.verbose = nusc, config_factory(DEVKIT_CONFIG), split, False
    ev.result_path, ev.output_dir, ev.meta = None, None, results.get("meta", {})
    ev.pred_boxes = EvalBoxes.deserialize({t: results["results"][t] for t in tokens}, DetectionBox)
    ev.gt_boxes = load_gt_of_sample_tokens(nusc, tokens, DetectionBox, verbose=False)
    if not ev.gt_boxes.all:
        raise BevDeployError(
            f"split '{split}' has no ground-truth boxes of the detection classes; evaluate a split with annotations"
        )
    ev.pred_boxes = add_center_dist(nusc, ev.pred_boxes)
    ev.gt_boxes = add_center_dist(nusc, ev.gt_boxes)
    if ev.pred_boxes.all:  # the devkit's filter needs one box to learn the box type
        ev.pred_boxes = filter_eval_boxes(nusc, ev.pred_boxes, ev.cfg.class_range, verbose=False)
    ev.gt_boxes = filter_eval_boxes(nusc, ev.gt_boxes, ev.cfg.class_range, verbose=False)
    ev.sample_tokens = ev.gt_boxes.sample_tokens
    return ev


def _run_devkit(results: dict, nusc: Any, split: str, tokens: list[str]) -> tuple[Any, Any, Any]:
    """Run the devkit's detection evaluation of ``results`` over ``tokens``.

    Returns (DetectionMetrics, DetectionMetricDataList, the DetectionEval after filtering).
    """
    with _quiet():
        ev = _build_devkit_eval(nusc, results, split, tokens)
        metrics, md_list = ev.evaluate()
    return metrics, md_list, ev


def _summarize(metrics: Any, ev: Any, split: str) -> dict[str, Any]:
    """The devkit's metrics as a JSON-safe dict (NaN -> None), classes in the devkit's order."""
    per_class: dict[str, dict[str, float | None]] = {}
    ap_by_distance: dict[str, dict[str, float | None]] = {}
    mean_aps = metrics.mean_dist_aps
    for name in metrics.cfg.class_names:
        row = {"AP": finite_or_none(mean_aps[name])}
        for key, short in TP_METRICS.items():
            row[short] = finite_or_none(metrics.get_label_tp(name, key))
        per_class[name] = row
        ap_by_distance[name] = {
            str(d): finite_or_none(metrics.get_label_ap(name, d)) for d in metrics.cfg.dist_ths
        }
    counts = {n: 0 for n in metrics.cfg.class_names}
    for box in ev.gt_boxes.all:
        counts[box.detection_name] += 1
    return {
        "mAP": finite_or_none(metrics.mean_ap),
        "NDS": finite_or_none(metrics.nd_score),
        "per_class": per_class,
        "tp_errors": {TP_METRICS[k]: finite_or_none(v) for k, v in metrics.tp_errors.items()},
        "tp_scores": {TP_METRICS[k]: finite_or_none(v) for k, v in metrics.tp_scores.items()},
        "ap_by_distance": ap_by_distance,
        "num_samples": len(ev.sample_tokens),
        "num_gt_boxes": counts,
        "num_pred_boxes": len(ev.pred_boxes.all),
        "split": split,
        "config": DEVKIT_CONFIG,
    }


def evaluate_results(
    results: dict, dataset: Any, out_dir: Path | None = None, sample_tokens: Sequence[str] | None = None
) -> dict[str, Any]:
    """Score a devkit results dict (global frame) against ``dataset``'s ground truth.

    Only ``sample_tokens`` (default: all of ``dataset.sample_tokens``) are evaluated, on both
    sides; results for other samples are ignored.
    """
    validate_results(results, where="results")
    tokens = _evaluated_tokens(dataset, sample_tokens)
    missing = [t for t in tokens if t not in results["results"]]
    if missing:
        raise BevDeployError(
            f"results lack {len(missing)} evaluated sample(s) (e.g. {missing[0]}); include every sample, [] when empty"
        )
    for t in tokens:
        lidar_poses(dataset.nusc, t)  # every evaluated sample needs its LIDAR_TOP key frame
    metrics, _, ev = _run_devkit(results, dataset.nusc, dataset.split, tokens)
    summary = _summarize(metrics, ev, dataset.split)
    summary["num_dropped_nonfinite"] = int(results.get("meta", {}).get("num_dropped_nonfinite", 0))
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "results_nusc.json", _json_safe_results(results))
        atomic_write_json(out_dir / "metrics_summary.json", summary)
    return summary


def _json_safe_results(results: dict) -> dict:
    """``results`` with non-finite velocities written as 0 (strict JSON has no NaN)."""

    def fix(box: dict) -> dict:
        return {**box, "velocity": [v if math.isfinite(v) else 0.0 for v in box["velocity"]]}

    return {
        "meta": results.get("meta", {}),
        "results": {t: [fix(b) for b in bs] for t, bs in results["results"].items()},
    }


def evaluate_detections(
    detections: dict[str, Detections],
    dataset: Any,
    out_dir: Path | None = None,
    sample_tokens: Sequence[str] | None = None,
) -> dict[str, Any]:
    """nuScenes detection metrics of LiDAR-frame ``detections`` (by sample token) on ``dataset``.

    The samples scored are ``sample_tokens`` or, by default, every sample of ``dataset`` (a
    sample without an entry in ``detections`` counts as having detected nothing); pass the
    tokens actually inferred when only the first N samples were run.

    Returns ``{"mAP", "NDS", "per_class": {cls: {"AP", "ATE", "ASE", "AOE", "AVE", "AAE"}},
    "tp_errors", "tp_scores", "ap_by_distance", "num_samples", "num_gt_boxes", "num_pred_boxes",
    "num_dropped_nonfinite", "split", "config"}`` with NaN as None. With ``out_dir``, also writes
    ``results_nusc.json`` and ``metrics_summary.json`` there (atomically).
    """
    tokens = _evaluated_tokens(dataset, sample_tokens)
    return evaluate_results(to_nuscenes_results(detections, dataset, tokens), dataset, out_dir, tokens)


def _fmt(x: float | None) -> str:
    return "nan" if x is None else f"{x:.3f}"


def format_table(metrics: dict[str, Any]) -> str:
    """The metrics as the devkit/mmdet3d text table: mAP and NDS, then AP and TP errors per class."""
    lines = ["All-Classes results:"]
    lines.append(f"mAP: {_fmt4(metrics['mAP'])}")
    lines.append(f"NDS: {_fmt4(metrics['NDS'])}")
    lines.append("")
    lines.append("Per-class results:")
    cols = ["AP", *TP_METRICS.values()]
    lines.append(f"{'Object Class':<22}" + "".join(f"{c:<8}" for c in cols).rstrip())
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<22}" + "".join(f"{_fmt(row[c]):<8}" for c in cols).rstrip())
    return "\n".join(lines)


def _fmt4(x: float | None) -> str:
    return "nan" if x is None else f"{x:.4f}"
