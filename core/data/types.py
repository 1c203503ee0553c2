"""The records that flow between the loader, the models and the evaluator.

Conventions (shared by every plugin and the evaluator):
- Boxes are 3D boxes in the LiDAR (LIDAR_TOP sensor) frame of the key frame, as float32 arrays
  with columns ``x, y, z, l, w, h, yaw``: (x, y, z) is the box **centre**; ``l`` is the extent
  along the heading, ``w`` across it, ``h`` vertical (metres); ``yaw`` is the heading angle
  around +z in radians, 0 meaning the box points along +x. nuScenes' ``size`` is ``(w, l, h)``.
- Velocities are ``(vx, vy)`` in the LiDAR frame, metres per second.
- Class labels index :data:`DETECTION_CLASSES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DETECTION_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)
"""The 10 nuScenes detection classes, in the order mmdet3d-based models use for their heads."""

CAMERAS: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
"""Camera order of every per-camera array in a :class:`Sample`."""


@dataclass
class Sample:
    """One key frame with everything the model families need. Images load lazily.

    Per-camera arrays are stacked in :data:`CAMERAS` order. Matrices are 4x4 float64
    homogeneous transforms named ``a2b`` (maps points in frame a to frame b), except
    ``cam_intrinsics`` (6x3x3) and ``lidar2image`` (6x4x4: intrinsics @ lidar2camera).
    """

    token: str
    scene_token: str
    scene_name: str
    timestamp: int  # microseconds
    is_first_in_scene: bool
    prev_token: str  # "" for the first sample of a scene
    image_paths: list[str]  # absolute paths, CAMERAS order
    cam_intrinsics: np.ndarray  # (6, 3, 3)
    camera2ego: np.ndarray  # (6, 4, 4) sensor2ego of each camera
    camera_ego2global: np.ndarray  # (6, 4, 4) ego pose at each camera's timestamp
    lidar2camera: np.ndarray  # (6, 4, 4)
    lidar2image: np.ndarray  # (6, 4, 4)
    camera2lidar: np.ndarray  # (6, 4, 4)
    lidar2ego: np.ndarray  # (4, 4)
    ego2global: np.ndarray  # (4, 4) ego pose at the LiDAR key frame
    points: np.ndarray  # (N, 5) float32: x, y, z, intensity, time lag (s), LiDAR frame, with sweeps
    # (18,) float32 in BEVFormer's layout: ego translation in global (3), rotation quaternion
    # wxyz (4), acceleration (3), angular rate (3), velocity in the ego frame (3), yaw rad, yaw deg
    can_bus: np.ndarray
    delta_translation: np.ndarray  # (3,) ego translation since the previous sample (global), 0 at scene start
    delta_yaw_deg: float  # ego yaw change since the previous sample, 0 at scene start
    gt_boxes: np.ndarray  # (M, 7) float32, LiDAR frame, see module docstring
    gt_velocity: np.ndarray  # (M, 2) float32
    gt_labels: np.ndarray  # (M,) int64 index into DETECTION_CLASSES
    gt_names: list[str]  # (M,) detection class names
    gt_attributes: list[str]  # (M,) attribute name or ""
    gt_num_lidar_pts: np.ndarray  # (M,) int64
    extra: dict[str, Any] = field(default_factory=dict)
    _image_loader: Callable[[str], np.ndarray] | None = field(default=None, repr=False)

    def images(self, scale: float = 1.0) -> list[np.ndarray]:
        """The six camera images as HxWx3 uint8 RGB arrays (decoded on each call), resized by
        ``scale`` to ``images.scaled_size`` of the originals (cheaper than resizing after)."""
        from .images import read_rgb, resize_rgb, scaled_size

        if self._image_loader is None:
            return [read_rgb(p, scale) for p in self.image_paths]
        full = [self._image_loader(p) for p in self.image_paths]
        return full if scale == 1.0 else [resize_rgb(im, scaled_size(im.shape[:2], scale)) for im in full]


@dataclass
class Detections:
    """Detections of one sample in the LiDAR frame (see module docstring for conventions)."""

    boxes: np.ndarray  # (N, 7) float32
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64 into DETECTION_CLASSES
    velocity: np.ndarray  # (N, 2) float32
    attributes: list[str] | None = None  # optional nuScenes attribute names

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 7) or self.labels.shape != (n,) or self.velocity.shape != (n, 2):
            raise ValueError(
                f"inconsistent detection arrays: boxes {self.boxes.shape}, scores {self.scores.shape}, "
                f"labels {self.labels.shape}, velocity {self.velocity.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
        )
