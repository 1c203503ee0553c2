"""Sensor rig of the synthetic dataset: nuScenes-like calibrations.

The extrinsics and intrinsics are those of a real nuScenes vehicle, so the loader's
transform chain (sensor -> ego -> global, LIDAR_TOP rotated ~-90 deg about z) is exercised
exactly as it is on real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import make_transform, matrix_to_quat, quat_to_matrix, rot_z
from .types import CAMERAS

LIDAR = "LIDAR_TOP"

# (translation in the ego frame [m], rotation quaternion wxyz, focal [px], principal point [px])
_CAMERA_CALIB: dict[str, tuple[tuple[float, ...], tuple[float, ...], float, tuple[float, float]]] = {
    "CAM_FRONT": (
        (1.70079, 0.01595, 1.51096),
        (0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755),
        1266.417,
        (816.267, 491.507),
    ),
    "CAM_FRONT_RIGHT": (
        (1.55085, -0.49340, 1.49575),
        (0.2060347966337182, -0.2026940577919598, 0.6824507824531167, -0.6713610884174485),
        1260.847,
        (807.968, 495.334),
    ),
    "CAM_FRONT_LEFT": (
        (1.52388, 0.49463, 1.50933),
        (0.6757265034669446, -0.6736266522251881, 0.21214015046209478, -0.21122827103904068),
        1272.598,
        (826.615, 479.752),
    ),
    "CAM_BACK": (
        (0.02833, 0.00345, 1.57910),
        (0.5037872666382278, -0.49740249788611096, -0.4941850223835201, 0.5045496097725578),
        809.221,
        (829.220, 481.778),
    ),
    "CAM_BACK_LEFT": (
        (1.03569, 0.48480, 1.59097),
        (0.6924185592174665, -0.7031619420114925, -0.11648342771943819, 0.11203317912370753),
        1256.741,
        (792.113, 492.776),
    ),
    "CAM_BACK_RIGHT": (
        (1.01488, -0.48057, 1.56240),
        (0.12280980120078765, -0.132400842670559, -0.7004305821388234, 0.690496031265798),
        1259.514,
        (807.253, 501.196),
    ),
}
_LIDAR_CALIB = (
    (0.943713, 0.0, 1.84023),
    (0.7077955119163518, -0.006492242056004365, 0.010646214713995808, -0.7063073142877817),
)
# Camera trigger offsets from the LiDAR key frame (microseconds): the cameras fire as the
# spinning LiDAR sweeps past them, so their ego poses differ slightly from the key frame's.
CAMERA_TIME_OFFSET_US: dict[str, int] = {
    "CAM_FRONT": 12_000,
    "CAM_FRONT_RIGHT": 20_000,
    "CAM_FRONT_LEFT": 4_000,
    "CAM_BACK": 37_000,
    "CAM_BACK_LEFT": 45_000,
    "CAM_BACK_RIGHT": 29_000,
}


@dataclass(frozen=True)
class SensorCalib:
    """One calibrated sensor: sensor -> ego transform and, for cameras, the intrinsics."""

    channel: str
    translation: np.ndarray  # (3,)
    rotation: np.ndarray  # (4,) wxyz
    intrinsic: np.ndarray | None  # (3, 3) for cameras

    @property
    def sensor2ego(self) -> np.ndarray:
        return make_transform(quat_to_matrix(self.rotation), self.translation)


def rig_calibration(rng: np.random.Generator | None) -> dict[str, SensorCalib]:
    """The rig of one scene: nuScenes' calibration perturbed slightly (as each real log's is),
    so models cannot memorise one matrix; with ``rng`` None, nuScenes' calibration itself."""
    out: dict[str, SensorCalib] = {}
    for channel in CAMERAS:
        trans, quat, f, (cx, cy) = _CAMERA_CALIB[channel]
        t, rot = np.asarray(trans, np.float64), np.asarray(quat) / np.linalg.norm(quat)
        if rng is not None:  # the draws in this order keep the built-in dataset's scenes as they were
            rot = matrix_to_quat(rot_z(rng.normal(0, np.radians(0.3))) @ quat_to_matrix(quat))
            f = f * (1 + rng.normal(0, 0.003))
            cx, cy = cx + rng.normal(0, 2), cy + rng.normal(0, 2)
            t = t + rng.normal(0, 0.01, 3)
        k = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
        out[channel] = SensorCalib(channel, t, rot, k)
    trans, quat = _LIDAR_CALIB
    out[LIDAR] = SensorCalib(LIDAR, np.asarray(trans, np.float64), np.asarray(quat) / np.linalg.norm(quat), None)
    return out


def scale_intrinsic(k: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics for an image size other than nuScenes' 1600x900 (used for small test sets)."""
    sx, sy = image_size[0] / 1600.0, image_size[1] / 900.0
    out = k.copy()
    out[0] *= sx
    out[1] *= sy
    return out
