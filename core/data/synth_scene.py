"""Simulate one synthetic scene: build its world, write its LiDAR sweeps and camera images,
and return its nuScenes table records (log, scene, sample, sample_data, ego_pose,
calibrated_sensor, instance, sample_annotation).

One scene depends only on (seed, scene index), so scenes can be simulated in any order or in
parallel and the bytes written are the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import camera_geometry, camera_render, lidar_sim
from .geometry import make_transform, rot_z, yaw_quat
from .synth_classes import ATTRIBUTES, CLASS_SPECS, SCENERY_INTENSITY, attribute_for
from .synth_sensors import CAMERA_TIME_OFFSET_US, LIDAR, SensorCalib, rig_calibration, scale_intrinsic
from .synth_world import BUILDING_D, World, build_world
from .types import CAMERAS, DETECTION_CLASSES

KEY_INTERVAL_US = 500_000  # 2 Hz key frames
SWEEPS_PER_KEY = 5  # 10 Hz LiDAR: 4 sweeps between key frames
PRE_SWEEPS = 9  # sweeps before a scene's first key frame, so that it too has 9 previous sweeps
BASE_TIMESTAMP_US = 1_533_201_470_000_000
ANNOTATION_RANGE = 60.0  # m, objects further from the ego are not annotated
Records = dict[str, list[dict[str, Any]]]


def token(*parts: object) -> str:
    """A deterministic 32-hex nuScenes-style token."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(frozen=True)
class SceneJob:
    root: str  # dataroot being written
    seed: int
    index: int
    samples: int
    image_size: tuple[int, int]


def scene_name(index: int) -> str:
    return f"scene-synth-{index:04d}"


def simulate_scene(job: SceneJob) -> Records:
    """Write one scene's sensor files under job.root and return its table records."""
    rng = np.random.default_rng([job.seed, job.index])
    world = build_world(rng, duration=(job.samples - 1) * KEY_INTERVAL_US / 1e6)
    rig = rig_calibration(rng)
    sim = _SceneWriter(job, world, rig, rng)
    sim.write_lidar()
    sim.write_cameras()
    sim.write_annotations()
    return sim.records


class _SceneWriter:
    def __init__(self, job: SceneJob, world: World, rig: dict[str, SensorCalib], rng: np.random.Generator) -> None:
        self.job, self.world, self.rig, self.rng = job, world, rig, rng
        self.root = Path(job.root)
        self.log_name = f"synth-{job.seed}-{job.index:04d}"
        self.t0 = BASE_TIMESTAMP_US + job.index * 100_000_000
        self.scene_token = token(job.seed, "scene", job.index)
        self.log_token = token(job.seed, "log", job.index)
        self.sample_tokens = [token(job.seed, "sample", job.index, k) for k in range(job.samples)]
        self.records: Records = {k: [] for k in (
            "log", "scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "instance", "sample_annotation"
        )}
        self.visible = np.zeros((job.samples, len(world.arrays["cls"])))
        self.silhouette = np.zeros_like(self.visible)
        self.num_pts = np.zeros((job.samples, len(world.arrays["cls"])), np.int64)
        self._tables()

    def _tables(self) -> None:
        job = self.job
        self.records["log"].append({
            "token": self.log_token, "logfile": self.log_name, "vehicle": "synth",
            "date_captured": "2018-08-02", "location": "synthetic-town",
        })
        self.records["scene"].append({
            "token": self.scene_token, "log_token": self.log_token, "nbr_samples": job.samples,
            "first_sample_token": self.sample_tokens[0], "last_sample_token": self.sample_tokens[-1],
            "name": scene_name(job.index),
            "description": f"synthetic street, ego {self.world.ego_speed:.1f} m/s, curvature {self.world.road.curvature:.4f}",
        })
        for k, tok in enumerate(self.sample_tokens):
            self.records["sample"].append({
                "token": tok, "timestamp": self.t0 + k * KEY_INTERVAL_US, "scene_token": self.scene_token,
                "prev": self.sample_tokens[k - 1] if k > 0 else "",
                "next": self.sample_tokens[k + 1] if k + 1 < job.samples else "",
            })
        for channel, calib in self.rig.items():
            intrinsic = [] if calib.intrinsic is None else scale_intrinsic(calib.intrinsic, job.image_size).tolist()
            self.records["calibrated_sensor"].append({
                "token": self._calib_token(channel), "sensor_token": token("sensor", channel),
                "translation": calib.translation.tolist(), "rotation": calib.rotation.tolist(),
                "camera_intrinsic": intrinsic,
            })

    def _calib_token(self, channel: str) -> str:
        return token(self.job.seed, "calibrated_sensor", self.job.index, channel)

    def ego2global(self, t_us: int) -> np.ndarray:
        xy, yaw = self.world.ego_at((t_us - self.t0) / 1e6)
        return make_transform(rot_z(yaw), np.array([xy[0], xy[1], 0.0]))

    def _ego_pose(self, t_us: int, channel: str) -> str:
        xy, yaw = self.world.ego_at((t_us - self.t0) / 1e6)
        tok = token(self.job.seed, "ego_pose", self.job.index, channel, t_us)
        self.records["ego_pose"].append({
            "token": tok, "timestamp": t_us, "rotation": yaw_quat(yaw).tolist(), "translation": [xy[0], xy[1], 0.0],
        })
        return tok

    def _sample_data(self, channel: str, entries: list[tuple[int, int | None, str]], size: tuple[int, int]) -> None:
        """entries: (timestamp, key frame index or None, filename), in time order."""
        toks = [token(self.job.seed, "sample_data", self.job.index, channel, t) for t, _, _ in entries]
        for j, (t_us, key, filename) in enumerate(entries):
            # A sweep belongs to the next key frame, as in nuScenes.
            sample_idx = key if key is not None else min(self.job.samples - 1, (t_us - self.t0) // KEY_INTERVAL_US + 1)
            self.records["sample_data"].append({
                "token": toks[j], "sample_token": self.sample_tokens[sample_idx],
                "ego_pose_token": self._ego_pose(t_us, channel), "calibrated_sensor_token": self._calib_token(channel),
                "timestamp": t_us, "fileformat": "pcd" if channel == LIDAR else "jpg",
                "is_key_frame": key is not None, "height": size[1], "width": size[0], "filename": filename,
                "prev": toks[j - 1] if j > 0 else "", "next": toks[j + 1] if j + 1 < len(entries) else "",
            })

    def _intensities(self) -> np.ndarray:
        """Mean LiDAR intensity of each object: its class's reflectivity, varied per object."""
        a = self.world.arrays
        stats = np.array([SCENERY_INTENSITY if c < 0 else CLASS_SPECS[DETECTION_CLASSES[c]].intensity
                          for c in a["cls"]]).reshape(-1, 2)
        return np.clip(self.rng.normal(stats[:, 0], stats[:, 1]), 2.0, 255.0)

    def _ground_intensity(self, xy: np.ndarray) -> np.ndarray:
        """Paint (lane lines, zebra stripes) reflects more than asphalt; concrete sidewalks in between."""
        s, d_signed = self.world.road.to_sd(xy)
        d = np.abs(d_signed)
        marking = (np.abs(d - 3.5) < 0.08) | (np.abs(d - 7.0) < 0.08) | (np.abs(d - 0.12) < 0.08)
        for c in self.world.crosswalks:
            marking |= (np.abs(s - c) < 2.0) & (d < 7.0) & ((d_signed + 7.0) % 1.0 < 0.5)
        return np.where(marking, 70.0, np.where(d > 9.6, 22.0, 9.0))

    def write_lidar(self) -> None:
        calib = self.rig[LIDAR]
        intensity = self._intensities()
        last = (self.job.samples - 1) * SWEEPS_PER_KEY
        entries = []
        for j in range(-PRE_SWEEPS, last + 1):
            t_us = self.t0 + j * KEY_INTERVAL_US // SWEEPS_PER_KEY
            key = j // SWEEPS_PER_KEY if j >= 0 and j % SWEEPS_PER_KEY == 0 else None
            lidar2global = self.ego2global(t_us) @ calib.sensor2ego
            boxes = self.world.boxes_at((t_us - self.t0) / 1e6)
            pts = lidar_sim.scan(self.rng, lidar2global[:3, 3], lidar2global, boxes, intensity, self._ground_intensity)
            folder = "samples" if key is not None else "sweeps"
            filename = f"{folder}/{LIDAR}/{self.log_name}__{LIDAR}__{t_us}.pcd.bin"
            path = self.root / filename
            path.parent.mkdir(parents=True, exist_ok=True)
            pts.tofile(path)
            entries.append((t_us, key, filename))
            if key is not None:
                xyz_g = pts[:, :3].astype(np.float64) @ lidar2global[:3, :3].T + lidar2global[:3, 3]
                annotated = self.world.arrays["cls"] >= 0
                self.num_pts[key, annotated] = lidar_sim.points_in_boxes(xyz_g, boxes[annotated])
        self._sample_data(LIDAR, entries, (0, 0))

    def write_cameras(self) -> None:
        a = self.world.arrays
        w, h = self.job.image_size
        pieces = camera_geometry.object_pieces(a["cls"], a["size"], a["colour"])
        reach = self.world.ego_speed * self.world.duration
        ground = camera_geometry.ground_pieces(self.world.road, -250.0, reach + 250.0, self.world.crosswalks)
        sensor = camera_render.Sensor(self.rng, (w, h))
        env = camera_render.Environment.sample(self.rng)
        annotated = a["cls"] >= 0
        backdrop = (a["cls"] < 0) & (np.abs(a["d0"]) >= BUILDING_D)
        for channel in CAMERAS:
            calib = self.rig[channel]
            k_mat = scale_intrinsic(calib.intrinsic, self.job.image_size)
            entries = []
            for key in range(self.job.samples):
                t_us = self.t0 + key * KEY_INTERVAL_US + CAMERA_TIME_OFFSET_US[channel]
                t = (t_us - self.t0) / 1e6
                cam = camera_render.Camera(k_mat, self.ego2global(t_us) @ calib.sensor2ego, (w, h))
                image, visible, silhouette = camera_render.render(
                    cam, self.world.boxes_at(t), pieces, annotated, ground, env, backdrop
                )
                self.visible[key] += visible
                self.silhouette[key] += silhouette
                filename = f"samples/{channel}/{self.log_name}__{channel}__{t_us}.jpg"
                path = self.root / filename
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(sensor.encode(image))
                entries.append((t_us, key, filename))
            self._sample_data(channel, entries, (w, h))

    def write_annotations(self) -> None:
        a = self.world.arrays
        chains: dict[int, list[tuple[int, np.ndarray, float]]] = {}
        for key in range(self.job.samples):
            t = key * KEY_INTERVAL_US / 1e6
            boxes, vel = self.world.boxes_at(t), self.world.velocities_at(t)
            ego_xy, _ = self.world.ego_at(t)
            near = np.linalg.norm(boxes[:, :2] - ego_xy, axis=1) < ANNOTATION_RANGE
            for i in np.nonzero(near & (a["cls"] >= 0))[0]:
                chains.setdefault(int(i), []).append((key, boxes[i], float(np.linalg.norm(vel[i]))))
        for i, chain in sorted(chains.items()):
            self._instance(i, chain)

    def _instance(self, i: int, chain: list[tuple[int, np.ndarray, float]]) -> None:
        a, job = self.world.arrays, self.job
        name = DETECTION_CLASSES[int(a["cls"][i])]
        inst = token(job.seed, "instance", job.index, i)
        anns = [token(job.seed, "sample_annotation", job.index, i, key) for key, _, _ in chain]
        self.records["instance"].append({
            "token": inst, "category_token": token("category", CLASS_SPECS[name].category),
            "nbr_annotations": len(chain), "first_annotation_token": anns[0], "last_annotation_token": anns[-1],
        })
        for j, (key, box, speed) in enumerate(chain):
            attr = attribute_for(name, speed, bool(a["in_lane"][i]))
            sil = self.silhouette[key, i]
            frac = self.visible[key, i] / sil if sil > 0 else 0.0
            self.records["sample_annotation"].append({
                "token": anns[j], "sample_token": self.sample_tokens[key], "instance_token": inst,
                "visibility_token": str(1 + int(frac >= 0.4) + int(frac >= 0.6) + int(frac >= 0.8)),
                "attribute_tokens": [token("attribute", attr)] if attr else [],
                "translation": box[:3].tolist(), "size": [box[4], box[3], box[5]],
                "rotation": yaw_quat(box[6]).tolist(),
                "prev": anns[j - 1] if j > 0 else "", "next": anns[j + 1] if j + 1 < len(chain) else "",
                "num_lidar_pts": int(self.num_pts[key, i]), "num_radar_pts": 0,
            })


def shared_tables() -> Records:
    """Tables common to every scene: category, attribute, visibility, sensor."""
    return {
        "category": [{"token": token("category", s.category), "name": s.category,
                      "description": f"synthetic {s.name}"} for s in CLASS_SPECS.values()],
        "attribute": [{"token": token("attribute", n), "name": n, "description": n} for n in ATTRIBUTES],
        "visibility": [{"token": str(i + 1), "level": lvl, "description": f"visibility of whole object is {lvl}"}
                       for i, lvl in enumerate(("v0-40", "v40-60", "v60-80", "v80-100"))],
        "sensor": [{"token": token("sensor", c), "channel": c, "modality": "lidar" if c == LIDAR else "camera"}
                   for c in (LIDAR, *CAMERAS)],
    }
