"""What the cameras see, as flat coloured quads built once per scene: every object's painted
pieces in its own frame (bands of windows, tyres, clothes, stripes) and the street's ground
quads (asphalt, sidewalks, lane markings) in the global frame.

Rendering a frame then only moves the object pieces to their pose, which is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lidar_sim import box_corners
from .synth_classes import CLASS_SPECS
from .synth_world import ROAD_HALF, SIDEWALK_D, Road
from .types import DETECTION_CLASSES

# Side faces of a box as corner indices (see lidar_sim.box_corners), bottom edge first.
SIDE_FACES = ((4, 6, 7, 5), (2, 0, 1, 3), (6, 2, 3, 7), (0, 4, 5, 1))  # +x, -x, +y, -y
TOP_FACE = (1, 5, 7, 3)
DARK, WINDOW, SKIN, WHITE = (28, 28, 30), (45, 55, 68), (200, 160, 130), (245, 245, 245)
Band = tuple[float, float, "tuple[int, int, int] | None"]  # z from, z to (fractions), colour (None = body)


def face_bands(style: str, face: int) -> list[Band]:
    """How a side face (0 front, 1 back, 2/3 sides) is painted, bottom to top."""
    if style == "vehicle":
        return [(0, 0.14, DARK), (0.14, 0.55, None), (0.55, 0.9, WINDOW), (0.9, 1, None)]
    if style == "truck":
        return [(0, 0.15, DARK), (0.15, 0.6, None), (0.6, 0.85, WINDOW if face == 0 else None), (0.85, 1, None)]
    if style == "construction":
        return [(0, 0.25, DARK), (0.25, 0.7, None), (0.7, 0.92, WINDOW), (0.92, 1, None)]
    if style == "bus":
        return [(0, 0.1, DARK), (0.1, 0.45, None), (0.45, 0.85, WINDOW), (0.85, 1, None)]
    if style == "box":
        return [(0, 0.25, DARK), (0.25, 1, None)]
    if style == "cycle":
        return [(0, 0.45, DARK), (0.45, 0.82, None), (0.82, 1, (60, 60, 60))]
    if style == "person":
        return [(0, 0.45, (45, 50, 70)), (0.45, 0.85, None), (0.85, 1, SKIN)]
    if style == "cone":
        return [(0, 0.08, DARK), (0.08, 0.45, None), (0.45, 0.62, WHITE), (0.62, 1, None)]
    if style == "barrier":
        return [(0, 0.15, (120, 120, 120)), (0.15, 1, None)]
    if style == "building":
        floors = [(float(f), float(f) + 0.05, (60, 70, 85)) for f in np.arange(0.2, 0.95, 0.17)]
        return [(0, 0.08, (90, 90, 90)), (0.08, 1, None), *floors]
    return [(0, 1, None)]


@dataclass(frozen=True)
class Pieces:
    """Flat quads: ``quads`` (n, 4, 3), ``colour`` (n, 3) float, ``normal`` (n, 3), ``owner`` (n,)."""

    quads: np.ndarray
    colour: np.ndarray
    normal: np.ndarray
    owner: np.ndarray


def _box_pieces(cls: int, size: np.ndarray, colour: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    style = "building" if cls < 0 else CLASS_SPECS[DETECTION_CLASSES[cls]].style
    corners = box_corners(np.array([[0, 0, 0, *size, 0.0]]))[0]
    out = []
    for fi, idx in enumerate(SIDE_FACES):
        q = corners[list(idx)]  # bottom-a, bottom-b, top-b, top-a
        centre = q.mean(0)
        normal = np.sign(centre) * (np.abs(centre) > 1e-9)
        stripes = 4 if style == "barrier" and fi < 2 else 1  # red/white stripes on the long faces
        for z0, z1, band_colour in face_bands(style, fi):
            base = colour if band_colour is None else np.array(band_colour, float)
            lo_a, lo_b = q[0] + z0 * (q[3] - q[0]), q[1] + z0 * (q[2] - q[1])
            hi_a, hi_b = q[0] + z1 * (q[3] - q[0]), q[1] + z1 * (q[2] - q[1])
            for k in range(stripes):
                u0, u1 = k / stripes, (k + 1) / stripes
                col = base if (k % 2 == 0 or band_colour is not None) else np.array(WHITE, float)
                poly = np.array([lo_a + u0 * (lo_b - lo_a), lo_a + u1 * (lo_b - lo_a),
                                 hi_a + u1 * (hi_b - hi_a), hi_a + u0 * (hi_b - hi_a)])
                out.append((poly, col, normal))
    top = {"person": np.array(SKIN, float), "cycle": np.array((60.0, 60, 60))}.get(style, colour)
    out.append((corners[list(TOP_FACE)], top, np.array([0.0, 0.0, 1.0])))
    return out


def object_pieces(cls: np.ndarray, size: np.ndarray, colour: np.ndarray) -> Pieces:
    """Every object's painted quads in its own frame (centre at the origin, heading +x)."""
    quads, colours, normals, owner = [], [], [], []
    for i in range(len(cls)):
        for q, c, n in _box_pieces(int(cls[i]), size[i], colour[i].astype(float)):
            quads.append(q)
            colours.append(c)
            normals.append(n)
            owner.append(i)
    return Pieces(np.asarray(quads), np.asarray(colours, float), np.asarray(normals, float), np.asarray(owner))


def place(pieces: Pieces, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quads and normals of every piece in the global frame for boxes (n, 7) at one instant."""
    b = boxes[pieces.owner]
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    q = pieces.quads
    x = q[..., 0] * c - q[..., 1] * s + b[:, 0:1]
    y = q[..., 0] * s + q[..., 1] * c + b[:, 1:2]
    z = q[..., 2] + b[:, 2:3]
    n = pieces.normal
    normals = np.stack([n[:, 0] * c[:, 0] - n[:, 1] * s[:, 0], n[:, 0] * s[:, 0] + n[:, 1] * c[:, 0], n[:, 2]], -1)
    return np.stack([x, y, z], -1), normals


def ground_pieces(road: Road, s_lo: float, s_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Street surface quads (global, z = 0) and colours: sidewalks, asphalt, lane markings."""
    quads, colours = [], []

    def strips(s: np.ndarray, d0: float, d1: float, colour: tuple[int, int, int]) -> None:
        left, right = road.point(s, np.full_like(s, d1)), road.point(s, np.full_like(s, d0))
        q = np.stack([right[:-1], right[1:], left[1:], left[:-1]], 1)
        quads.append(np.concatenate([q, np.zeros((*q.shape[:2], 1))], -1))
        colours.append(np.broadcast_to(np.array(colour, float), (len(q), 3)))

    s = np.arange(s_lo, s_hi + 6.0, 6.0)
    edge = ROAD_HALF + 2.6
    strips(s, -SIDEWALK_D[1] - 1.7, -edge, (150, 150, 145))
    strips(s, edge, SIDEWALK_D[1] + 1.7, (150, 150, 145))
    strips(s, -edge, edge, (78, 78, 82))
    for d, dashed, colour in ((-3.5, True, (230, 230, 230)), (3.5, True, (230, 230, 230)),
                              (-ROAD_HALF, False, (230, 230, 230)), (ROAD_HALF, False, (230, 230, 230)),
                              (-0.12, False, (220, 180, 40)), (0.12, False, (220, 180, 40))):
        # 3 m segments: every third one for dashed lines, all of them for solid ones
        starts = np.arange(np.floor(s_lo / 9) * 9, s_hi, 9.0 if dashed else 3.0)
        seg = np.stack([starts, starts + 3.0], 1)
        left = road.point(seg, np.full_like(seg, d + 0.08))
        right = road.point(seg, np.full_like(seg, d - 0.08))
        q = np.stack([right[:, 0], right[:, 1], left[:, 1], left[:, 0]], 1)
        quads.append(np.concatenate([q, np.zeros((*q.shape[:2], 1))], -1))
        colours.append(np.broadcast_to(np.array(colour, float), (len(q), 3)))
    return np.concatenate(quads), np.concatenate(colours)
