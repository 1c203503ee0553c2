"""BEVDet's training loss: CenterPoint's, per task group (mmdet3d CenterHead semantics).

Targets per task: a class heatmap with a Gaussian splat at each box centre (radius from
CornerNet's ``gaussian_radius`` at min overlap 0.1, at least 2 cells), and for each box its
cell index and a 10-value regression target [dx, dy (sub-cell offset), z (gravity centre),
log l, log w, log h, sin yaw, cos yaw, vx, vy]. Losses: Gaussian focal loss on the clamped
sigmoid heatmap averaged over the positives, and L1 on the regression at the box cells
(weight 0.25) averaged over the boxes. Boxes are moved from the LiDAR frame into the ego frame
the BEV grid lives in (with an augmented Sample's LiDAR-frame transform already in its boxes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from bevdeploy.data.augment import LIDAR_AUG_KEY, TARGETS_KEY
from bevdeploy.data.types import DETECTION_CLASSES

from .config import COMMON_HEADS, BEVDetConfig

MIN_OVERLAP, MIN_RADIUS, BBOX_WEIGHT = 0.1, 2, 0.25


def gaussian_radius(length: float, width: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CornerNet's radius: the smallest of three overlap cases (box size in cells)."""
    b1, c1 = length + width, width * length * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2, c2 = 2 * (length + width), (1 - min_overlap) * width * length
    r2 = (b2 + math.sqrt(b2**2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (length + width), (min_overlap - 1) * width * length
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: torch.Tensor, cx: int, cy: int, radius: int) -> None:
    """heatmap (H, W) = max(heatmap, Gaussian of sigma (2r+1)/6 centred on (cx, cy)), in place."""
    sigma = (2 * radius + 1) / 6
    r = torch.arange(-radius, radius + 1, dtype=heatmap.dtype)
    g = torch.exp(-(r.view(-1, 1) ** 2 + r.view(1, -1) ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(g.dtype).eps * g.max()] = 0
    h, w = heatmap.shape
    left, right, top, bottom = min(cx, radius), min(w - cx, radius + 1), min(cy, radius), min(h - cy, radius + 1)
    region = heatmap[cy - top : cy + bottom, cx - left : cx + right]
    torch.maximum(region, g[radius - top : radius + bottom, radius - left : radius + right], out=region)


def to_ego(boxes: np.ndarray, velocity: np.ndarray, lidar2ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rot, t = lidar2ego[:3, :3], lidar2ego[:3, 3]
    out = boxes.astype(np.float64).copy()
    out[:, :3] = boxes[:, :3] @ rot.T + t
    out[:, 6] = boxes[:, 6] + np.arctan2(rot[1, 0], rot[0, 0])
    return out, velocity @ rot[:2, :2].T


def centerpoint_targets(cfg: BEVDetConfig, boxes: np.ndarray, velocity: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per task: heatmap (C_t, H, W), ind (M,), box (M, 10); boxes in the ego frame, (M, 7)."""
    hc = cfg.head
    w, h = cfg.grid_size[0], cfg.grid_size[1]
    cell = (hc.voxel_size[0] * hc.out_size_factor, hc.voxel_size[1] * hc.out_size_factor)
    out = []
    for names in cfg.head.tasks:  # the head's task layout: six CenterPoint groups (tiny) or one (r50)
        heat, inds, regs = torch.zeros(len(names), h, w), [], []
        for k, name in enumerate(names):
            for b, v in zip(boxes[labels == DETECTION_CLASSES.index(name)], velocity[labels == DETECTION_CLASSES.index(name)], strict=True):
                x, y = (b[0] - cfg.xbound[0]) / cell[0], (b[1] - cfg.ybound[0]) / cell[1]
                xi, yi = int(x), int(y)
                if not (0 <= x < w and 0 <= y < h):
                    continue
                radius = max(MIN_RADIUS, int(gaussian_radius(b[4] / cell[1], b[3] / cell[0])))
                draw_gaussian(heat[k], xi, yi, radius)
                inds.append(yi * w + xi)
                regs.append([x - xi, y - yi, b[2], *np.log(np.maximum(b[3:6], 1e-3)), math.sin(b[6]), math.cos(b[6]), *v])
        out.append({"heatmap": heat, "ind": torch.tensor(inds, dtype=torch.long),
                    "box": torch.tensor(np.asarray(regs, dtype=np.float32).reshape(-1, 10))})
    return out


def gaussian_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of CenterNet's focal loss on sigmoid(logits) clamped to [1e-4, 1 - 1e-4] (alpha 2, gamma 4)."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = -(p.log() * (1 - p).pow(2)) * target.eq(1)
    neg = -((1 - p).log() * p.pow(2) * (1 - target).pow(4))
    return (pos + neg).sum()


def task_losses(task_out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(heatmap loss, bbox loss) of one task over a batch (outputs (B, ...), one target per frame),
    normalised as mmdet3d's CenterHead: by the batch's number of heatmap peaks and of boxes."""
    dev = task_out["heatmap"].device
    heat = torch.stack([t["heatmap"] for t in targets])
    num_pos = max(float(heat.eq(1).sum()), 1.0)  # counted on the CPU: no device sync
    loss_heat = gaussian_focal_loss(task_out["heatmap"], heat.to(dev, non_blocking=True)) / num_pos
    cells = heat.shape[-2] * heat.shape[-1]
    ind = torch.cat([t["ind"] + i * cells for i, t in enumerate(targets)]).to(dev, non_blocking=True)
    box = torch.cat([t["box"] for t in targets]).to(dev, non_blocking=True)
    pred = torch.cat([task_out[n] for n, _ in COMMON_HEADS], dim=1)  # (B, 10, H, W)
    pred = pred.permute(0, 2, 3, 1).reshape(-1, pred.shape[1])[ind]  # (M, 10)
    loss_box = (pred - box).abs().sum() / (ind.numel() + 1e-4) * BBOX_WEIGHT
    return loss_heat, loss_box


def bev_boxes(sample: Any) -> tuple[np.ndarray, np.ndarray]:
    """The Sample's boxes and velocities in the frame the BEV grid lives in, the one
    ``prepare.camera2bev`` lifts the images into: the ego frame, moved by the augmentation.

    An augmented Sample holds its boxes in the augmented LiDAR frame and ``lidar2ego @ inv(m)``
    as its lidar2ego, which would take them back to the *un-augmented* ego frame; the BEV frame is
    the rig's ``lidar2ego`` (= sample.lidar2ego @ m) applied to the augmented boxes."""
    l2e = np.asarray(sample.lidar2ego, dtype=np.float64)
    aug = sample.extra.get(LIDAR_AUG_KEY)
    if aug is not None:
        l2e = l2e @ np.asarray(aug, dtype=np.float64)
    return to_ego(np.asarray(sample.gt_boxes), np.asarray(sample.gt_velocity), l2e)


def sample_targets(model: Any, sample: Any) -> list[dict[str, torch.Tensor]]:
    """``ModelSpec.targets`` of BEVDet: the CenterPoint targets of one augmented Sample, per task."""
    boxes, vel = bev_boxes(sample)
    return centerpoint_targets(model.cfg, boxes, vel, np.asarray(sample.gt_labels))


def centerpoint_loss(model: Any, inputs: list[dict[str, Any]], samples: list[Any]) -> dict[str, torch.Tensor]:
    """``ModelSpec.loss`` of BEVDet: named loss terms of the whole batch, per task group
    (``task{i}.loss_heatmap``, ``task{i}.loss_bbox``), as mmdet3d logs them. The frames run
    through the network as one batch."""
    batch = {k: torch.cat([x[k] for x in inputs]) for k in ("img", "camera2ego", "camera_intrinsics", "img_aug_matrix")}
    outs = model.forward_tasks(**batch)
    per_frame = [s.extra.get(TARGETS_KEY) or sample_targets(model, s) for s in samples]
    terms: dict[str, torch.Tensor] = {}
    for t, out in enumerate(outs):
        heat, box = task_losses(out, [frame[t] for frame in per_frame])
        terms[f"task{t}.loss_heatmap"], terms[f"task{t}.loss_bbox"] = heat, box
    return terms
