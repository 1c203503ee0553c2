"""What each detection class looks like in the synthetic world: size distribution, nuScenes
category, LiDAR reflectivity, and how its faces are painted in the cameras.

Mean sizes are the nuScenes training-set means (as used for anchors by mmdet3d-based models),
so a model's size prior learned here is the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ClassSpec:
    name: str
    category: str  # nuScenes category name
    size_mean: tuple[float, float, float]  # l, w, h (m)
    size_std: tuple[float, float, float]
    intensity: tuple[float, float]  # mean, std of LiDAR intensity (0..255)
    colours: tuple[RGB, ...]  # body colours, one chosen per instance
    style: str  # painting style, see camera_render.face_bands


CLASS_SPECS: dict[str, ClassSpec] = {
    s.name: s
    for s in (
        ClassSpec("car", "vehicle.car", (4.62, 1.95, 1.73), (0.35, 0.12, 0.12), (22, 10),
                  ((200, 200, 205), (30, 30, 35), (150, 150, 155), (170, 30, 30), (40, 70, 150), (90, 95, 100)),
                  "vehicle"),
        ClassSpec("truck", "vehicle.truck", (6.93, 2.51, 2.84), (1.2, 0.2, 0.35), (30, 12),
                  ((235, 235, 235), (220, 120, 30), (60, 90, 60), (120, 40, 40)), "truck"),
        ClassSpec("construction_vehicle", "vehicle.construction", (6.37, 2.85, 3.19), (1.0, 0.25, 0.35), (35, 12),
                  ((235, 185, 20), (240, 150, 20)), "construction"),
        ClassSpec("bus", "vehicle.bus.rigid", (10.5, 2.94, 3.47), (1.0, 0.05, 0.2), (28, 10),
                  ((200, 40, 40), (40, 90, 180), (235, 235, 235)), "bus"),
        ClassSpec("trailer", "vehicle.trailer", (12.29, 2.90, 3.87), (1.5, 0.05, 0.3), (26, 10),
                  ((210, 210, 215), (160, 160, 165), (120, 110, 100)), "box"),
        ClassSpec("barrier", "movable_object.barrier", (0.50, 2.53, 0.98), (0.05, 0.2, 0.08), (90, 20),
                  ((220, 40, 30), (230, 120, 20)), "barrier"),
        ClassSpec("motorcycle", "vehicle.motorcycle", (2.11, 0.77, 1.47), (0.15, 0.08, 0.1), (24, 10),
                  ((20, 20, 25), (150, 20, 20), (40, 40, 120)), "cycle"),
        ClassSpec("bicycle", "vehicle.bicycle", (1.70, 0.60, 1.28), (0.1, 0.06, 0.1), (16, 8),
                  ((20, 90, 40), (30, 30, 30), (200, 200, 40)), "cycle"),
        ClassSpec("pedestrian", "human.pedestrian.adult", (0.73, 0.67, 1.77), (0.1, 0.08, 0.1), (12, 6),
                  ((60, 60, 140), (140, 40, 40), (40, 110, 60), (220, 220, 210), (30, 30, 30)), "person"),
        ClassSpec("traffic_cone", "movable_object.trafficcone", (0.41, 0.41, 1.07), (0.04, 0.04, 0.12), (110, 25),
                  ((250, 110, 20),), "cone"),
    )
}

# Unannotated scenery (walls of buildings, poles): what a detector must learn to ignore.
BUILDING_COLOURS: tuple[RGB, ...] = ((180, 170, 150), (150, 140, 135), (200, 190, 170), (120, 115, 110))
POLE_COLOUR: RGB = (110, 110, 110)
SCENERY_INTENSITY = (35.0, 12.0)

ATTRIBUTES: tuple[str, ...] = (
    "vehicle.moving",
    "vehicle.stopped",
    "vehicle.parked",
    "cycle.with_rider",
    "cycle.without_rider",
    "pedestrian.sitting_lying_down",
    "pedestrian.standing",
    "pedestrian.moving",
)
VEHICLES = ("car", "truck", "construction_vehicle", "bus", "trailer")
CYCLES = ("motorcycle", "bicycle")


def attribute_for(name: str, speed: float, in_lane: bool) -> str:
    """The nuScenes attribute valid for the class, chosen from how the object moves."""
    moving = speed > 0.3
    if name in VEHICLES:
        return "vehicle.moving" if moving else ("vehicle.stopped" if in_lane else "vehicle.parked")
    if name in CYCLES:
        return "cycle.with_rider" if moving or in_lane else "cycle.without_rider"
    if name == "pedestrian":
        return "pedestrian.moving" if moving else "pedestrian.standing"
    return ""


def sample_size(name: str, rng: np.random.Generator) -> np.ndarray:
    """l, w, h drawn around the nuScenes mean, clipped to stay plausible (and within a lane)."""
    spec = CLASS_SPECS[name]
    mean, std = np.asarray(spec.size_mean), np.asarray(spec.size_std)
    size = mean + rng.normal(0, 1, 3) * std
    size = np.clip(size, mean * 0.7, mean * 1.3)
    size[1] = min(size[1], 3.1)
    return size
