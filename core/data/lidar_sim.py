"""A 32-beam spinning LiDAR (HDL-32E-like: +10.67 .. -30.67 deg, as on the nuScenes car)
ray-cast against the ground plane and oriented boxes, with range noise, dropout and
intensity by material.

Speed: a box only tests the rays inside its azimuth/elevation window (a few hundred rays),
with a vectorised slab test, so a scan against ~150 boxes costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ELEVATIONS_DEG = np.linspace(10.67, -30.67, 32)
COLUMNS = 1084  # azimuth steps per revolution (~0.33 deg), ~35k rays per scan as in nuScenes
MAX_RANGE = 80.0
RANGE_NOISE = 0.015  # m, 1 sigma
SURFACE_INSET = 0.04  # objects are this much smaller than their annotated box, as labels are


def ray_directions(phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (32, C, 3) in the sensor frame, and the column azimuths (C,)."""
    az = phase + np.arange(COLUMNS) * (2 * np.pi / COLUMNS)
    el = np.radians(ELEVATIONS_DEG)
    dirs = np.stack(
        [
            np.cos(el)[:, None] * np.cos(az)[None, :],
            np.cos(el)[:, None] * np.sin(az)[None, :],
            np.broadcast_to(np.sin(el)[:, None], (32, COLUMNS)),
        ],
        -1,
    )
    return dirs, az


def _box_window(box_rel: np.ndarray, phase: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Columns and beams whose rays can reach a box given by its 8 corners in the sensor frame."""
    xy = box_rel[:, :2]
    dist = np.linalg.norm(xy, axis=1)
    if dist.min() < 0.5:
        return None
    az = np.arctan2(xy[:, 1], xy[:, 0])
    centre = np.arctan2(xy[:, 1].mean(), xy[:, 0].mean())
    rel = (az - centre + np.pi) % (2 * np.pi) - np.pi
    step = 2 * np.pi / COLUMNS
    lo = int(np.floor((centre + rel.min() - phase) / step)) - 1
    hi = int(np.ceil((centre + rel.max() - phase) / step)) + 1
    cols = np.arange(lo, hi + 1) % COLUMNS
    el = np.degrees(np.arctan2(box_rel[:, 2], dist))
    beams = np.nonzero((ELEVATIONS_DEG >= el.min() - 1.0) & (ELEVATIONS_DEG <= el.max() + 1.0))[0]
    if len(beams) == 0:
        return None
    return beams, cols


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(n, 8, 3) corners of boxes x, y, z(centre), l, w, h, yaw."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64) / 2
    local = signs[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], -1) + boxes[:, None, :3]


def cast(
    origin: np.ndarray, sensor2global: np.ndarray, boxes: np.ndarray, phase: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along every ray to the first hit (inf: none) and what was hit (-1 ground, i box).

    ``boxes`` (n, 7) are global; the ground is the plane z = 0."""
    dirs_s, _ = ray_directions(phase)
    rot = sensor2global[:3, :3]
    dirs_g = dirs_s @ rot.T
    best = np.full((32, COLUMNS), np.inf)
    hit = np.full((32, COLUMNS), -2, np.int64)
    down = dirs_g[..., 2] < -1e-6
    best[down] = -origin[2] / dirs_g[..., 2][down]
    hit[down] = -1
    corners_rel = (box_corners(boxes) - origin) @ rot  # to the sensor frame (rotation only)
    for i in np.nonzero(np.linalg.norm(boxes[:, :2] - origin[:2], axis=1) < MAX_RANGE + 15)[0]:
        window = _box_window(corners_rel[i], phase)
        if window is None:
            continue
        beams, cols = window
        d = dirs_g[beams[:, None], cols[None, :]]
        t = _slab(origin, d, boxes[i])
        sub_best = best[beams[:, None], cols[None, :]]
        closer = t < sub_best
        if closer.any():
            best[beams[:, None], cols[None, :]] = np.where(closer, t, sub_best)
            sub_hit = hit[beams[:, None], cols[None, :]]
            hit[beams[:, None], cols[None, :]] = np.where(closer, i, sub_hit)
    return best, hit


def _slab(origin: np.ndarray, dirs: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Entry distance of rays into one oriented box (inf where they miss or start inside)."""
    c, s = np.cos(box[6]), np.sin(box[6])
    rel = origin - box[:3]
    o = np.array([rel[0] * c + rel[1] * s, -rel[0] * s + rel[1] * c, rel[2]])
    d = np.stack([dirs[..., 0] * c + dirs[..., 1] * s, -dirs[..., 0] * s + dirs[..., 1] * c, dirs[..., 2]], -1)
    half = box[3:6] / 2 - SURFACE_INSET
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    t1, t2 = (-half - o) / d, (half - o) / d
    near = np.minimum(t1, t2).max(-1)
    far = np.maximum(t1, t2).min(-1)
    return np.where((far >= near) & (near > 0), near, np.inf)


def scan(
    rng: np.random.Generator,
    origin: np.ndarray,
    sensor2global: np.ndarray,
    boxes: np.ndarray,
    box_intensity: np.ndarray,
    ground_intensity: Callable[[np.ndarray], np.ndarray],  # global xy (n, 2) -> intensity (n,)
) -> np.ndarray:
    """One LiDAR sweep as (N, 5) float32 in the sensor frame: x, y, z, intensity, ring index."""
    phase = float(rng.uniform(0, 2 * np.pi / COLUMNS))
    dist, hit = cast(origin, sensor2global, boxes, phase)
    dirs, _ = ray_directions(phase)
    keep = np.isfinite(dist) & (dist < MAX_RANGE)
    # Dropout: random misses, more of them far away (weak returns) and on the ground.
    p_drop = 0.04 + 0.3 * (dist / MAX_RANGE) ** 2 + np.where(hit == -1, 0.03, 0.0)
    keep &= rng.random(dist.shape) >= np.where(keep, p_drop, 1.0)
    beams, cols = np.nonzero(keep)
    r = dist[beams, cols] + rng.normal(0, RANGE_NOISE, len(beams))
    xyz = dirs[beams, cols] * r[:, None]
    ids = hit[beams, cols]
    intensity = np.empty(len(ids))
    ground = ids == -1
    if ground.any():
        xy_g = (xyz[ground] @ sensor2global[:3, :3].T + origin)[:, :2]
        intensity[ground] = ground_intensity(xy_g)
    obj = ~ground
    intensity[obj] = box_intensity[ids[obj]]
    intensity *= rng.lognormal(0, 0.25, len(ids))
    intensity = np.clip(np.round(intensity), 0, 255)
    return np.column_stack([xyz, intensity, beams.astype(np.float64)]).astype(np.float32)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n_boxes,) number of points (N, >=3) inside each upright box x, y, z, l, w, h, yaw given
    in the same frame (use the global frame: boxes there only rotate about z)."""
    counts = np.zeros(len(boxes), np.int64)
    xyz = points[:, :3].astype(np.float64)
    for i, b in enumerate(boxes):
        radius = 0.5 * np.linalg.norm(b[3:6])
        near = np.nonzero(np.abs(xyz[:, 0] - b[0]) <= radius)[0]
        near = near[np.abs(xyz[near, 1] - b[1]) <= radius]
        rel = xyz[near] - b[:3]
        c, s = np.cos(b[6]), np.sin(b[6])
        lx, ly = rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c
        inside = (np.abs(lx) <= b[3] / 2) & (np.abs(ly) <= b[4] / 2) & (np.abs(rel[:, 2]) <= b[5] / 2)
        counts[i] = int(inside.sum())
    return counts
