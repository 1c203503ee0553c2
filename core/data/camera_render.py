"""Camera images of a synthetic scene, rendered with the calibrated intrinsics and extrinsics:
sky and ground, the street (see camera_geometry), object shadows, then every visible object
piece far-to-near (painter's algorithm with back-face culling), shaded by the sun, fogged
with distance, blurred and noised like a real sensor, JPEG-encoded.

A quarter-resolution id buffer drawn in the same order gives each object's visible fraction,
from which the nuScenes visibility level is derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .camera_geometry import Pieces, place
from .lidar_sim import box_corners

NEAR = 0.3  # m, near clipping plane
FAR = 150.0
SUN = np.array([0.45, 0.3, 0.84]) / np.linalg.norm([0.45, 0.3, 0.84])
SKY_TOP, SKY_HORIZON = np.array([70.0, 120.0, 190.0]), np.array([185.0, 205.0, 225.0])
GROUND = ((400, (105, 110, 95)), (120, (100, 108, 90)), (40, (96, 104, 86)))  # half size, colour
FOG_DISTANCE = 260.0
ID_SCALE = 4  # id buffer resolution divisor
SUBPIXEL = 3  # fillPoly fractional bits


@dataclass(frozen=True)
class Environment:
    """Lighting of a scene: sun direction and sky colours (varied per scene)."""

    sun: np.ndarray = field(default_factory=SUN.copy)
    sky_top: np.ndarray = field(default_factory=SKY_TOP.copy)
    sky_horizon: np.ndarray = field(default_factory=SKY_HORIZON.copy)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Environment:
        azimuth, elevation = rng.uniform(-np.pi, np.pi), np.radians(rng.uniform(25, 70))
        sun = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
        tint = rng.normal(0, 8, 3)
        return cls(sun, np.clip(SKY_TOP + tint, 0, 255), np.clip(SKY_HORIZON + tint * 0.5, 0, 255))


@dataclass(frozen=True)
class Camera:
    intrinsic: np.ndarray  # 3x3
    cam2global: np.ndarray  # 4x4
    size: tuple[int, int]  # width, height

    def to_cam(self, pts: np.ndarray) -> np.ndarray:
        return (pts - self.cam2global[:3, 3]) @ self.cam2global[:3, :3]


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon (k, 3) against z >= NEAR."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[2] >= NEAR, b[2] >= NEAR
        if a_in:
            out.append(a)
        if a_in != b_in:
            out.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    return np.asarray(out).reshape(-1, 3)


def shade(colour: np.ndarray, normal: np.ndarray, distance: np.ndarray, env: Environment) -> np.ndarray:
    """Lambert shading with ambient light, then distance fog towards the horizon colour."""
    light = 0.5 + 0.5 * np.clip(normal @ env.sun, 0.0, None)
    fog = 1 - np.exp(-distance / FOG_DISTANCE)
    return np.clip(colour * (light * (1 - fog))[:, None] + env.sky_horizon * fog[:, None], 0, 255)


class Canvas:
    """An image plus its quarter-resolution id buffer, drawn in painter's order."""

    _sky: dict[tuple, np.ndarray] = {}

    def __init__(self, cam: Camera, env: Environment) -> None:
        self.cam, self.env = cam, env
        w, h = cam.size
        key = (cam.size, tuple(env.sky_top), tuple(env.sky_horizon))
        if key not in self._sky:
            if len(self._sky) > 8:
                self._sky.clear()
            rows = np.linspace(0, 1, h)[:, None]
            sky = env.sky_top * (1 - rows) + env.sky_horizon * rows
            self._sky[key] = np.ascontiguousarray(np.broadcast_to(sky[:, None, :], (h, w, 3)).astype(np.uint8))
        self.image = self._sky[key].copy()
        self.ids = np.zeros((h // ID_SCALE + 1, w // ID_SCALE + 1), np.int32)

    def project(self, quads: np.ndarray) -> list[np.ndarray | None]:
        """Pixel outlines of global quads (n, 4, 3); None where behind the camera or off-image."""
        cam = self.cam.to_cam(quads)
        z = cam[..., 2]
        w, h = self.cam.size
        front = (z >= NEAR).all(1)
        uv = np.full((len(quads), 4, 2), np.nan)
        uvw = cam[front] @ self.cam.intrinsic.T
        uv[front] = uvw[..., :2] / uvw[..., 2:3]
        with np.errstate(invalid="ignore"):
            on_image = front & (uv[..., 0].max(1) >= 0) & (uv[..., 1].max(1) >= 0)
            on_image &= (uv[..., 0].min(1) < w) & (uv[..., 1].min(1) < h)
        out: list[np.ndarray | None] = [None] * len(quads)
        for i in np.nonzero(on_image)[0]:
            out[i] = uv[i]
        for i in np.nonzero(~front & (z >= NEAR).any(1))[0]:  # crossing the near plane: clip first
            clipped = _clip_near(cam[i])
            if len(clipped) >= 3:
                uvw = clipped @ self.cam.intrinsic.T
                p = uvw[:, :2] / uvw[:, 2:3]
                if p[:, 0].max() >= 0 and p[:, 1].max() >= 0 and p[:, 0].min() < w and p[:, 1].min() < h:
                    out[i] = p
        return out

    def fill(self, quads: np.ndarray, colours: np.ndarray, ids: np.ndarray | None = None) -> list[np.ndarray | None]:
        """Fill quads in the given order; ``ids`` (n,) also paints the id buffer."""
        outlines = self.project(quads)
        scale = float(1 << SUBPIXEL)
        colour_lists = np.asarray(colours).tolist()
        for i, uv in enumerate(outlines):
            if uv is None:
                continue
            # near-plane points can project very far out: keep fixed-point coordinates in int32
            pts = np.round(np.clip(uv, -1e5, 1e5) * scale).astype(np.int32)
            cv2.fillPoly(self.image, [pts], colour_lists[i], cv2.LINE_8, SUBPIXEL)
            if ids is not None:
                cv2.fillPoly(self.ids, [pts // ID_SCALE], int(ids[i]), cv2.LINE_8, SUBPIXEL)
        return outlines


def _ground(canvas: Canvas, ground: tuple[np.ndarray, np.ndarray]) -> None:
    pos = canvas.cam.cam2global[:3, 3]
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    squares = np.stack([np.column_stack([corners * half + pos[:2], np.zeros(4)]) for half, _ in GROUND])
    up = np.array([[0.0, 0.0, 1.0]])
    colours = np.array([c for _, c in GROUND], float)
    canvas.fill(squares, shade(colours, up, np.array([h * 0.7 for h, _ in GROUND]), canvas.env))
    quads, colours = ground
    dist = np.linalg.norm(quads.mean(1)[:, :2] - pos[:2], axis=1)
    near = dist < FAR + 50
    canvas.fill(quads[near], shade(colours[near], up, dist[near], canvas.env))


def render(
    cam: Camera,
    boxes: np.ndarray,
    pieces: Pieces,
    annotated: np.ndarray,
    ground: tuple[np.ndarray, np.ndarray],
    env: Environment | None = None,
    backdrop: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one camera at one instant (``boxes`` (n, 7) global). Returns the RGB image and,
    per box, its visible id-buffer pixels and unoccluded silhouette pixels (1/ID_SCALE res).

    ``backdrop`` (n,) marks boxes that stand behind everything else seen from the street
    (buildings): they are painted first, since sorting their long faces by centre distance
    would paint them over the pedestrians in front of them."""
    env = env or Environment()
    canvas = Canvas(cam, env)
    _ground(canvas, ground)
    pos = cam.cam2global[:3, 3]
    corners = box_corners(boxes)
    depth = (corners - pos) @ cam.cam2global[:3, 2]
    candidate = (depth.max(1) > NEAR) & (np.linalg.norm(boxes[:, :2] - pos[:2], axis=1) < FAR)
    foot = corners[candidate][:, [0, 4, 6, 2]].copy()  # soft shadows first: they lie on the ground
    foot[..., :2] += (foot[..., :2] - boxes[candidate, None, :2]) * 0.12 - env.sun[:2] * 0.3
    foot[..., 2] = 0.0
    canvas.fill(foot, np.broadcast_to(np.array([45.0, 47, 50]), (len(foot), 3)))

    visible_pieces = pieces.subset(candidate[pieces.owner])
    quads, normals, anchors = place(visible_pieces, boxes)
    owner, colour = visible_pieces.owner, visible_pieces.colour
    facing = np.einsum("ij,ij->i", normals, anchors - pos) < 0  # back faces are culled
    # Painter's order by whole faces (far first); on a face, paint before decals.
    dist = np.linalg.norm(anchors - pos, axis=1)
    order = np.nonzero(facing)[0]
    layer = np.zeros(len(owner), np.int64) if backdrop is None else (~backdrop[owner]).astype(np.int64)
    order = order[np.lexsort((visible_pieces.rank[order], -dist[order], layer[order]))]
    ids = np.where(annotated[owner[order]], owner[order] + 1, 0)  # scenery occludes with id 0
    outlines = canvas.fill(quads[order], shade(colour[order], normals[order], dist[order], env), ids)
    visible = np.bincount(canvas.ids.ravel(), minlength=len(boxes) + 1)[1 : len(boxes) + 1]
    per_object: dict[int, list[np.ndarray]] = {}
    for k, uv in zip(order, outlines, strict=True):
        if uv is not None and annotated[owner[k]]:
            per_object.setdefault(int(owner[k]), []).append(uv)
    silhouette = np.zeros(len(boxes), np.int64)
    for i, polys in per_object.items():
        silhouette[i] = _silhouette_area(polys, canvas.ids.shape)
    return canvas.image, visible, silhouette


def _silhouette_area(polys: list[np.ndarray], shape: tuple[int, int]) -> int:
    pts = np.concatenate(polys) / ID_SCALE
    lo = np.floor(np.maximum(pts.min(0), 0)).astype(int)
    hi = np.ceil(np.minimum(pts.max(0), [shape[1] - 1, shape[0] - 1])).astype(int)
    if (hi < lo).any():
        return 0
    mask = np.zeros((hi[1] - lo[1] + 1, hi[0] - lo[0] + 1), np.uint8)
    scale = float(1 << SUBPIXEL)
    for p in polys:  # one call per polygon: several contours in one call would fill even-odd
        cv2.fillPoly(mask, [np.round((np.clip(p / ID_SCALE, -1e5, 1e5) - lo) * scale).astype(np.int32)],
                     1, cv2.LINE_8, SUBPIXEL)
    return int(mask.sum())


class Sensor:
    """Blur, gain and noise of a camera sensor, then JPEG encoding. Noise comes from one field
    per scene, sampled at a random offset per image (drawing 4M normals per image is slow)."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], sigma: float = 4.0) -> None:
        w, h = size
        noise = rng.normal(0, sigma, (h + 64, w + 64, 3))
        self.pos = np.clip(noise, 0, 255).astype(np.uint8)
        self.neg = np.clip(-noise, 0, 255).astype(np.uint8)
        self.rng = rng

    def encode(self, image: np.ndarray, quality: int = 90) -> bytes:
        h, w = image.shape[:2]
        dy, dx = (int(v) for v in self.rng.integers(0, 64, 2))
        img = cv2.GaussianBlur(image, (3, 3), 0.7)
        img = cv2.convertScaleAbs(img, alpha=float(self.rng.uniform(0.9, 1.1)))
        img = cv2.add(img, np.ascontiguousarray(self.pos[dy : dy + h, dx : dx + w]))
        img = cv2.subtract(img, np.ascontiguousarray(self.neg[dy : dy + h, dx : dx + w]))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()
