"""What the cameras see, as flat coloured quads built once per scene: every object's painted
pieces in its own frame (bands of windows, tyres, clothes, stripes) and the street's ground
quads (asphalt, sidewalks, lane markings) in the global frame.

Rendering a frame then only moves the object pieces to their pose, which is vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
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
        return [(0, 0.45, (45, 50, 70)), (0.45, 0.85, None), (0.85, 1, SKIN)]  # hair: see face_decals
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
    """Flat quads in their owners' frames: ``quads`` (n, 4, 3), ``colour`` (n, 3) float,
    ``normal`` (n, 3), ``owner`` (n,), ``anchor`` (n, 3) the centre of the face a piece lies on
    and ``rank`` (n,) its drawing order on that face (decals after the paint beneath them)."""

    quads: np.ndarray
    colour: np.ndarray
    normal: np.ndarray
    owner: np.ndarray
    anchor: np.ndarray
    rank: np.ndarray

    def subset(self, keep: np.ndarray) -> Pieces:
        return Pieces(*(getattr(self, f)[keep] for f in ("quads", "colour", "normal", "owner", "anchor", "rank")))


Rect = tuple[float, float, float, float, tuple[int, int, int]]  # u0, u1, z0, z1 (face fractions), colour
HEAD, TAIL, HAIR = (245, 240, 200), (190, 20, 20), (50, 35, 25)
_LAMPS = {"vehicle": (0.28, 0.4), "truck": (0.2, 0.3), "bus": (0.15, 0.25), "construction": (0.3, 0.38)}


def face_decals(style: str, face: int) -> list[Rect]:
    """Small marks that tell front from back: headlights, tail lights, a face."""
    if style in _LAMPS and face in (0, 1):
        z0, z1 = _LAMPS[style]
        colour = HEAD if face == 0 else TAIL
        return [(0.07, 0.22, z0, z1, colour), (0.78, 0.93, z0, z1, colour)]
    if style == "box" and face == 1:
        return [(0.05, 0.15, 0.2, 0.27, TAIL), (0.85, 0.95, 0.2, 0.27, TAIL)]
    if style == "cycle" and face in (0, 1):
        return [(0.35, 0.65, 0.4, 0.5, HEAD if face == 0 else TAIL)]
    if style == "person" and face != 0:
        return [(0.0, 1.0, 0.85, 1.0, HAIR)]  # the face (skin) only shows from the front
    return []


def _rect(q: np.ndarray, u0: float, u1: float, z0: float, z1: float) -> np.ndarray:
    """The part of face quad q (bottom-a, bottom-b, top-b, top-a) between fractions u and z."""
    lo_a, lo_b = q[0] + z0 * (q[3] - q[0]), q[1] + z0 * (q[2] - q[1])
    hi_a, hi_b = q[0] + z1 * (q[3] - q[0]), q[1] + z1 * (q[2] - q[1])
    return np.array([lo_a + u0 * (lo_b - lo_a), lo_a + u1 * (lo_b - lo_a),
                     hi_a + u1 * (hi_b - hi_a), hi_a + u0 * (hi_b - hi_a)])


def _box_pieces(cls: int, size: np.ndarray, colour: np.ndarray) -> list[tuple]:
    """(quad, colour, normal, anchor, rank) of every painted piece of a box's sides and top."""
    style = "building" if cls < 0 else CLASS_SPECS[DETECTION_CLASSES[cls]].style
    corners = box_corners(np.array([[0, 0, 0, *size, 0.0]]))[0]
    out = []
    for fi, idx in enumerate(SIDE_FACES):
        q = corners[list(idx)]
        centre = q.mean(0)
        normal = np.sign(centre) * (np.abs(centre) > 1e-9)
        stripes = 4 if style == "barrier" and fi < 2 else 1  # red/white stripes on the long faces
        # Long faces of vehicles are painted in ~3 m segments, each sorted by its own distance,
        # so that a pedestrian beside a bus's far end is not hidden by its near end.
        extent = float(np.linalg.norm(q[1] - q[0]))
        segments = 1 if style == "building" else max(1, int(np.ceil(extent / 3.0)))
        for z0, z1, band_colour in face_bands(style, fi):
            base = colour if band_colour is None else np.array(band_colour, float)
            for k in range(stripes):
                col = base if (k % 2 == 0 or band_colour is not None) else np.array(WHITE, float)
                u0, u1 = k / stripes, (k + 1) / stripes
                for j in range(segments):
                    a, b = u0 + (u1 - u0) * j / segments, u0 + (u1 - u0) * (j + 1) / segments
                    anchor = _rect(q, a, b, 0.0, 1.0).mean(0)
                    out.append((_rect(q, a, b, z0, z1), col, normal, anchor, 0))
        for u0, u1, z0, z1, decal_colour in face_decals(style, fi):
            out.append((_rect(q, u0, u1, z0, z1), np.array(decal_colour, float), normal, centre, 1))
    top = {"person": np.array(HAIR, float), "cycle": np.array((60.0, 60, 60))}.get(style, colour)
    top_quad = corners[list(TOP_FACE)]
    out.append((top_quad, top, np.array([0.0, 0.0, 1.0]), top_quad.mean(0), 0))
    return out


def object_pieces(cls: np.ndarray, size: np.ndarray, colour: np.ndarray) -> Pieces:
    """Every object's painted quads in its own frame (centre at the origin, heading +x)."""
    rows, owner = [], []
    for i in range(len(cls)):
        pieces = _box_pieces(int(cls[i]), size[i], colour[i].astype(float))
        rows.extend(pieces)
        owner.extend([i] * len(pieces))
    quads, colours, normals, anchors, ranks = (np.asarray(col) for col in zip(*rows, strict=True))
    return Pieces(quads, colours.astype(float), normals.astype(float), np.asarray(owner), anchors, ranks)


def place(pieces: Pieces, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quads (n, 4, 3), normals (n, 3) and face anchors (n, 3) of every piece in the global
    frame, for boxes (n, 7) at one instant."""
    b = boxes[pieces.owner]
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])

    def move(p: np.ndarray, translate: bool) -> np.ndarray:
        cc, ss = c.reshape((-1,) + (1,) * (p.ndim - 2)), s.reshape((-1,) + (1,) * (p.ndim - 2))
        out = np.stack([p[..., 0] * cc - p[..., 1] * ss, p[..., 0] * ss + p[..., 1] * cc, p[..., 2]], -1)
        if translate:
            out = out + b[:, :3].reshape((-1,) + (1,) * (p.ndim - 2) + (3,))
        return out

    return move(pieces.quads, True), move(pieces.normal, False), move(pieces.anchor, True)


def zebra_stripes(s_cross: float) -> list[tuple[float, float, float, float]]:
    """(s0, s1, d0, d1) of the painted stripes of a zebra crossing centred at arc length s."""
    d = np.arange(-ROAD_HALF, ROAD_HALF, 1.0)
    return [(s_cross - 2.0, s_cross + 2.0, float(d0), float(d0) + 0.5) for d0 in d]


def ground_pieces(
    road: Road, s_lo: float, s_hi: float, crosswalks: Sequence[float] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Street surface quads (global, z = 0) and colours: sidewalks, asphalt, lane markings,
    zebra crossings."""
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
    stripes = [z for c in crosswalks for z in zebra_stripes(c)]
    if stripes:
        st = np.asarray(stripes)
        corners = [road.point(st[:, a], st[:, b]) for a, b in ((0, 2), (1, 2), (1, 3), (0, 3))]
        q = np.stack(corners, 1)
        quads.append(np.concatenate([q, np.zeros((*q.shape[:2], 1))], -1))
        colours.append(np.broadcast_to(np.array((235.0, 235, 235)), (len(q), 3)))
    return np.concatenate(quads), np.concatenate(colours)
