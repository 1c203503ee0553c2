"""The world of one synthetic scene: a (straight or curving) street, the ego vehicle driving
along it, traffic in lanes, parked vehicles, pedestrians and cycles on the sidewalks, a work
zone with barriers and cones, and unannotated buildings and poles.

Every object moves in road coordinates (arc length ``s``, lateral offset ``d``) at constant
speed, so tracks on a curving street turn consistently and velocities are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .synth_classes import BUILDING_COLOURS, CLASS_SPECS, POLE_COLOUR, sample_size
from .types import DETECTION_CLASSES

EGO_LANE = -1.75
LANES = ((-5.25, 1.0), (-1.75, 1.0), (1.75, -1.0), (5.25, -1.0))  # (offset d, direction)
PARKING_D, SIDEWALK_D, ROAD_HALF, BUILDING_D = 8.3, (10.2, 13.8), 7.0, 15.5
SCENERY = -1  # class index of unannotated scenery


@dataclass(frozen=True)
class Road:
    """A street as a circular arc (``curvature`` 0: straight) starting at ``origin``."""

    origin: np.ndarray
    heading: float
    curvature: float

    def heading_at(self, s: np.ndarray) -> np.ndarray:
        return self.heading + self.curvature * s

    def point(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Global xy (..., 2) of road coordinates (s, d); d > 0 is left of the driving direction."""
        s, d = np.asarray(s, np.float64), np.asarray(d, np.float64)
        h0, k = self.heading, self.curvature
        if abs(k) < 1e-9:
            cx = self.origin[0] + s * np.cos(h0)
            cy = self.origin[1] + s * np.sin(h0)
        else:
            cx = self.origin[0] + (np.sin(h0 + k * s) - np.sin(h0)) / k
            cy = self.origin[1] - (np.cos(h0 + k * s) - np.cos(h0)) / k
        h = self.heading_at(s)
        return np.stack([cx - d * np.sin(h), cy + d * np.cos(h)], axis=-1)

    def to_sd(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Road coordinates (s, d) of global points (..., 2): the inverse of point()."""
        h0, k = self.heading, self.curvature
        rel = xy - self.origin
        if abs(k) < 1e-9:
            return rel[..., 0] * np.cos(h0) + rel[..., 1] * np.sin(h0), -rel[..., 0] * np.sin(h0) + rel[..., 1] * np.cos(h0)
        centre = np.array([-np.sin(h0), np.cos(h0)]) / k  # centre of the arc relative to origin
        v = rel - centre
        r = np.linalg.norm(v, axis=-1)
        d = (1.0 / k - r) if k > 0 else (r + 1.0 / k)
        # angle swept from the start point, seen from the centre, wrapped to (-pi, pi]
        start = np.arctan2(-centre[1], -centre[0])
        swept = (np.arctan2(v[..., 1], v[..., 0]) - start + np.pi) % (2 * np.pi) - np.pi
        return swept / k, d

    def lateral(self, xy: np.ndarray) -> np.ndarray:
        """Lateral offset d of global points (..., 2) from the centre line."""
        return self.to_sd(xy)[1]


@dataclass
class Objects:
    """Column store of every object in the scene (annotated ones have cls >= 0)."""

    cls: list[int] = field(default_factory=list)
    size: list[np.ndarray] = field(default_factory=list)  # l, w, h
    s0: list[float] = field(default_factory=list)
    d0: list[float] = field(default_factory=list)
    vs: list[float] = field(default_factory=list)
    vd: list[float] = field(default_factory=list)
    yaw_off: list[float] = field(default_factory=list)
    colour: list[tuple[int, int, int]] = field(default_factory=list)
    in_lane: list[bool] = field(default_factory=list)

    def add(
        self, cls: int, size: np.ndarray | tuple[float, float, float], s0: float, d0: float, vs: float, vd: float,
        yaw_off: float, colour: tuple[int, int, int], in_lane: bool,
    ) -> None:
        for name, v in zip(
            ("cls", "size", "s0", "d0", "vs", "vd", "yaw_off", "colour", "in_lane"),
            (cls, np.asarray(size, np.float64), s0, d0, vs, vd, yaw_off, colour, in_lane),
            strict=True,
        ):
            getattr(self, name).append(v)

    def __len__(self) -> int:
        return len(self.cls)


@dataclass
class World:
    road: Road
    ego_speed: float
    duration: float
    objects: Objects
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    crosswalks: list[float] = field(default_factory=list)  # arc lengths of zebra crossings

    def freeze(self) -> None:
        o = self.objects
        self.arrays = {
            "cls": np.asarray(o.cls, np.int64),
            "size": np.asarray(o.size, np.float64).reshape(-1, 3),
            "s0": np.asarray(o.s0, np.float64),
            "d0": np.asarray(o.d0, np.float64),
            "vs": np.asarray(o.vs, np.float64),
            "vd": np.asarray(o.vd, np.float64),
            "yaw_off": np.asarray(o.yaw_off, np.float64),
            "colour": np.asarray(o.colour, np.uint8).reshape(-1, 3),
            "in_lane": np.asarray(o.in_lane, bool),
        }

    def boxes_at(self, t: float) -> np.ndarray:
        """(n, 7) global boxes x, y, z(centre), l, w, h, yaw of every object at time t (s)."""
        a = self.arrays
        s, d = a["s0"] + a["vs"] * t, a["d0"] + a["vd"] * t
        xy = self.road.point(s, d)
        yaw = self.road.heading_at(s) + a["yaw_off"]
        return np.column_stack([xy, a["size"][:, 2] / 2, a["size"], yaw])

    def velocities_at(self, t: float) -> np.ndarray:
        """(n, 2) global xy velocity (m/s) of every object at time t."""
        a = self.arrays
        s, d = a["s0"] + a["vs"] * t, a["d0"] + a["vd"] * t
        h = self.road.heading_at(s)
        along = a["vs"] * (1 - self.road.curvature * d)
        return np.column_stack(
            [along * np.cos(h) - a["vd"] * np.sin(h), along * np.sin(h) + a["vd"] * np.cos(h)]
        )

    def ego_at(self, t: float) -> tuple[np.ndarray, float]:
        """Ego position (x, y) on the ground and yaw at time t."""
        s = self.ego_speed * t
        return self.road.point(s, EGO_LANE), float(self.road.heading_at(s))


class _Placer:
    """Rejects placements whose footprint would touch another object's or the ego's at any time
    of the scene. A footprint is a chain of discs that covers the whole rectangle, corners included."""

    def __init__(self, road: Road, times: np.ndarray) -> None:
        self.road, self.times = road, times
        self.centres: list[np.ndarray] = []  # each (T, k, 2)
        self.radii: list[np.ndarray] = []

    def _discs(
        self, size: np.ndarray, s0: float, d0: float, vs: float, vd: float, yaw_off: float
    ) -> tuple[np.ndarray, np.ndarray]:
        length, width = size[0], size[1]
        long_axis = 0.0 if length >= width else np.pi / 2
        major, minor = max(length, width), min(length, width)
        # k cells along the long axis, each covered by the disc through its corners
        k = max(1, int(np.ceil(2 * major / minor)))
        cell = major / k
        offs = (np.arange(k) + 0.5) * cell - major / 2
        s, d = s0 + vs * self.times, d0 + vd * self.times
        xy = self.road.point(s, d)
        yaw = self.road.heading_at(s) + yaw_off + long_axis
        dirs = np.stack([np.cos(yaw), np.sin(yaw)], -1)
        centres = xy[:, None, :] + offs[None, :, None] * dirs[:, None, :]
        return centres, np.full(k, 0.5 * np.hypot(cell, minor) + 0.05)

    def try_add(
        self, size: np.ndarray, s0: float, d0: float, vs: float = 0.0, vd: float = 0.0, yaw_off: float = 0.0
    ) -> bool:
        c, r = self._discs(size, s0, d0, vs, vd, yaw_off)
        if self.centres:
            allc = np.concatenate(self.centres, axis=1)
            allr = np.concatenate(self.radii)
            dist = np.linalg.norm(c[:, :, None, :] - allc[:, None, :, :], axis=-1)
            if (dist < r[None, :, None] + allr[None, None, :]).any():
                return False
        self.centres.append(c)
        self.radii.append(r)
        return True


def build_world(rng: np.random.Generator, duration: float) -> World:
    """Lay out one scene: street, ego, traffic, parking, sidewalks, a work zone, scenery."""
    road = Road(
        origin=np.array([rng.uniform(300, 1800), rng.uniform(300, 1800)]),
        heading=float(rng.uniform(-np.pi, np.pi)),
        curvature=0.0 if rng.random() < 0.5 else float(rng.choice([-1, 1]) * rng.uniform(1 / 400, 1 / 120)),
    )
    ego_speed = 0.0 if rng.random() < 0.15 else float(rng.uniform(3, 12))
    world = World(road, ego_speed, duration, Objects())
    times = np.linspace(0, duration, int(np.ceil(duration * 2)) + 1)
    placer = _Placer(road, times)
    placer.try_add(np.array([4.8, 2.0, 1.6]), 0.0, EGO_LANE, ego_speed)  # the ego itself
    span = (-60.0, ego_speed * duration + 60.0)
    world.crosswalks = sorted(float(c) for c in rng.uniform(span[0] + 20, span[1], int(rng.integers(1, 3))))
    _add_work_zone(world, placer, rng, span)
    _ensure_every_class(world, placer, rng)  # before the fill, which would leave no room for a trailer
    _add_scenery(world, placer, rng, span)
    _add_traffic(world, placer, rng, span)
    _add_parking(world, placer, rng, span)
    _add_sidewalks(world, placer, rng, span)
    world.freeze()
    return world


def _colour(name: str, rng: np.random.Generator) -> tuple[int, int, int]:
    base = np.asarray(CLASS_SPECS[name].colours[rng.integers(len(CLASS_SPECS[name].colours))], np.float64)
    return tuple(int(v) for v in np.clip(base * rng.uniform(0.85, 1.1) + rng.normal(0, 6, 3), 0, 255))


def _place(world: World, placer: _Placer, rng: np.random.Generator, name: str, s0: float, d0: float,
           vs: float = 0.0, vd: float = 0.0, yaw_off: float = 0.0, in_lane: bool = False,
           size: np.ndarray | None = None) -> bool:
    """Add one object unless it would collide. Retries must pass the same ``size``: drawing a new
    one per attempt would favour small objects and bias the size distribution."""
    size = sample_size(name, rng) if size is None else size
    if not placer.try_add(size, s0, d0, vs, vd, yaw_off):
        return False
    world.objects.add(DETECTION_CLASSES.index(name), size, s0, d0, vs, vd, yaw_off, _colour(name, rng), in_lane)
    return True


def _add_scenery(world: World, placer: _Placer, rng: np.random.Generator, span: tuple[float, float]) -> None:
    for side in (-1.0, 1.0):
        s = span[0] - 60
        while s < span[1] + 60:
            length, depth, height = rng.uniform(8, 30), rng.uniform(8, 20), rng.uniform(5, 18)
            colour = BUILDING_COLOURS[rng.integers(len(BUILDING_COLOURS))]
            world.objects.add(SCENERY, (length, depth, height), s + length / 2, side * (BUILDING_D + depth / 2),
                              0.0, 0.0, 0.0, colour, False)
            s += length + rng.uniform(0, 12)
        s = span[0] + rng.uniform(0, 20)
        while s < span[1]:
            size = np.array([0.25, 0.25, rng.uniform(5, 8)])
            if placer.try_add(size, s, side * 10.0):
                world.objects.add(SCENERY, size, s, side * 10.0, 0.0, 0.0, 0.0, POLE_COLOUR, False)
            s += rng.uniform(20, 35)


def _add_work_zone(world: World, placer: _Placer, rng: np.random.Generator, span: tuple[float, float]) -> None:
    """A row of barriers along the curb, cones continuing it, a construction vehicle behind."""
    side = float(rng.choice([-1.0, 1.0]))
    start = rng.uniform(-10, max(0.0, span[1] - 70))
    length = rng.uniform(10, 25)
    s = start
    while s < start + length:  # barriers stand across their heading: yaw = road + 90 deg
        _place(world, placer, rng, "barrier", s, side * 7.4, yaw_off=np.pi / 2 + rng.normal(0, 0.05))
        s += rng.uniform(2.7, 3.2)
    for s in np.arange(start - rng.uniform(8, 16), start - 1.5, rng.uniform(2.2, 3.5)):
        _place(world, placer, rng, "traffic_cone", s, side * 7.4 + rng.normal(0, 0.1))
    for s in np.arange(start + length + 1.5, start + length + rng.uniform(6, 12), 2.5):
        _place(world, placer, rng, "traffic_cone", s, side * 7.4 + rng.normal(0, 0.1))
    for _ in range(int(rng.integers(1, 3))):
        size = sample_size("construction_vehicle", rng)
        for _attempt in range(4):
            if _place(world, placer, rng, "construction_vehicle", rng.uniform(start - 5, start + length + 5),
                      side * 9.6, yaw_off=float(rng.uniform(-0.4, 0.4)), size=size):
                break


def _add_traffic(world: World, placer: _Placer, rng: np.random.Generator, span: tuple[float, float]) -> None:
    """Vehicles in the four lanes; one speed per lane so that a lane never collides with itself."""
    for d, direction in LANES:
        if d == EGO_LANE:
            speed = world.ego_speed
        else:
            speed = 0.0 if rng.random() < 0.1 else float(rng.uniform(3, 13))
        travel = speed * world.duration
        lo = span[0] - (travel if direction > 0 else 0) - 10
        hi = span[1] + (travel if direction < 0 else 0) + 10
        s = lo + rng.uniform(0, 10)
        while s < hi:
            name = str(rng.choice(["car", "truck", "bus", "motorcycle", "trailer", "bicycle"],
                                  p=[0.72, 0.1, 0.06, 0.05, 0.04, 0.03]))
            d_obj = d + rng.normal(0, 0.15)
            yaw = (0.0 if direction > 0 else np.pi) + rng.normal(0, 0.02)
            # the ego keeps a safe gap to its leader and follower (same speed: the gap stays)
            if d != EGO_LANE or abs(s) > 8.0 + 0.5 * world.ego_speed + CLASS_SPECS[name].size_mean[0] / 2:
                _place(world, placer, rng, name, s, d_obj, speed * direction, 0.0, yaw, in_lane=True)
            s += rng.uniform(8, 35)


def _add_parking(world: World, placer: _Placer, rng: np.random.Generator, span: tuple[float, float]) -> None:
    for side in (-1.0, 1.0):
        s = span[0] + rng.uniform(0, 8)
        while s < span[1]:
            name = str(rng.choice(["car", "truck", "trailer", "bus", "construction_vehicle", "motorcycle"],
                                  p=[0.74, 0.08, 0.06, 0.04, 0.03, 0.05]))
            yaw = (0.0 if side < 0 else np.pi) + rng.normal(0, 0.04)
            _place(world, placer, rng, name, s, side * PARKING_D + rng.normal(0, 0.1), yaw_off=yaw)
            s += rng.uniform(5.5, 16)


def _add_sidewalks(world: World, placer: _Placer, rng: np.random.Generator, span: tuple[float, float]) -> None:
    for side in (-1.0, 1.0):
        for _ in range(int(rng.integers(6, 14))):
            s, d = rng.uniform(*span), side * rng.uniform(*SIDEWALK_D)
            if rng.random() < 0.6:  # walking along the street
                v = float(rng.choice([-1, 1]) * rng.uniform(0.8, 1.7))
                _place(world, placer, rng, "pedestrian", s, d, v, 0.0, 0.0 if v > 0 else np.pi)
            else:
                _place(world, placer, rng, "pedestrian", s, d, yaw_off=float(rng.uniform(-np.pi, np.pi)))
        for _ in range(int(rng.integers(0, 4))):
            name = "bicycle" if rng.random() < 0.6 else "motorcycle"
            _place(world, placer, rng, name, rng.uniform(*span), side * 10.9,
                   yaw_off=np.pi / 2 + rng.normal(0, 0.2))
    for s_cross in world.crosswalks:  # pedestrians crossing the street on the zebra
        for _ in range(int(rng.integers(1, 4))):
            side = float(rng.choice([-1.0, 1.0]))
            v = -side * rng.uniform(1.0, 1.6)
            _place(world, placer, rng, "pedestrian", s_cross + rng.uniform(-1.5, 1.5), side * rng.uniform(9.8, 12),
                   0.0, v, np.sign(v) * np.pi / 2)


def _ensure_every_class(world: World, placer: _Placer, rng: np.random.Generator, minimum: int = 3) -> None:
    """Every scene shows each of the 10 classes at least ``minimum`` times near the ego's path,
    so that small splits score every class and rare classes get training examples."""
    near = (-40.0, world.ego_speed * world.duration + 50.0)  # within annotation range during the scene
    longest_first = sorted(DETECTION_CLASSES, key=lambda n: -CLASS_SPECS[n].size_mean[0])
    for name in longest_first:  # long trailers and buses need the emptiest kerb
        ci = DETECTION_CLASSES.index(name)
        have = sum(c == ci and near[0] < s < near[1]
                   for c, s in zip(world.objects.cls, world.objects.s0, strict=True))
        size = sample_size(name, rng)
        for _ in range(80):
            if have >= minimum:
                break
            side = float(rng.choice([-1.0, 1.0]))
            s = rng.uniform(*near)
            if name in ("pedestrian", "bicycle", "motorcycle", "traffic_cone"):
                d, yaw = side * rng.uniform(*SIDEWALK_D), float(rng.uniform(-np.pi, np.pi))
            elif name == "barrier":
                d, yaw = side * 10.6, np.pi / 2
            elif name == "construction_vehicle" and rng.random() < 0.5:  # on a site off the kerb
                d, yaw = side * 9.6, float(rng.uniform(-0.4, 0.4))
            else:
                d, yaw = side * PARKING_D, 0.0 if side < 0 else np.pi
            if _place(world, placer, rng, name, s, d, yaw_off=yaw, size=size):
                have += 1
                size = sample_size(name, rng)
