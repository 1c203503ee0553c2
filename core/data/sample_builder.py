"""Assemble a :class:`Sample` from devkit records: sensor matrices, multi-sweep points in the
key frame's LiDAR frame, CAN-bus-style ego motion, and ground truth in the LiDAR frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BevDeployError
from .geometry import make_transform, matrix_to_quat, quat_to_matrix
from .types import CAMERAS, DETECTION_CLASSES, Sample

LIDAR = "LIDAR_TOP"


def _pose(record: dict) -> np.ndarray:
    return make_transform(quat_to_matrix(record["rotation"]), np.asarray(record["translation"], np.float64))


def _yaw(m: np.ndarray) -> float:
    return float(np.arctan2(m[1, 0], m[0, 0]))


def _sensor(nusc, sd_token: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """(sample_data record, sensor2ego, ego2global)."""
    sd = nusc.get("sample_data", sd_token)
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return sd, _pose(cs), _pose(nusc.get("ego_pose", sd["ego_pose_token"]))


def build_sample(nusc, record: dict, sweeps: int) -> Sample:
    root = Path(nusc.dataroot)
    if LIDAR not in record["data"]:
        raise BevDeployError(
            f"sample {record['token']} has no {LIDAR} key frame; evaluation needs it, use a split whose samples have one"
        )
    lidar_sd, lidar2ego, ego2global = _sensor(nusc, record["data"][LIDAR])
    lidar2global = ego2global @ lidar2ego
    global2lidar = np.linalg.inv(lidar2global)
    cams = _cameras(nusc, record, root, lidar2global)
    scene = nusc.get("scene", record["scene_token"])
    can_bus, delta_t, delta_yaw = _ego_motion(nusc, record, ego2global)
    gt = _ground_truth(nusc, record, global2lidar)
    return Sample(
        token=record["token"],
        scene_token=record["scene_token"],
        scene_name=scene["name"],
        timestamp=int(record["timestamp"]),
        is_first_in_scene=record["prev"] == "",
        prev_token=record["prev"],
        image_paths=cams["paths"],
        cam_intrinsics=cams["intrinsics"],
        camera2ego=cams["camera2ego"],
        camera_ego2global=cams["ego2global"],
        lidar2camera=cams["lidar2camera"],
        lidar2image=cams["lidar2image"],
        camera2lidar=cams["camera2lidar"],
        lidar2ego=lidar2ego,
        ego2global=ego2global,
        points=_points(nusc, root, lidar_sd, lidar2global, sweeps),
        can_bus=can_bus,
        delta_translation=delta_t,
        delta_yaw_deg=delta_yaw,
        gt_boxes=gt["boxes"],
        gt_velocity=gt["velocity"],
        gt_labels=gt["labels"],
        gt_names=gt["names"],
        gt_attributes=gt["attributes"],
        gt_num_lidar_pts=gt["num_lidar_pts"],
        extra={
            "lidar_token": lidar_sd["token"],
            "lidar_path": str(root / lidar_sd["filename"]),
            "ann_tokens": gt["tokens"],
            "visibility": gt["visibility"],
        },
    )


def _cameras(nusc, record: dict, root: Path, lidar2global: np.ndarray) -> dict:
    out: dict[str, list] = {k: [] for k in ("paths", "intrinsics", "camera2ego", "ego2global",
                                            "lidar2camera", "lidar2image", "camera2lidar")}
    for channel in CAMERAS:
        if channel not in record["data"]:
            raise BevDeployError(
                f"sample {record['token']} has no {channel} image; camera models need all six, use a complete dataroot"
            )
        sd, cam2ego, cam_ego2global = _sensor(nusc, record["data"][channel])
        k = np.asarray(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"], np.float64)
        # Through global: the camera fired at a slightly different time (and ego pose) than the LiDAR.
        lidar2camera = np.linalg.inv(cam_ego2global @ cam2ego) @ lidar2global
        viewpad = np.eye(4)
        viewpad[:3, :3] = k
        out["paths"].append(str(root / sd["filename"]))
        out["intrinsics"].append(k)
        out["camera2ego"].append(cam2ego)
        out["ego2global"].append(cam_ego2global)
        out["lidar2camera"].append(lidar2camera)
        out["lidar2image"].append(viewpad @ lidar2camera)
        out["camera2lidar"].append(np.linalg.inv(lidar2camera))
    return {k: (v if k == "paths" else np.stack(v)) for k, v in out.items()}


def _points(nusc, root: Path, lidar_sd: dict, lidar2global: np.ndarray, sweeps: int) -> np.ndarray:
    """Key-frame points plus up to ``sweeps`` previous sweeps, in the key frame's LiDAR frame,
    with the time lag (s) as the 5th column (the file's ring index is dropped)."""
    from .nuscenes import load_points

    key = load_points(root / lidar_sd["filename"]).copy()
    key[:, 4] = 0.0
    parts = [key]
    global2lidar = np.linalg.inv(lidar2global)
    prev = lidar_sd["prev"]
    for _ in range(sweeps):
        if not prev:
            break
        sd, s2e, e2g = _sensor(nusc, prev)
        pts = load_points(root / sd["filename"]).copy()
        m = global2lidar @ e2g @ s2e
        pts[:, :3] = (pts[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
        pts[:, 4] = (lidar_sd["timestamp"] - sd["timestamp"]) / 1e6
        parts.append(pts)
        prev = sd["prev"]
    return np.concatenate(parts).astype(np.float32)


def _lidar_pose(nusc, sample_token: str) -> tuple[np.ndarray, int]:
    record = nusc.get("sample", sample_token)
    if LIDAR not in record["data"]:
        raise BevDeployError(f"sample {sample_token} has no {LIDAR} key frame; use a complete dataroot")
    sd, _, e2g = _sensor(nusc, record["data"][LIDAR])
    return e2g, sd["timestamp"]


def _ego_motion(nusc, record: dict, ego2global: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """BEVFormer's 18-value can_bus, derived from ego poses (the CAN expansion is not needed):
    translation, rotation wxyz, acceleration, angular rate and velocity (ego frame), yaw rad/deg."""
    t_now = nusc.get("sample_data", record["data"][LIDAR])["timestamp"]
    neighbours = [(ego2global, t_now)]
    prev = _lidar_pose(nusc, record["prev"]) if record["prev"] else None
    nxt = _lidar_pose(nusc, record["next"]) if record["next"] else None
    a, b = prev or neighbours[0], nxt or neighbours[0]
    dt = (b[1] - a[1]) / 1e6
    rot = ego2global[:3, :3]
    vel_g = (b[0][:3, 3] - a[0][:3, 3]) / dt if dt > 0 else np.zeros(3)
    yaw_rate = _wrap(_yaw(b[0]) - _yaw(a[0])) / dt if dt > 0 else 0.0
    accel_g = np.zeros(3)
    if prev and nxt and dt > 0:
        v1 = (ego2global[:3, 3] - prev[0][:3, 3]) / ((t_now - prev[1]) / 1e6)
        v2 = (nxt[0][:3, 3] - ego2global[:3, 3]) / ((nxt[1] - t_now) / 1e6)
        accel_g = (v2 - v1) / (dt / 2)
    yaw = _yaw(ego2global)
    yaw_deg = np.degrees(yaw) % 360.0
    can_bus = np.concatenate([
        ego2global[:3, 3], matrix_to_quat(rot), rot.T @ accel_g, [0.0, 0.0, yaw_rate], rot.T @ vel_g,
        [np.radians(yaw_deg), yaw_deg],
    ]).astype(np.float32)
    if prev is None:
        return can_bus, np.zeros(3), 0.0
    delta = ego2global[:3, 3] - prev[0][:3, 3]
    return can_bus, delta, float(np.degrees(_wrap(yaw - _yaw(prev[0]))))


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def _ground_truth(nusc, record: dict, global2lidar: np.ndarray) -> dict:
    from nuscenes.eval.detection.utils import category_to_detection_name

    rows: dict[str, list] = {k: [] for k in ("boxes", "velocity", "labels", "names", "attributes",
                                             "num_lidar_pts", "tokens", "visibility")}
    rot = global2lidar[:3, :3]
    for tok in record["anns"]:
        ann = nusc.get("sample_annotation", tok)
        name = category_to_detection_name(ann["category_name"])
        if name is None:
            continue
        centre = global2lidar[:3, :3] @ np.asarray(ann["translation"]) + global2lidar[:3, 3]
        yaw = _yaw(rot @ quat_to_matrix(ann["rotation"]))
        w, length, h = ann["size"]
        vel = nusc.box_velocity(tok)
        vel = np.where(np.isnan(vel), 0.0, vel)
        attrs = ann["attribute_tokens"]
        rows["boxes"].append([*centre, length, w, h, yaw])
        rows["velocity"].append((rot @ vel)[:2])
        rows["labels"].append(DETECTION_CLASSES.index(name))
        rows["names"].append(name)
        rows["attributes"].append(nusc.get("attribute", attrs[0])["name"] if attrs else "")
        rows["num_lidar_pts"].append(ann["num_lidar_pts"])
        rows["tokens"].append(tok)
        rows["visibility"].append(ann["visibility_token"])
    return {
        "boxes": np.asarray(rows["boxes"], np.float32).reshape(-1, 7),
        "velocity": np.asarray(rows["velocity"], np.float32).reshape(-1, 2),
        "labels": np.asarray(rows["labels"], np.int64),
        "names": rows["names"],
        "attributes": rows["attributes"],
        "num_lidar_pts": np.asarray(rows["num_lidar_pts"], np.int64),
        "tokens": rows["tokens"],
        "visibility": rows["visibility"],
    }
