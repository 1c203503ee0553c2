"""The generated dataroot is a valid, self-consistent nuScenes database."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from bevdeploy.data.synth import TABLES, split_scenes
from bevdeploy.data.synth_world import build_world
from bevdeploy.data.types import CAMERAS, DETECTION_CLASSES
from nuscenes.eval.detection.utils import category_to_detection_name

SCENES, SAMPLES = 2, 3  # as in conftest.py

SWEEPS_BETWEEN_KEYS, PRE_SWEEPS = 4, 9
MEAN_LWH = {
    "car": (4.62, 1.95, 1.73), "truck": (6.93, 2.51, 2.84), "bus": (10.5, 2.94, 3.47),
    "pedestrian": (0.73, 0.67, 1.77), "traffic_cone": (0.41, 0.41, 1.07), "barrier": (0.50, 2.53, 0.98),
    "trailer": (12.29, 2.90, 3.87), "construction_vehicle": (6.37, 2.85, 3.19), "motorcycle": (2.11, 0.77, 1.47),
    "bicycle": (1.70, 0.60, 1.28),
}


def test_devkit_loads_all_tables(nusc, synth: tuple[Path, str]) -> None:
    root, version = synth
    assert sorted(p.stem for p in (root / version).glob("*.json")) == sorted([*TABLES, "splits"])
    assert len(nusc.scene) == SCENES and len(nusc.sample) == SCENES * SAMPLES
    assert len(nusc.sensor) == 7 and len(nusc.map) == 1
    assert (root / nusc.map[0]["filename"]).is_file()
    for sample in nusc.sample:
        assert set(sample["data"]) == {"LIDAR_TOP", *CAMERAS}


def test_foreign_keys_resolve(nusc) -> None:
    refs = {
        "sample": {"scene_token": "scene"},
        "sample_data": {"sample_token": "sample", "ego_pose_token": "ego_pose",
                        "calibrated_sensor_token": "calibrated_sensor"},
        "calibrated_sensor": {"sensor_token": "sensor"},
        "sample_annotation": {"sample_token": "sample", "instance_token": "instance",
                              "visibility_token": "visibility"},
        "instance": {"category_token": "category", "first_annotation_token": "sample_annotation",
                     "last_annotation_token": "sample_annotation"},
        "scene": {"log_token": "log", "first_sample_token": "sample", "last_sample_token": "sample"},
    }
    for table, fields in refs.items():
        for record in getattr(nusc, table):
            for field, target in fields.items():
                nusc.get(target, record[field])  # raises KeyError if dangling
    for ann in nusc.sample_annotation:
        for tok in ann["attribute_tokens"]:
            nusc.get("attribute", tok)
    assert {log["token"] for log in nusc.log} <= set(nusc.map[0]["log_tokens"])


def _check_chain(records: list[dict], table: str, nusc) -> None:
    """Records of one chain, in order: prev/next link them and nothing else."""
    assert records[0]["prev"] == "" and records[-1]["next"] == ""
    for a, b in zip(records, records[1:], strict=False):
        assert a["next"] == b["token"] and b["prev"] == a["token"]
        assert nusc.get(table, a["next"]) is b


def test_prev_next_chains(nusc) -> None:
    for scene in nusc.scene:
        samples = sorted((s for s in nusc.sample if s["scene_token"] == scene["token"]), key=lambda s: s["timestamp"])
        assert len(samples) == scene["nbr_samples"] == SAMPLES
        assert samples[0]["token"] == scene["first_sample_token"] and samples[-1]["token"] == scene["last_sample_token"]
        _check_chain(samples, "sample", nusc)
    by_chain = defaultdict(list)
    for sd in nusc.sample_data:
        scene = nusc.get("sample", sd["sample_token"])["scene_token"]
        by_chain[(scene, sd["channel"])].append(sd)
    for (_, channel), chain in by_chain.items():
        chain.sort(key=lambda r: r["timestamp"])
        _check_chain(chain, "sample_data", nusc)
        keys = [sd for sd in chain if sd["is_key_frame"]]
        assert len(keys) == SAMPLES
        if channel == "LIDAR_TOP":
            assert len(chain) == PRE_SWEEPS + (SAMPLES - 1) * (SWEEPS_BETWEEN_KEYS + 1) + 1
            assert not chain[0]["is_key_frame"] and chain[PRE_SWEEPS]["is_key_frame"]
    by_instance = defaultdict(list)
    for ann in nusc.sample_annotation:
        by_instance[ann["instance_token"]].append(ann)
    for inst in nusc.instance:
        chain = sorted(by_instance[inst["token"]], key=lambda a: nusc.get("sample", a["sample_token"])["timestamp"])
        assert len(chain) == inst["nbr_annotations"]
        assert chain[0]["token"] == inst["first_annotation_token"] and chain[-1]["token"] == inst["last_annotation_token"]
        _check_chain(chain, "sample_annotation", nusc)


def test_sensor_files_and_key_frames(nusc, synth: tuple[Path, str]) -> None:
    root, _ = synth
    for sd in nusc.sample_data:
        path = root / sd["filename"]
        assert path.is_file()
        assert sd["filename"].startswith("samples/" if sd["is_key_frame"] else "sweeps/")
        if sd["channel"] == "LIDAR_TOP":
            pts = np.fromfile(path, np.float32)
            assert pts.size % 5 == 0 and pts.size > 5 * 10_000
        else:
            assert (sd["width"], sd["height"]) == (1600, 900)
            assert path.read_bytes()[:2] == b"\xff\xd8"  # JPEG


def test_classes_sizes_attributes(nusc) -> None:
    names = Counter()
    sizes = defaultdict(list)
    for ann in nusc.sample_annotation:
        name = category_to_detection_name(ann["category_name"])
        assert name in DETECTION_CLASSES
        names[name] += 1
        w, length, h = ann["size"]
        sizes[name].append((length, w, h))
        attrs = [nusc.get("attribute", t)["name"] for t in ann["attribute_tokens"]]
        assert ann["num_radar_pts"] == 0 and ann["num_lidar_pts"] >= 0
        assert ann["visibility_token"] in {"1", "2", "3", "4"}
        if name in ("barrier", "traffic_cone"):
            assert attrs == []
        else:
            prefix = {"motorcycle": "cycle.", "bicycle": "cycle.", "pedestrian": "pedestrian."}.get(name, "vehicle.")
            assert len(attrs) == 1 and attrs[0].startswith(prefix), (name, attrs)
    assert set(names) == set(DETECTION_CLASSES)
    for name, mean in MEAN_LWH.items():
        ratio = np.asarray(sizes[name]) / mean
        assert ((ratio >= 0.69) & (ratio <= 1.31)).all(), name
    visibilities = Counter(a["visibility_token"] for a in nusc.sample_annotation)
    assert visibilities["4"] > 0 and visibilities["1"] > 0  # occlusion is computed, not constant


def test_size_distribution_matches_nuscenes() -> None:
    """Over many scenes the mean sizes are nuScenes' (placement must not favour small objects)."""
    sizes = defaultdict(list)
    for index in range(12):
        world = build_world(np.random.default_rng([0, index]), duration=9.5)
        for c, size in zip(world.arrays["cls"], world.arrays["size"], strict=True):
            if c >= 0:
                sizes[DETECTION_CLASSES[c]].append(size)
    for name, mean in MEAN_LWH.items():
        assert np.allclose(np.mean(sizes[name], axis=0), mean, rtol=0.06), (name, np.mean(sizes[name], axis=0))


def test_objects_move_consistently(nusc) -> None:
    """Moving objects travel at their annotated attribute's pace; static classes never move."""
    moving = static = 0
    for ann in nusc.sample_annotation:
        v = nusc.box_velocity(ann["token"])
        if np.isnan(v).any():
            continue
        name = category_to_detection_name(ann["category_name"])
        attrs = [nusc.get("attribute", t)["name"] for t in ann["attribute_tokens"]]
        speed = float(np.linalg.norm(v[:2]))
        if name in ("barrier", "traffic_cone") or attrs in (["vehicle.parked"], ["pedestrian.standing"]):
            assert speed < 1e-6
            static += 1
        elif attrs in (["vehicle.moving"], ["pedestrian.moving"]):
            assert 0.3 < speed < 20
            moving += 1
    assert moving > 5 and static > 5


def test_splits_file(synth: tuple[Path, str]) -> None:
    root, version = synth
    splits = json.loads((root / version / "splits.json").read_text())
    assert splits == split_scenes(SCENES)
    assert not set(splits) & {"train", "val", "test", "mini_train", "mini_val"}  # devkit names map to real scenes
    assert set(splits["synth_train"]).isdisjoint(splits["synth_val"])
    assert set(splits["synth_calib"]) <= set(splits["synth_train"])


@pytest.mark.parametrize("n", [1, 2, 5, 10, 50])
def test_split_partition(n: int) -> None:
    s = split_scenes(n)
    assert len(s["synth_all"]) == n and s["synth_val"] and s["synth_calib"] and s["synth_train"]
    if n > 1:
        assert sorted(s["synth_train"] + s["synth_val"]) == sorted(s["synth_all"])
