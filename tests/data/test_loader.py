"""NuScenesDataset turns devkit records into Samples with consistent geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bevdeploy import BevDeployError
from bevdeploy.data import default_split, open_dataset
from bevdeploy.data.nuscenes import NuScenesDataset
from bevdeploy.data.types import CAMERAS, DETECTION_CLASSES
from bevdeploy.specs.run import DataSpec
from nuscenes.utils.geometry_utils import points_in_box

SCENES, SAMPLES = 2, 3  # as in conftest.py


@pytest.fixture(scope="module")
def dataset(synth: tuple[Path, str]) -> NuScenesDataset:
    root, version = synth
    return NuScenesDataset(root, version, "synth_all", sweeps=9)


def test_order_and_scene_boundaries(dataset: NuScenesDataset) -> None:
    assert len(dataset) == SCENES * SAMPLES
    samples = [dataset[i] for i in range(len(dataset))]
    assert [s.token for s in samples] == dataset.sample_tokens
    assert [s.is_first_in_scene for s in samples] == [True, False, False] * SCENES
    for a, b in zip(samples, samples[1:], strict=False):
        if not b.is_first_in_scene:
            assert b.prev_token == a.token and b.timestamp > a.timestamp and b.scene_token == a.scene_token
    assert samples[0].prev_token == "" and dataset.get(samples[1].token).token == samples[1].token
    assert dataset[-1].token == samples[-1].token
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_sample_fields(dataset: NuScenesDataset) -> None:
    s = dataset[1]
    assert len(s.image_paths) == 6 and all(Path(p).is_file() and f"/{c}/" in p for p, c in zip(s.image_paths, CAMERAS, strict=True))
    for name in ("camera2ego", "camera_ego2global", "lidar2camera", "lidar2image", "camera2lidar"):
        assert getattr(s, name).shape == (6, 4, 4)
    assert s.cam_intrinsics.shape == (6, 3, 3) and 700 < s.cam_intrinsics[0, 0, 0] < 1400
    pad = np.tile(np.eye(4), (6, 1, 1))
    pad[:, :3, :3] = s.cam_intrinsics
    np.testing.assert_allclose(s.lidar2image, pad @ s.lidar2camera)
    np.testing.assert_allclose(s.camera2lidar @ s.lidar2camera, np.tile(np.eye(4), (6, 1, 1)), atol=1e-9)
    # LIDAR_TOP is rotated ~-90 deg about z relative to the ego, as on the nuScenes car.
    assert abs(np.degrees(np.arctan2(s.lidar2ego[1, 0], s.lidar2ego[0, 0])) + 90) < 3
    m = len(s.gt_names)
    assert s.gt_boxes.shape == (m, 7) and s.gt_boxes.dtype == np.float32 and m > 10
    assert s.gt_velocity.shape == (m, 2) and s.gt_labels.dtype == np.int64
    assert [DETECTION_CLASSES[i] for i in s.gt_labels] == s.gt_names
    assert len(s.gt_attributes) == m and s.gt_num_lidar_pts.shape == (m,)
    assert s.points.dtype == np.float32 and s.points.shape[1] == 5
    images = s.images()
    assert len(images) == 6 and images[0].shape == (900, 1600, 3) and images[0].dtype == np.uint8


def test_sweeps_in_key_frame(synth: tuple[Path, str], dataset: NuScenesDataset) -> None:
    """Previous sweeps land in the key frame's LiDAR frame: static objects collect their
    points at the same place in every sweep."""
    root, version = synth
    key_only = NuScenesDataset(root, version, "synth_all", sweeps=0)[0]
    s = dataset[0]  # even a scene's first key frame has 9 earlier sweeps (10 Hz)
    lags = np.unique(s.points[:, 4])
    np.testing.assert_allclose(lags, np.arange(10) / 10, atol=1e-6)
    assert np.all(key_only.points[:, 4] == 0) and len(key_only.points) == (s.points[:, 4] == 0).sum()
    static = [i for i, n in enumerate(s.gt_names) if n in ("barrier", "traffic_cone") and s.gt_num_lidar_pts[i] > 10]
    static += [i for i, a in enumerate(s.gt_attributes) if a == "vehicle.parked" and s.gt_num_lidar_pts[i] > 30]
    assert len(static) >= 3
    # The ego moves up to 1.2 m between sweeps, so a wrong transform would empty the boxes; with
    # the right one the previous sweep still hits the object (later ones may lose it behind
    # traffic or out of the beams as the ego drives past).
    hit_prev = [_count_in(s.points[np.isclose(s.points[:, 4], 0.1)], s.gt_boxes[i]) > 0 for i in static]
    assert np.mean(hit_prev) >= 0.8, hit_prev


def _count_in(points: np.ndarray, box: np.ndarray) -> int:
    rel = points[:, :3] - box[:3]
    c, sn = np.cos(box[6]), np.sin(box[6])
    lx, ly = rel[:, 0] * c + rel[:, 1] * sn, -rel[:, 0] * sn + rel[:, 1] * c
    return int(((np.abs(lx) <= box[3] / 2) & (np.abs(ly) <= box[4] / 2) & (np.abs(rel[:, 2]) <= box[5] / 2 + 0.05)).sum())


def test_num_lidar_pts_matches_recount(nusc) -> None:
    """The annotated point counts equal the devkit's own count in the key-frame cloud."""
    checked = 0
    for sample in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        pts = np.fromfile(path, np.float32).reshape(-1, 5)
        for box in boxes:
            n = int(points_in_box(box, pts[:, :3].T).sum())
            expected = nusc.get("sample_annotation", box.token)["num_lidar_pts"]
            assert abs(n - expected) <= 1, (box.name, n, expected)
            checked += n > 0
    assert checked > 50


def test_points_hit_boxes_and_ground(dataset: NuScenesDataset) -> None:
    s = dataset[0]
    key = s.points[s.points[:, 4] == 0]
    assert 20_000 < len(key) < 45_000  # HDL-32E: ~35k rays per sweep
    near = (np.linalg.norm(s.gt_boxes[:, :2], axis=1) < 20) & (np.array(s.extra["visibility"]) == "4")
    assert near.any() and (s.gt_num_lidar_pts[near] > 0).all()
    ego = key[:, :3].astype(np.float64) @ s.lidar2ego[:3, :3].T + s.lidar2ego[:3, 3]
    near_z = ego[np.linalg.norm(ego[:, :2], axis=1) < 15, 2]
    assert np.mean(np.abs(near_z) < 0.05) > 0.4  # most near returns: the ground, at the ego frame's z = 0
    assert 0 <= key[:, 3].min() and key[:, 3].max() <= 255


def test_ground_truth_velocity_and_ego_motion(dataset: NuScenesDataset) -> None:
    s0, s1 = dataset[0], dataset[1]
    assert np.all(s0.delta_translation == 0) and s0.delta_yaw_deg == 0
    np.testing.assert_allclose(s1.delta_translation, s1.ego2global[:3, 3] - s0.ego2global[:3, 3])
    np.testing.assert_allclose(s1.can_bus[:3], s1.ego2global[:3, 3], rtol=1e-6)
    speed = np.linalg.norm(s1.delta_translation) / 0.5
    assert abs(np.linalg.norm(s1.can_bus[13:16]) - speed) < 0.2
    assert 0 <= s1.can_bus[17] < 360 and abs(np.radians(s1.can_bus[17]) - s1.can_bus[16]) < 1e-5
    # A parked car is at rest in the world: in the LiDAR frame its velocity is exactly zero.
    parked = [i for i, a in enumerate(s1.gt_attributes) if a in ("vehicle.parked", "")]
    assert parked and np.allclose(s1.gt_velocity[parked], 0, atol=1e-4)
    moving = [i for i, a in enumerate(s1.gt_attributes) if a == "vehicle.moving"]
    assert moving and (np.linalg.norm(s1.gt_velocity[moving], axis=1) > 0.3).all()
    # Vehicles drive forwards: in the LiDAR frame their velocity points along their heading.
    heading = np.stack([np.cos(s1.gt_boxes[moving, 6]), np.sin(s1.gt_boxes[moving, 6])], 1)
    v = s1.gt_velocity[moving]
    cos = (heading * v).sum(1) / np.linalg.norm(v, axis=1)
    assert (cos > 0.98).all(), cos


def test_open_dataset_defaults(synth: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, version = synth
    ds = open_dataset(DataSpec(dataroot=root, version=version))
    assert ds.split == "synth_val" and len(ds) == SAMPLES
    assert open_dataset(DataSpec(dataroot=root, version=version), role="calib").split == "synth_calib"
    assert len(open_dataset(DataSpec(dataroot=root, version=version, split="synth_all", max_samples=4))) == 4
    monkeypatch.setattr("bevdeploy.data.builtin.builtin_dataroot", lambda: (root, version))
    assert open_dataset(DataSpec()).split == "synth_val"  # no dataroot: the built-in set
    assert (default_split("v1.0-trainval", "eval"), default_split("v1.0-trainval", "calib")) == ("val", "train")
    assert (default_split("v1.0-mini", "eval"), default_split("v1.0-mini", "calib")) == ("mini_val", "mini_train")


def test_predefined_split_on_a_mini_layout(tables_copy: tuple[Path, str]) -> None:
    """Real v1.0-mini layout: the devkit's 'mini_val' names scene-0103 and scene-0916."""
    root, version = tables_copy
    (root / version).rename(root / "v1.0-mini")
    (root / "v1.0-mini" / "splits.json").unlink()
    path = root / "v1.0-mini" / "scene.json"
    scenes = json.loads(path.read_text())
    for scene, name in zip(scenes, ("scene-0103", "scene-0916"), strict=True):
        scene["name"] = name
    path.write_text(json.dumps(scenes))
    ds = open_dataset(DataSpec(dataroot=root, version="v1.0-mini"))
    assert ds.split == "mini_val" and ds.scene_names == ["scene-0103", "scene-0916"] and len(ds) == SCENES * SAMPLES
    assert len(open_dataset(DataSpec(dataroot=root, version="v1.0-mini", split="mini_val", max_samples=2))) == 2
    with pytest.raises(BevDeployError, match="'mini_train' has no scene"):
        open_dataset(DataSpec(dataroot=root, version="v1.0-mini"), role="calib")
