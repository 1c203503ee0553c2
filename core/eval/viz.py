"""One picture of a sample: the six cameras with projected boxes and a bird's-eye view of the LiDAR.

Ground truth is drawn in green, predictions (score >= threshold) in red, in every panel, so that a
person sees at a glance whether detections line up with objects, in the images and from above.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..data.types import CAMERAS, Detections, Sample
from ..workspace import atomic_write_bytes

GT_COLOR = "#22dd44"
PRED_COLOR = "#ff3333"
CAMERA_GRID: tuple[tuple[str, ...], ...] = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
"""Camera panels as a driver would arrange them: front row, then back row."""
# Layout in inches: 16:9 camera panels 5.2 in wide in two rows, then a square BEV panel.
_CAM_W, _CAM_H, _TITLE, _TOP = 5.2, 5.2 * 9 / 16, 0.25, 0.35
_BEV_X, _BEV_SIDE = 3 * 5.2 + 0.1 + 0.85, 5.9
FIG_INCHES = (_BEV_X + _BEV_SIDE + 1.05, _TOP + 2 * (_TITLE + _CAM_H) + 0.15)
DPI = 100
PNG_SIZE = (int(FIG_INCHES[0] * DPI), int(FIG_INCHES[1] * DPI))
"""(width, height) in pixels of every rendered PNG."""
BEV_RANGE = 60.0
"""Half-width of the bird's-eye view in metres (beyond the devkit's 50 m evaluation range)."""
_NEAR = 0.1  # metres in front of a camera where box edges are clipped
_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 8, 3) corners of (N, 7) boxes ``x y z l w h yaw``; corners 0-3 are the bottom face,
    0 and 1 on the front (heading) side, 4-7 the top face above 0-3."""
    x, y, z, length, width, height, yaw = (boxes[:, i : i + 1].astype(np.float64) for i in range(7))
    sx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    sy = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
    sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * 0.5
    lx, ly, lz = length * sx, width * sy, height * sz
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([x + c * lx - s * ly, y + s * lx + c * ly, z + lz + 0 * lx], axis=-1)


def _project_edges(corners: np.ndarray, lidar2camera: np.ndarray, intrinsics: np.ndarray) -> list[np.ndarray]:
    """Image-plane segments (2x2 arrays) of one box's 12 edges, clipped at the near plane."""
    cam = corners @ lidar2camera[:3, :3].T + lidar2camera[:3, 3]
    segs = []
    for a, b in _EDGES:
        p, q = cam[a].copy(), cam[b].copy()
        if p[2] < _NEAR and q[2] < _NEAR:
            continue
        if p[2] < _NEAR or q[2] < _NEAR:  # move the point behind the camera onto the near plane
            t = (_NEAR - p[2]) / (q[2] - p[2])
            clipped = p + t * (q - p)
            p, q = (clipped, q) if p[2] < _NEAR else (p, clipped)
        uv = np.stack([p, q]) @ intrinsics.T
        segs.append(uv[:, :2] / uv[:, 2:3])
    return segs


def _draw_camera(ax, image: np.ndarray, k: int, sample: Sample, sets: list[tuple[np.ndarray, str]]) -> None:
    from matplotlib.collections import LineCollection

    h, w = image.shape[:2]
    step = max(1, w // 800)  # a panel is ~520 px wide: a strided copy keeps drawing quick
    ax.imshow(image[::step, ::step], extent=(0, w, h, 0), interpolation="bilinear")
    for boxes, color in sets:
        segs = [
            s
            for c in _corners(boxes)
            for s in _project_edges(c, sample.lidar2camera[k], sample.cam_intrinsics[k])
        ]
        ax.add_collection(LineCollection(segs, colors=color, linewidths=1.2))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_title(CAMERAS[k], fontsize=10)
    ax.axis("off")


def _corners(boxes: np.ndarray) -> np.ndarray:
    return box_corners(boxes) if len(boxes) else np.zeros((0, 8, 3))


def _draw_bev_boxes(ax, boxes: np.ndarray, color: str, label: str) -> None:
    """Footprints plus a heading line from each centre to the middle of its front face."""
    from matplotlib.collections import LineCollection

    corners = _corners(boxes)
    rings = [c[[0, 1, 2, 3, 0], :2] for c in corners]
    heads = [np.stack([b[:2], c[[0, 1], :2].mean(axis=0)]) for b, c in zip(boxes, corners, strict=True)]
    ax.add_collection(LineCollection(rings + heads, colors=color, linewidths=1.3, label=label))


def _draw_bev(ax, sample: Sample, sets: list[tuple[np.ndarray, str, str]]) -> None:
    pts = sample.points
    inside = (np.abs(pts[:, 0]) < BEV_RANGE) & (np.abs(pts[:, 1]) < BEV_RANGE)
    pts = pts[inside]
    if len(pts) > 100_000:  # keep the scatter quick; a regular stride keeps the look
        pts = pts[:: len(pts) // 100_000 + 1]
    order = np.argsort(pts[:, 2])  # high points drawn last, on top
    sc = ax.scatter(
        pts[order, 0],
        pts[order, 1],
        c=pts[order, 2],
        s=0.4,
        cmap="turbo",
        vmin=-2.2,
        vmax=1.8,
        linewidths=0,
    )
    for boxes, color, label in sets:
        _draw_bev_boxes(ax, boxes, color, label)
    ego2lidar = np.linalg.inv(sample.lidar2ego)  # the ego's forward axis, seen in the LiDAR frame
    fwd = ego2lidar[:2, :3] @ np.array([1.0, 0.0, 0.0])
    heading = float(np.degrees(np.arctan2(fwd[1], fwd[0])))
    x0, y0 = ego2lidar[:2, 3]
    ax.plot([x0], [y0], marker=(3, 0, heading - 90), markersize=10, color="white", markeredgecolor="black")
    ax.set_xlim(-BEV_RANGE, BEV_RANGE)
    ax.set_ylim(-BEV_RANGE, BEV_RANGE)
    ax.set_aspect("equal")
    ax.set_facecolor("#0b0b12")
    ax.set_xlabel("x (m, LiDAR frame)")
    ax.set_ylabel("y (m)")
    ax.set_title("bird's-eye view, LiDAR points coloured by height", fontsize=10)
    ax.grid(color="#444444", linewidth=0.4)
    if any(len(b) for b, _, _ in sets):
        ax.legend(loc="upper right", fontsize=9)
    fig = ax.figure
    fw, fh = fig.get_size_inches()
    box = ax.get_position()
    cax = fig.add_axes((box.x1 + 0.1 / fw, box.y0, 0.15 / fw, box.height))
    fig.colorbar(sc, cax=cax).set_label("z (m, LiDAR frame)")


def render_sample(
    sample: Sample, out_png: Path, detections: Detections | None = None, score_threshold: float = 0.3
) -> Path:
    """Write a PNG (``PNG_SIZE`` pixels) of ``sample``: the six cameras in a 2x3 grid with projected
    boxes, and a bird's-eye view of its LiDAR points with boxes and headings.

    Ground truth is green; ``detections`` with score >= ``score_threshold`` are red. The file is
    written atomically; returns its path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    pred = np.zeros((0, 7), np.float32)
    if detections is not None and len(detections):
        pred = detections.boxes[detections.scores >= score_threshold]
    cam_sets = [(sample.gt_boxes, GT_COLOR), (pred, PRED_COLOR)]
    images = sample.images()
    fig = Figure(figsize=FIG_INCHES, dpi=DPI)
    fw, fh = FIG_INCHES
    for r, row in enumerate(CAMERA_GRID):
        for c, name in enumerate(row):
            k = CAMERAS.index(name)
            top = _TOP + r * (_TITLE + _CAM_H) + _TITLE
            rect = (c * (_CAM_W + 0.05) / fw, 1 - (top + _CAM_H) / fh, _CAM_W / fw, _CAM_H / fh)
            _draw_camera(fig.add_axes(rect), images[k], k, sample, cam_sets)
    bev_bottom = (fh - _TOP - _BEV_SIDE) / 2 + 0.1
    ax = fig.add_axes((_BEV_X / fw, bev_bottom / fh, _BEV_SIDE / fw, _BEV_SIDE / fh))
    n_pred = len(pred)
    _draw_bev(
        ax,
        sample,
        [
            (sample.gt_boxes, GT_COLOR, f"ground truth ({len(sample.gt_boxes)})"),
            (pred, PRED_COLOR, f"predictions >= {score_threshold:g} ({n_pred})"),
        ],
    )
    fig.suptitle(
        f"{sample.scene_name}   sample {sample.token}",
        fontsize=11,
        x=1.5 * _CAM_W / fw,
        y=1 - 0.06 / fh,
        va="top",
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return atomic_write_bytes(Path(out_png), buf.getvalue())
