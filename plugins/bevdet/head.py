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

import functools

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


def to_lidar_frame(boxes: np.ndarray, velocity: np.ndarray, lidar2ego: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame boxes/velocities -> LiDAR frame (LiDAR z assumed parallel to ego z, as in nuScenes)."""
    rot, t = lidar2ego[:3, :3], lidar2ego[:3, 3]
    out = boxes.copy()
    out[:, :3] = (boxes[:, :3] - t) @ rot  # R^T (p - t), row-vector form
    yaw0 = np.arctan2(rot[1, 0], rot[0, 0])
    out[:, 6] = np.remainder(boxes[:, 6] - yaw0 + np.pi, 2 * np.pi) - np.pi
    vel = velocity @ rot[:2, :2]
    return out.astype(np.float32), vel.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _groups(cfg: BEVDetConfig, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Per NMS group of :data:`TASKS`: its heatmap channels (padded with the index one past the last
    channel, a row of -1 scores) and the head task whose regression its classes share; then the low and
    high corners of the centre range. On ``device``, made once rather than copied there every frame."""
    channels = [name for names in cfg.head.tasks for name in names]  # the heatmap's channel order
    width = max(len(names) for names in TASKS)
    rows = [[channels.index(n) for n in names] + [len(channels)] * (width - len(names)) for names in TASKS]
    tasks = [next(t for t, task in enumerate(cfg.head.tasks) if set(names) <= set(task)) for names in TASKS]
    r = cfg.head.post_center_range
    return tuple(torch.tensor(v, device=device) for v in (rows, tasks, r[:3], r[3:]))


def _candidates(heat: torch.Tensor, reg: torch.Tensor, cfg: BEVDetConfig) -> tuple[torch.Tensor, ...]:
    """Every NMS group at once, where the maps are: heat (C, H, W), reg (T*10, H, W) -> per group (G, K) the
    top-K scores, class within the group and the mask of those above the threshold inside the centre range,
    with their boxes (G, K, 7) and velocities (G, K, 2), in the ego frame."""
    hc = cfg.head
    _, h, w = heat.shape
    rows, tasks, lo, hi = _groups(cfg, heat.device)
    padded = torch.cat([heat, heat.new_full((1, h, w), -1.0)])  # sigmoid scores are >= 0: padding sorts last
    scores = padded[rows].reshape(len(TASKS), -1)  # (G, width * H * W), a group's classes one after the other
    k = min(hc.pre_max_size, scores.shape[1])
    # ties to the lower index, like ONNX TopK; the padding sits after every real index, so it changes no order
    idx = scores.sort(dim=1, descending=True, stable=True).indices[:, :k]
    scores, cls, pix = scores.gather(1, idx), idx // (h * w), idx % (h * w)
    ys, xs = (pix // w).float(), (pix % w).float()
    r = reg.reshape(-1, REG_CHANNELS, h * w)[tasks].gather(2, pix[:, None, :].expand(-1, REG_CHANNELS, -1))  # (G, 10, K)
    x = (xs + r[:, 0]) * hc.out_size_factor * hc.voxel_size[0] + cfg.xbound[0]
    y = (ys + r[:, 1]) * hc.out_size_factor * hc.voxel_size[1] + cfg.ybound[0]
    dims = r[:, 3:6].exp()
    yaw = torch.atan2(r[:, 6], r[:, 7])
    boxes = torch.stack([x, y, r[:, 2], dims[:, 0], dims[:, 1], dims[:, 2], yaw], dim=2)
    keep = (scores > hc.score_threshold) & (boxes[..., :3] >= lo).all(2) & (boxes[..., :3] <= hi).all(2)
    return boxes, scores, cls, r[:, 8:10].transpose(1, 2), keep


def decode(heatmap: torch.Tensor, bbox_reg: torch.Tensor, lidar2ego: torch.Tensor, cfg: BEVDetConfig) -> Detections:
    """Dense head maps (batch 1) -> detections in the LiDAR frame (our box convention). Top-K and boxes of all
    groups run in a few batched ops on the maps' device (the GPU's, on a CUDA backend); one copy brings the
    candidates to the host for the circle NMS."""
    found = _candidates(heatmap.detach().float()[0], bbox_reg.detach().float()[0], cfg)
    boxes, scores, cls, vel, keep = (t.cpu().numpy() for t in found)
    parts: list[tuple[np.ndarray, ...]] = []
    for g, names in enumerate(TASKS):
        b, s, c, v = (a[g][keep[g]] for a in (boxes, scores, cls, vel))
        kept = circle_nms(b[:, :2], s, cfg.head.min_radius[g], cfg.head.post_max_size)
        labels = np.array([DETECTION_CLASSES.index(n) for n in names], dtype=np.int64)[c[kept]]
        parts.append((b[kept], s[kept], labels, v[kept]))
    boxes, scores, labels, vel = (np.concatenate([p[i] for p in parts]) for i in range(4))
    best = np.argsort(-scores, kind="stable")[: cfg.head.max_per_img]
    boxes, vel = to_lidar_frame(boxes[best].reshape(-1, 7), vel[best].reshape(-1, 2), lidar2ego.detach().double().reshape(4, 4).cpu().numpy())
    return Detections(boxes=boxes, scores=scores[best].astype(np.float32), labels=labels[best].astype(np.int64), velocity=vel)
