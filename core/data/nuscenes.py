"""nuScenes loader on nuscenes-devkit: one :class:`~bevdeploy.data.types.Sample` per key frame
of a split, for real dataroots (v1.0-mini, v1.0-trainval) and the built-in synthetic set alike.

The devkit reports bad input with prints, asserts and KeyErrors; this module checks what it
can first and translates the rest into one-line :class:`BevDeployError` messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import BevDeployError
from . import sample_builder
from .types import Sample

TABLES = (
    "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose",
    "log", "scene", "sample", "sample_data", "sample_annotation", "map",
)
# Predefined devkit split -> the suffix the version must end with.
_PREDEFINED_VERSION = {
    "train": "trainval", "val": "trainval", "train_detect": "trainval", "train_track": "trainval",
    "mini_train": "mini", "mini_val": "mini", "test": "test",
}
_CACHE: dict[tuple[str, str, int], object] = {}


def open_nuscenes(dataroot: Path, version: str):
    """Load the devkit's tables once per (dataroot, version) in this process."""
    root = Path(dataroot).expanduser()
    _check_layout(root, version)
    # keyed by the tables' modification time too: a dataroot regenerated in place is reloaded
    key = (str(root.resolve()), version, (root / version / "sample.json").stat().st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    from nuscenes import NuScenes

    try:
        nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    except json.JSONDecodeError as e:
        bad = _malformed_table(root / version)
        raise BevDeployError(
            f"table {bad or '?'} in {root / version} is not valid JSON ({e.msg}); restore it from the dataset archive"
        ) from e
    except (AssertionError, KeyError, TypeError, ValueError, IndexError) as e:
        raise BevDeployError(
            f"the nuScenes tables in {root / version} are inconsistent ({type(e).__name__}: {e}); "
            "restore them from the dataset archive"
        ) from e
    if len(_CACHE) >= 4:  # a process rarely needs more; trainval tables take gigabytes
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = nusc
    return nusc


def _check_layout(root: Path, version: str) -> None:
    if not root.is_dir():
        raise BevDeployError(f"nuScenes dataroot {root} does not exist; pass --data with the folder holding {version}/")
    table_dir = root / version
    if not table_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v"))
        hint = f"versions found: {', '.join(found)}" if found else "no version folder found"
        raise BevDeployError(f"{table_dir} does not exist ({hint}); pass --version with one of them")
    missing = [t for t in TABLES if not (table_dir / f"{t}.json").is_file()]
    if missing:
        raise BevDeployError(
            f"{table_dir} lacks table(s) {', '.join(m + '.json' for m in missing)}; the dataset is incomplete, re-extract it"
        )


def _malformed_table(table_dir: Path) -> str | None:
    for t in TABLES:
        try:
            json.loads((table_dir / f"{t}.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"{t}.json"
    return None


def split_scene_names(nusc, split: str) -> list[str]:
    """Scene names of a devkit predefined split or of a custom split in <version>/splits.json."""
    from nuscenes.utils.splits import create_splits_scenes

    version = nusc.version
    custom = custom_splits(Path(nusc.dataroot), version)
    if split in _PREDEFINED_VERSION:
        if not version.endswith(_PREDEFINED_VERSION[split]):
            raise BevDeployError(
                f"split '{split}' belongs to v1.0-{_PREDEFINED_VERSION[split]}, not {version}; "
                f"use one of: {', '.join(available_splits(version, custom))}"
            )
        return list(create_splits_scenes()[split])
    if split in custom:
        return list(custom[split])
    raise BevDeployError(
        f"unknown split '{split}' for {version}; use one of: {', '.join(available_splits(version, custom)) or 'none'}"
    )


def custom_splits(dataroot: Path, version: str) -> dict[str, list[str]]:
    """The splits.json of a version folder ({} if there is none)."""
    path = Path(dataroot) / version / "splits.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BevDeployError(f"{path} is not valid JSON ({e.msg}); fix or delete it") from e
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise BevDeployError(f"{path} must map split names to lists of scene names; fix or delete it")
    return data


def available_splits(version: str, custom: dict[str, list[str]]) -> list[str]:
    predefined = [s for s, suffix in _PREDEFINED_VERSION.items() if version.endswith(suffix)]
    return predefined + [s for s in custom if s not in _PREDEFINED_VERSION]


class NuScenesDataset:
    """The key frames of one split, scene by scene in time order, as :class:`Sample` records
    (the first ``max_samples`` of them when given)."""

    def __init__(
        self, dataroot: Path, version: str, split: str, sweeps: int = 9, max_samples: int | None = None
    ) -> None:
        if sweeps < 0:
            raise BevDeployError(f"sweeps must be >= 0, got {sweeps}")
        self.dataroot = Path(dataroot).expanduser()
        self.version = version
        self.split = split
        self.sweeps = sweeps
        self.nusc = open_nuscenes(self.dataroot, version)
        wanted = set(split_scene_names(self.nusc, split))
        self.scene_names = [s["name"] for s in self.nusc.scene if s["name"] in wanted]
        if not self.scene_names:
            raise BevDeployError(
                f"split '{split}' has no scene in {self.dataroot / version} (the dataroot holds other scenes); "
                "choose another --split"
            )
        self.sample_tokens: list[str] = []
        for scene in self.nusc.scene:
            if scene["name"] in wanted:
                tok = scene["first_sample_token"]
                while tok:
                    self.sample_tokens.append(tok)
                    tok = self.nusc.get("sample", tok)["next"]
        if max_samples is not None:
            self.sample_tokens = self.sample_tokens[:max_samples]

    def __len__(self) -> int:
        return len(self.sample_tokens)

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample index {i} out of range for {len(self)} samples")
        return self.get(self.sample_tokens[i])

    def get(self, token: str) -> Sample:
        """The sample with this token (any sample of the dataroot, not only of the split)."""
        try:
            record = self.nusc.get("sample", token)
        except KeyError as e:
            raise BevDeployError(
                f"sample token {token} is not in {self.dataroot / self.version}; list tokens with the loader's sample_tokens"
            ) from e
        return sample_builder.build_sample(self.nusc, record, self.sweeps)

    def __repr__(self) -> str:
        return f"NuScenesDataset({str(self.dataroot)!r}, {self.version!r}, {self.split!r}, {len(self)} samples)"


def load_points(path: Path) -> np.ndarray:
    """(N, 5) float32 from a nuScenes .pcd.bin (x, y, z, intensity, ring index)."""
    try:
        raw = np.fromfile(path, dtype=np.float32)
    except OSError as e:
        raise BevDeployError(f"cannot read LiDAR file {path}; the dataroot's sensor files are incomplete") from e
    if raw.size % 5:
        raise BevDeployError(f"{path} is not a nuScenes LiDAR file (5 float32 per point); re-extract it")
    return raw.reshape(-1, 5)
