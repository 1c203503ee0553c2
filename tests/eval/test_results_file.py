"""A user's results JSON is checked before the devkit sees it: one BevDeployError line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bevdeploy import BevDeployError
from bevdeploy.eval import load_results_file
from bevdeploy.eval.results import ATTRIBUTE_NAMES as OUR_ATTRIBUTES
from bevdeploy.eval.results import DETECTION_NAMES as OUR_NAMES
from nuscenes.eval.detection.constants import ATTRIBUTE_NAMES, DETECTION_NAMES


def _box(token: str = "tok", **over) -> dict:
    box = {
        "sample_token": token,
        "translation": [1.0, 2.0, 0.5],
        "size": [1.9, 4.5, 1.6],
        "rotation": [1.0, 0.0, 0.0, 0.0],
        "velocity": [0.0, 0.0],
        "detection_name": "car",
        "detection_score": 0.9,
        "attribute_name": "vehicle.parked",
    }
    box.update(over)
    return box


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "results.json"
    p.write_text(json.dumps(data))
    return p


def test_names_follow_the_devkit() -> None:
    assert list(OUR_NAMES) == DETECTION_NAMES
    assert list(OUR_ATTRIBUTES) == ATTRIBUTE_NAMES


def test_valid_file_loads_and_gets_meta(tmp_path: Path) -> None:
    data = load_results_file(_write(tmp_path, {"results": {"tok": [_box()], "other": []}}))
    assert data["meta"] == {} and len(data["results"]["tok"]) == 1


@pytest.mark.parametrize(
    ("box", "needle"),
    [
        (_box(detection_name="cars"), "unknown detection_name 'cars'"),
        (_box(attribute_name="vehicle.flying"), "unknown attribute_name"),
        (_box(size=[1.0, 0.0, 1.0]), "must be positive"),
        (_box(translation=[1.0, 2.0]), "'translation' must be a list of 3 numbers"),
        (_box(rotation=[0.0, 0.0, 0.0, 0.0]), "unit quaternion"),
        (_box(detection_score="high"), "detection_score"),
        (_box(sample_token="elsewhere"), "differs from its key"),
        ({k: v for k, v in _box().items() if k != "velocity"}, "lacks field(s) velocity"),
        ("not a box", "must be a JSON object"),
    ],
)
def test_malformed_boxes_raise_one_line(tmp_path: Path, box, needle: str) -> None:
    with pytest.raises(BevDeployError) as e:
        load_results_file(_write(tmp_path, {"meta": {}, "results": {"tok": [box]}}))
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert "sample tok box 0" in msg or "results" in msg


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(BevDeployError, match="does not exist"):
        load_results_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BevDeployError, match="not valid JSON"):
        load_results_file(bad)
    with pytest.raises(BevDeployError, match="'results' object"):
        load_results_file(_write(tmp_path, {"meta": {}}))
    with pytest.raises(BevDeployError, match="allows 500"):
        load_results_file(_write(tmp_path, {"results": {"tok": [_box()] * 501}}))
