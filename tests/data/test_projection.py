"""Boxes projected with the loader's lidar2image land on their object in the right camera's
image: the generator's cameras and the loader's matrices agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bevdeploy.data.camera_render import FOG_DISTANCE, SKY_HORIZON
from bevdeploy.data.nuscenes import NuScenesDataset
from bevdeploy.data.synth_scene import KEY_INTERVAL_US, token
from bevdeploy.data.synth_world import build_world

SEED, SAMPLES = 0, 3  # as in conftest.py


@pytest.fixture(scope="module")
def dataset(synth: tuple[Path, str]) -> NuScenesDataset:
    root, version = synth
    return NuScenesDataset(root, version, "synth_all", sweeps=0)


def _car_colours(scene_name: str) -> dict[str, np.ndarray]:
    """Body colour of every car of a scene, by instance token (rebuilt from the seed)."""
    index = int(scene_name.rsplit("-", 1)[1])
    world = build_world(np.random.default_rng([SEED, index]), (SAMPLES - 1) * KEY_INTERVAL_US / 1e6)
    a = world.arrays
    return {token(SEED, "instance", index, i): a["colour"][i].astype(float) for i in np.nonzero(a["cls"] == 0)[0]}


def _project(s, point: np.ndarray, margin: float = 10) -> list[tuple[int, np.ndarray]]:
    """(camera index, pixel) for every camera whose image holds a LiDAR-frame point at least
    ``margin`` pixels inside its border (a negative margin accepts points just outside)."""
    out = []
    for c in range(6):
        uvw = s.lidar2image[c] @ np.append(point, 1.0)
        if uvw[2] > 1.0:
            uv = uvw[:2] / uvw[2]
            if margin <= uv[0] < 1600 - margin and margin <= uv[1] < 900 - margin:
                out.append((c, uv))
    return out


def test_visible_boxes_project_onto_their_object(dataset: NuScenesDataset, nusc) -> None:
    checked = matched = 0
    for i in range(len(dataset)):
        s = dataset[i]
        colours = _car_colours(s.scene_name)
        images = None
        for k, name in enumerate(s.gt_names):
            box = s.gt_boxes[k]
            if s.extra["visibility"][k] != "4":
                continue
            dist = float(np.linalg.norm(box[:2]))
            if 10 < dist < 30:  # an object straddling two cameras may have its centre just outside both
                assert _project(s, box[:3], margin=-40), f"visible {name} at {dist:.1f} m projects into no camera"
            if name != "car" or not 4 < dist < 25:
                continue
            # A point a third of the way up the car is on its painted body, whatever side faces us.
            low = box[:3] - np.array([0, 0, box[5] * 0.15])
            inst = nusc.get("sample_annotation", s.extra["ann_tokens"][k])["instance_token"]
            body, fog = colours[inst], 1 - np.exp(-dist / FOG_DISTANCE)
            images = images or s.images()
            for c, uv in _project(s, low):
                pixel = images[c][int(uv[1]) - 1 : int(uv[1]) + 2, int(uv[0]) - 1 : int(uv[0]) + 2].reshape(-1, 3).mean(0)
                shades = np.linspace(0.45, 1.1, 27)[:, None] * body * (1 - fog) + SKY_HORIZON * fog
                checked += 1
                matched += np.linalg.norm(shades - pixel, axis=1).min() < 40
    assert checked >= 5
    assert matched / checked >= 0.8, (matched, checked)
