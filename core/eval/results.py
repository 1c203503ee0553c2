"""Validation of nuScenes detection results (the devkit's submission JSON).

The devkit checks a results file with ``assert`` deep inside its loaders, so a wrong class name
or a malformed box surfaces as a traceback from the devkit. Everything is checked here first and
reported as one :class:`BevDeployError` line naming the sample, the box and the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import BevDeployError

MAX_BOXES_PER_SAMPLE = 500
"""The devkit's (detection_cvpr_2019) limit of boxes per sample."""

DETECTION_NAMES: tuple[str, ...] = (
    "car",
    "truck",
    "bus",
    "trailer",
    "construction_vehicle",
    "pedestrian",
    "motorcycle",
    "bicycle",
    "traffic_cone",
    "barrier",
)
"""Class names the devkit accepts (its order, which is also the order of its per-class table)."""

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "pedestrian.moving",
    "pedestrian.sitting_lying_down",
    "pedestrian.standing",
    "cycle.with_rider",
    "cycle.without_rider",
    "vehicle.moving",
    "vehicle.parked",
    "vehicle.stopped",
)
"""Attribute names the devkit accepts ('' is accepted too)."""

_FIELDS = (
    "sample_token",
    "translation",
    "size",
    "rotation",
    "velocity",
    "detection_name",
    "detection_score",
    "attribute_name",
)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _vector(box: dict, key: str, n: int, where: str, finite: bool = True) -> list[float]:
    v = box[key]
    if not isinstance(v, (list, tuple)) or len(v) != n or not all(_is_num(x) for x in v):
        raise BevDeployError(
            f"{where}: '{key}' must be a list of {n} numbers, got {v!r}; fix the results file"
        )
    if finite and not all(math.isfinite(x) for x in v):
        raise BevDeployError(f"{where}: '{key}' has a non-finite value {v!r}; fix the results file")
    return [float(x) for x in v]


def validate_box(box: Any, token: str, where: str) -> None:
    """Check one result box the way the devkit would use it; raise one line naming what is wrong."""
    if not isinstance(box, dict):
        raise BevDeployError(
            f"{where}: a box must be a JSON object, got {type(box).__name__}; fix the results file"
        )
    absent = [k for k in _FIELDS if k not in box]
    if absent:
        raise BevDeployError(
            f"{where}: box lacks field(s) {', '.join(absent)}; every box needs {', '.join(_FIELDS)}"
        )
    if box["sample_token"] != token:
        raise BevDeployError(
            f"{where}: box sample_token {box['sample_token']!r} differs from its key {token!r}"
        )
    _vector(box, "translation", 3, where)
    size = _vector(box, "size", 3, where)
    if min(size) <= 0:
        raise BevDeployError(f"{where}: 'size' (w, l, h) must be positive, got {size}; fix the results file")
    rot = _vector(box, "rotation", 4, where)
    if not 0.5 < math.sqrt(sum(x * x for x in rot)) < 2.0:
        raise BevDeployError(f"{where}: 'rotation' must be a unit quaternion (w, x, y, z), got {rot}")
    _vector(box, "velocity", 2, where, finite=False)  # the devkit ignores NaN velocities
    name = box["detection_name"]
    if name not in DETECTION_NAMES:
        raise BevDeployError(
            f"{where}: unknown detection_name {name!r}; use one of {', '.join(DETECTION_NAMES)}"
        )
    score = box["detection_score"]
    if not _is_num(score) or not math.isfinite(score):
        raise BevDeployError(f"{where}: 'detection_score' must be a finite number, got {score!r}")
    attr = box["attribute_name"]
    if attr != "" and attr not in ATTRIBUTE_NAMES:
        raise BevDeployError(
            f"{where}: unknown attribute_name {attr!r}; use '' or one of {', '.join(ATTRIBUTE_NAMES)}"
        )


def validate_results(data: Any, where: str = "results", sample_tokens: list[str] | None = None) -> None:
    """Check a results dict: ``{"meta": {...}, "results": {token: [box, ...]}}``.

    With ``sample_tokens``, every one must be present and no other token may appear (the devkit
    requires the results to cover exactly the evaluated samples).
    """
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise BevDeployError(
            f"{where}: expected an object with a 'results' object mapping sample tokens to box lists"
        )
    if "meta" in data and not isinstance(data["meta"], dict):
        raise BevDeployError(f"{where}: 'meta' must be an object")
    for token, boxes in data["results"].items():
        if not isinstance(boxes, list):
            raise BevDeployError(f"{where}: results[{token!r}] must be a list of boxes ([] when none)")
        if len(boxes) > MAX_BOXES_PER_SAMPLE:
            raise BevDeployError(
                f"{where}: sample {token} has {len(boxes)} boxes, the devkit allows {MAX_BOXES_PER_SAMPLE}; keep the top-scoring ones"
            )
        for i, box in enumerate(boxes):
            validate_box(box, token, f"{where}: sample {token} box {i}")
    if sample_tokens is not None:
        expected = set(sample_tokens)
        missing = [t for t in sample_tokens if t not in data["results"]]
        if missing:
            raise BevDeployError(
                f"{where}: {len(missing)} sample(s) of the split are missing (e.g. {missing[0]}); include every sample, [] when empty"
            )
        extra = [t for t in data["results"] if t not in expected]
        if extra:
            raise BevDeployError(
                f"{where}: {len(extra)} sample token(s) are not in the split (e.g. {extra[0]}); check --split"
            )


def load_results_file(path: str | Path, dataset: Any | None = None) -> dict:
    """Read and validate a user's results JSON; with ``dataset``, also check it covers exactly
    ``dataset.sample_tokens``. Adds an empty ``meta`` when absent (the devkit needs the key)."""
    path = Path(path)
    if not path.is_file():
        raise BevDeployError(f"results file {path} does not exist; pass the path of a nuScenes results JSON")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BevDeployError(
            f"results file {path} is not valid JSON ({e}); write it with json.dump"
        ) from None
    tokens = list(dataset.sample_tokens) if dataset is not None else None
    validate_results(data, where=str(path), sample_tokens=tokens)
    data.setdefault("meta", {})
    return data
