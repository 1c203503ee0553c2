"""Bad input gives one BevDeployError line that says what is wrong and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bevdeploy import BevDeployError
from bevdeploy.data import open_dataset
from bevdeploy.data.nuscenes import NuScenesDataset
from bevdeploy.specs.run import DataSpec


def _raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(BevDeployError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_dataroot(tmp_path: Path) -> None:
    _raises("does not exist; pass --data", NuScenesDataset, tmp_path / "nowhere", "v1.0-trainval", "val")


def test_missing_version_folder(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    msg = _raises("v1.0-trainval does not exist", NuScenesDataset, root, "v1.0-trainval", "val")
    assert version in msg  # says which versions are there


def test_missing_table(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    (root / version / "sample_annotation.json").unlink()
    _raises("lacks table\\(s\\) sample_annotation.json", NuScenesDataset, root, version, "synth_val")


def test_malformed_table(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    (root / version / "ego_pose.json").write_text('[{"token": "abc", ')
    _raises("table ego_pose.json .* is not valid JSON", NuScenesDataset, root, version, "synth_val")


def test_inconsistent_tables(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    path = root / version / "sample_annotation.json"
    anns = json.loads(path.read_text())
    anns[0]["instance_token"] = "0" * 32
    path.write_text(json.dumps(anns))
    _raises("inconsistent", NuScenesDataset, root, version, "synth_val")


def test_unknown_split(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    msg = _raises("unknown split 'validation'", NuScenesDataset, root, version, "validation")
    assert "synth_val" in msg
    _raises("split 'val' belongs to v1.0-trainval", NuScenesDataset, root, version, "val")
    _raises("split 'mini_val' belongs to v1.0-mini", NuScenesDataset, root, version, "mini_val")


def test_split_naming_absent_scenes(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    (root / version / "splits.json").write_text(json.dumps({"elsewhere": ["scene-0001"]}))
    _raises("has no scene", NuScenesDataset, root, version, "elsewhere")
    (root / version / "splits.json").write_text("{oops")
    _raises("splits.json is not valid JSON", NuScenesDataset, root, version, "elsewhere")


def test_sample_without_lidar(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    path = root / version / "sample_data.json"
    records = json.loads(path.read_text())
    victim = next(r for r in records if r["is_key_frame"] and "LIDAR_TOP" in r["filename"])
    victim["is_key_frame"] = False  # the sample keeps its cameras but loses its LiDAR key frame
    path.write_text(json.dumps(records))
    ds = NuScenesDataset(root, version, "synth_all")
    _raises("has no LIDAR_TOP key frame", ds.get, victim["sample_token"])


def test_unknown_sample_token(synth: tuple[Path, str]) -> None:
    root, version = synth
    ds = NuScenesDataset(root, version, "synth_val")
    _raises("sample token f+ is not in", ds.get, "f" * 32)


def test_no_default_split_for_unknown_layout(tables_copy: tuple[Path, str]) -> None:
    root, version = tables_copy
    (root / version / "splits.json").unlink()
    _raises("no default eval split", open_dataset, DataSpec(dataroot=root, version=version))
