"""Data layer: the nuScenes loader (real or built-in synthetic dataroot) and the generator.

Entry point for the pipeline: :func:`open_dataset` turns a :class:`~bevdeploy.specs.run.DataSpec`
into a :class:`~bevdeploy.data.nuscenes.NuScenesDataset`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import BevDeployError

if TYPE_CHECKING:
    from ..specs.run import DataSpec
    from .nuscenes import NuScenesDataset

Role = Literal["eval", "calib"]


def default_split(version: str, role: Role, builtin: bool = False, custom: Iterable[str] = ()) -> str:
    """The split a role uses when none is given: a synthetic set's own splits (also when a
    generated dataroot is passed explicitly: its splits.json has them), else the devkit's
    (trainval: val / train, mini: mini_val / mini_train)."""
    from .synth import CALIB_SPLIT, VAL_SPLIT

    synth = VAL_SPLIT if role == "eval" else CALIB_SPLIT
    if builtin or synth in custom:
        return synth
    if version.endswith("mini"):
        return "mini_val" if role == "eval" else "mini_train"
    if version.endswith("trainval"):
        return "val" if role == "eval" else "train"
    raise BevDeployError(f"no default {role} split for version {version}; pass --split (a name from splits.json)")


def open_dataset(spec: DataSpec, role: Role = "eval", sweeps: int = 9) -> NuScenesDataset:
    """The dataset a run evaluates (role 'eval') or calibrates on (role 'calib').

    ``spec.dataroot`` None means the built-in synthetic set (generated on first use). A given
    ``spec.split`` is used as is for either role; None picks :func:`default_split`. For
    calibration, pass a spec whose split is the calibration split (``QuantSpec.calib_split``)."""
    from .builtin import builtin_dataroot
    from .nuscenes import NuScenesDataset, custom_splits

    if spec.dataroot is None:
        dataroot, version = builtin_dataroot()
        split = spec.split or default_split(version, role, builtin=True)
    else:
        dataroot, version = spec.dataroot, spec.version
        split = spec.split or default_split(version, role, custom=custom_splits(Path(dataroot), version))
    return NuScenesDataset(dataroot, version, split, sweeps=sweeps, max_samples=spec.max_samples)


__all__ = ["default_split", "open_dataset"]
