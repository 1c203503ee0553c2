"""CenterPoint head (CenterHead + SeparateHead, mmdet3d names) and its decode.

The deployable head returns two dense maps: ``heatmap`` (1, 10, H, W), the sigmoid class scores
of the head's tasks concatenated (their order is DETECTION_CLASSES'), and ``bbox_reg``
(1, T*10, H, W), per head task [reg 2, height 1, dim 3, rot 2, vel 2]; T is 1 for r50 (upstream's
one ten-class task) and 6 for tiny (CenterPoint's groups). Decode is CenterPoint's whatever T is:
top-K per CenterPoint group (:data:`TASKS`, reading the regression of the head task holding the
group's classes), centre = (cell + reg) * out_size_factor * voxel + range start, height = gravity-centre
z, dim = exp(dim) as (l, w, h), yaw = atan2(sin, cos), score threshold and centre-range filter,
then circle NMS with the per-task radii of CenterPoint's nuScenes config. (BEVDet's own test_cfg
uses rotated-IoU NMS with per-class box rescaling; circle NMS is CenterPoint's, needs no rotated
IoU and keeps the decode a plain numpy step.) Boxes come out in the ego frame that the view
transformer lifts into, and are moved into the LiDAR frame with ``lidar2ego``.
"""

from __future__ import annotations

import numpy as np
import torch
from bevdeploy.data.types import DETECTION_CLASSES, Detections
from torch import nn

from .config import COMMON_HEADS, REG_CHANNELS, TASKS, BEVDetConfig, HeadConfig

HEAD_OUTPUTS = ("heatmap", "bbox_reg")


class ConvBNReLU(nn.Module):
    """mmcv ConvModule with BN (``conv`` without bias, ``bn``) and ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class SeparateHead(nn.Module):
    """One Sequential per output (ConvModule then a final conv), as attributes named by the head."""

    def __init__(self, cin: int, head_conv: int, num_classes: int, final_kernel: int, init_bias: float):
        super().__init__()
        self.heads = [*(name for name, _ in COMMON_HEADS), "heatmap"]
        for name, cout in [*COMMON_HEADS, ("heatmap", num_classes)]:
            final = nn.Conv2d(head_conv, cout, final_kernel, padding=final_kernel // 2)
            setattr(self, name, nn.Sequential(ConvBNReLU(cin, head_conv, final_kernel), final))
        nn.init.constant_(self.heatmap[-1].bias, init_bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)(x) for name in self.heads}


class CenterHead(nn.Module):
    """``shared_conv`` then one SeparateHead per task of ``cfg.tasks`` under ``task_heads.i``."""

    def __init__(self, cin: int, cfg: HeadConfig):
        super().__init__()
        self.shared_conv = ConvBNReLU(cin, cfg.share_conv_channel, 3)
        self.task_heads = nn.ModuleList(
            SeparateHead(cfg.share_conv_channel, cfg.head_conv, len(t), cfg.final_kernel, cfg.init_bias) for t in cfg.tasks
        )

    def forward_tasks(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Raw per-task outputs (heatmap logits), what the training loss consumes."""
        x = self.shared_conv(x)
        return [head(x) for head in self.task_heads]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tasks = self.forward_tasks(x)
        heatmap = torch.cat([t["heatmap"] for t in tasks], dim=1).sigmoid()
        reg = torch.cat([t[name] for t in tasks for name, _ in COMMON_HEADS], dim=1)
        return heatmap, reg


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, ties to the lower index (stable, like ONNX TopK)."""
    return scores.sort(descending=True, stable=True).indices[:k]


def circle_nms(centers: np.ndarray, scores: np.ndarray, radius: float, max_keep: int) -> np.ndarray:
    """Greedy NMS on BEV centres: a box is dropped if its squared distance to a kept, higher-scoring
    box is <= ``radius`` (CenterPoint's convention). Returns kept indices, best first."""
    order = np.argsort(-scores, kind="stable")
    x, y = np.asarray(centers)[order].T
    # every pair's squared distance at once (K <= pre_max_size, 1000), in the centres' dtype and summation order as a
    # distance pass per kept box would; the greedy pass then only ORs the kept boxes' rows
    close = (x[:, None] - x[None, :]) ** 2 + (y[:, None] - y[None, :]) ** 2 <= radius
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for pos in range(len(order)):
        if suppressed[pos]:
            continue
        keep.append(int(order[pos]))
        if len(keep) == max_keep:
            break
        suppressed |= close[pos]
    return np.asarray(keep, dtype=np.int64)


def _decode_task(heat: torch.Tensor, reg: torch.Tensor, cfg: BEVDetConfig) -> tuple[torch.Tensor, ...]:
    """One NMS group: heat (C, H, W), reg (10, H, W) -> boxes (K, 7), scores, class, velocity (ego frame)."""
    hc = cfg.head
    c, h, w = heat.shape
    idx = _top_k(heat.reshape(-1), hc.pre_max_size)
    scores, cls, pix = heat.reshape(-1)[idx], idx // (h * w), idx % (h * w)
    ys, xs = (pix // w).float(), (pix % w).float()
    r = reg.reshape(REG_CHANNELS, -1)[:, pix]
    x = (xs + r[0]) * hc.out_size_factor * hc.voxel_size[0] + cfg.xbound[0]
    y = (ys + r[1]) * hc.out_size_factor * hc.voxel_size[1] + cfg.ybound[0]
    dims = r[3:6].exp()
    yaw = torch.atan2(r[6], r[7])
    boxes = torch.stack([x, y, r[2], dims[0], dims[1], dims[2], yaw], dim=1)
    lo, hi = torch.tensor(hc.post_center_range[:3]), torch.tensor(hc.post_center_range[3:])
    keep = (scores > hc.score_threshold) & (boxes[:, :3] >= lo).all(1) & (boxes[:, :3] <= hi).all(1)
    return boxes[keep], scores[keep], cls[keep], r[8:10].t()[keep]


def to_lidar_frame(boxes: np.ndarray, velocity: np.ndarray, lidar2ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame boxes/velocities -> LiDAR frame (LiDAR z assumed parallel to ego z, as in nuScenes)."""
    rot, t = lidar2ego[:3, :3], lidar2ego[:3, 3]
    out = boxes.copy()
    out[:, :3] = (boxes[:, :3] - t) @ rot  # R^T (p - t), row-vector form
    yaw0 = np.arctan2(rot[1, 0], rot[0, 0])
    out[:, 6] = np.remainder(boxes[:, 6] - yaw0 + np.pi, 2 * np.pi) - np.pi
    vel = velocity @ rot[:2, :2]
    return out.astype(np.float32), vel.astype(np.float32)


def _head_task(names: tuple[str, ...], tasks: tuple[tuple[str, ...], ...]) -> int:
    """Index of the head task that predicts all of an NMS group's classes (they share its regression)."""
    return next(t for t, task in enumerate(tasks) if set(names) <= set(task))


def decode(heatmap: torch.Tensor, bbox_reg: torch.Tensor, lidar2ego: torch.Tensor, cfg: BEVDetConfig) -> Detections:
    """Dense head maps (batch 1) -> detections in the LiDAR frame (our box convention)."""
    heatmap, bbox_reg = heatmap.detach().float()[0].cpu(), bbox_reg.detach().float()[0].cpu()
    channels = [name for names in cfg.head.tasks for name in names]  # the heatmap's channel order
    parts: list[tuple[np.ndarray, ...]] = []
    for g, names in enumerate(TASKS):
        t = _head_task(names, cfg.head.tasks)
        boxes, scores, cls, vel = _decode_task(
            heatmap[[channels.index(n) for n in names]], bbox_reg[t * REG_CHANNELS : (t + 1) * REG_CHANNELS], cfg
        )
        keep = circle_nms(boxes[:, :2].numpy(), scores.numpy(), cfg.head.min_radius[g], cfg.head.post_max_size)
        labels = np.array([DETECTION_CLASSES.index(n) for n in names], dtype=np.int64)[cls.numpy()[keep]]
        parts.append((boxes.numpy()[keep], scores.numpy()[keep], labels, vel.numpy()[keep]))
    boxes, scores, labels, vel = (np.concatenate([p[i] for p in parts]) for i in range(4))
    best = np.argsort(-scores, kind="stable")[: cfg.head.max_per_img]
    boxes, vel = to_lidar_frame(boxes[best].reshape(-1, 7), vel[best].reshape(-1, 2), lidar2ego.detach().double().reshape(4, 4).cpu().numpy())
    return Detections(boxes=boxes, scores=scores[best].astype(np.float32), labels=labels[best].astype(np.int64), velocity=vel)
