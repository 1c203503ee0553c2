"""TransFusion's training loss for BEVFusion (the ``ModelSpec.loss`` of this plugin).

As mit-han-lab's TransFusionHead.loss on nuScenes:
- dense heatmap: gaussian focal loss (alpha 2, gamma 4) against CenterPoint-style gaussians drawn
  at every box centre with a radius from the box size (overlap 0.1, at least 2 cells), averaged
  over the number of peaks;
- proposals: Hungarian assignment (scipy's linear_sum_assignment) to the ground truth on a cost
  of 0.15 x focal class cost + 0.25 x BEV L1 centre cost (normalised by the range) + 0.25 x
  (-IoU); sigmoid focal classification loss (alpha 0.25, gamma 2) with unmatched proposals as
  background, and L1 box regression (weight 0.25) of the matched ones with the code weights
  (1 for centre, height, log-dims, sin/cos; 0.2 for velocity); both averaged over positives.

Box targets are :func:`encode_boxes`, the exact inverse of :func:`head.decode`. The IoU of the
cost is the IoU of the boxes' axis-aligned hulls (a cost, not a metric: it only ranks pairs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from bevdeploy.data.augment import TARGETS_KEY
from scipy.optimize import linear_sum_assignment

from .camera import bev_pool
from .head import HEAD_OUTPUTS

CODE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
W_CLS, W_BBOX, W_HEATMAP = 1.0, 0.25, 1.0
COST_CLS, COST_REG, COST_IOU = 0.15, 0.25, 0.25
GAUSSIAN_OVERLAP, MIN_RADIUS = 0.1, 2


def _geometry(model) -> tuple[float, float, float, float, int]:
    lidar, head = model.cfg.lidar, model.cfg.head
    f = head.out_size_factor
    return lidar.voxel_size[0] * f, lidar.voxel_size[1] * f, lidar.point_cloud_range[0], lidar.point_cloud_range[1], f


def encode_boxes(model, boxes: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Boxes (M, 7: x, y, z, l, w, h, yaw, our convention) + velocities (M, 2) -> the head's
    regression code (M, 10): centre in BEV cells, centre z, log(w, l, h), sin/cos of the
    mmdet3d-0.x yaw (= -yaw - pi/2), velocity. ``head.decode`` inverts it."""
    cx, cy, x0, y0, _ = _geometry(model)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    yaw_mm = -b[:, 6] - math.pi / 2
    code = np.stack(
        [
            (b[:, 0] - x0) / cx,
            (b[:, 1] - y0) / cy,
            b[:, 2],
            np.log(np.maximum(b[:, 4], 1e-3)),
            np.log(np.maximum(b[:, 3], 1e-3)),
            np.log(np.maximum(b[:, 5], 1e-3)),
            np.sin(yaw_mm),
            np.cos(yaw_mm),
        ],
        axis=1,
    )
    return np.concatenate([code, np.asarray(velocity, dtype=np.float64).reshape(-1, 2)], axis=1).astype(np.float32)


def _targets(model, sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth inside the point-cloud range in head label order: (boxes, code, labels)."""
    from bevdeploy.data.types import DETECTION_CLASSES

    r = model.cfg.lidar.point_cloud_range
    names = model.cfg.head.class_names
    lut = {DETECTION_CLASSES.index(n): i for i, n in enumerate(names)}
    boxes = np.asarray(sample.gt_boxes, dtype=np.float32).reshape(-1, 7)
    labels = np.asarray(sample.gt_labels, dtype=np.int64).reshape(-1)
    keep = (boxes[:, 0] >= r[0]) & (boxes[:, 0] < r[3]) & (boxes[:, 1] >= r[1]) & (boxes[:, 1] < r[4])
    keep &= np.array([int(c) in lut for c in labels], dtype=bool)
    boxes, labels = boxes[keep], labels[keep]
    vel = np.asarray(sample.gt_velocity, dtype=np.float32).reshape(-1, 2)[keep]
    vel = np.nan_to_num(vel)  # nuScenes gives NaN velocity to boxes seen once
    head_labels = np.array([lut[int(c)] for c in labels], dtype=np.int64)
    return boxes, encode_boxes(model, boxes, vel), head_labels


def gaussian_radius(length: float, width: float, overlap: float = GAUSSIAN_OVERLAP) -> float:
    """CornerNet/CenterPoint radius: the largest centre offset keeping IoU >= ``overlap``."""
    h, w = length, width
    b1, c1 = h + w, w * h * (1 - overlap) / (1 + overlap)
    r1 = (b1 + math.sqrt(b1 * b1 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - overlap) * w * h
    r2 = (b2 + math.sqrt(b2 * b2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * overlap, -2 * overlap * (h + w), (overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3 * b3 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_heatmap(model, boxes: np.ndarray, code: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, X, Y) gaussian targets: peak 1 at each box's centre cell, element-wise max of overlaps."""
    k = model.cfg.head.num_classes
    nx, ny = model.cfg.bev_size
    cx, cy, _, _, _ = _geometry(model)
    heat = np.zeros((k, nx, ny), dtype=np.float32)
    for box, c, label in zip(boxes, code, labels, strict=True):
        length, width = box[3] / cx, box[4] / cy
        if length <= 0 or width <= 0:
            continue
        radius = max(MIN_RADIUS, int(gaussian_radius(length, width)))
        ix, iy = int(c[0]), int(c[1])
        if not (0 <= ix < nx and 0 <= iy < ny):
            continue
        sigma = (2 * radius + 1) / 6.0
        xs = np.arange(max(0, ix - radius), min(nx, ix + radius + 1))
        ys = np.arange(max(0, iy - radius), min(ny, iy + radius + 1))
        g = np.exp(-((xs[:, None] - ix) ** 2 + (ys[None, :] - iy) ** 2) / (2 * sigma * sigma))
        patch = heat[label, xs[0] : xs[-1] + 1, ys[0] : ys[-1] + 1]
        np.maximum(patch, g, out=patch)
    return heat


def train_forward(model, inputs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The head outputs of a batch, every stage batched: all cameras in one backbone pass, the
    batch's bev_pool_v2 ranks computed together on the training device (augmentation moves every
    frame's geometry, so nothing is cached) and splatted in one op call, the batch's voxels in one
    sparse tensor. Voxelization (integer bookkeeping, no gradient) runs where the points are."""
    vt = model.encoders["camera"]["vtransform"]
    b = len(inputs)

    def cat(key: str) -> torch.Tensor:
        return torch.cat([inp[key] for inp in inputs], dim=1)[0]  # (B*N, ...): frame-major

    weights, context = model.camera_features(cat("img")[None], cat("depth")[None])
    ranks = vt.bev_pool_ranks(cat("camera2lidar"), cat("camera_intrinsics"), cat("img_aug_matrix"), batch=b)
    cam_bev = bev_pool(weights, context, ranks, vt.bev_shape, batch=b)
    lidars = []
    for i, inp in enumerate(inputs):
        voxels, coords = model.voxelize(inp["points"].detach())  # on the training device
        coords[:, 0] = i
        lidars.append((voxels, coords))
    dev = cam_bev.device
    voxels = torch.cat([v for v, _ in lidars]).to(dev)
    coords = torch.cat([c for _, c in lidars]).to(dev)
    backbone = model.encoders["lidar"]["backbone"]
    with torch.set_grad_enabled(torch.is_grad_enabled() and lidar_trainable(backbone, dev)):
        lidar_bev = sparse_encode(backbone, voxels, coords, b)
    outs = model.heads["object"](model.fuse(vt.downsample(cam_bev), lidar_bev))
    return dict(zip(HEAD_OUTPUTS, outs, strict=True))


def sparse_encode(backbone, voxels: torch.Tensor, coords: torch.Tensor, batch: int) -> torch.Tensor:
    """The SparseEncoder over a whole batch in one sparse tensor (coords[:, 0] = sample index):
    one rulebook and one gather-GEMM-scatter per layer for the batch instead of per sample.
    -> (B, C * Z_out, X, Y), as the encoder's own batch-1 forward."""
    from bevdeploy.sparse import sparse_impl

    from .lidar import _cpu_single_thread  # spconv's CPU strided conv races with >1 thread

    ops = sparse_impl(backbone.sparse_impl)
    with _cpu_single_thread(voxels, backbone.sparse_impl):
        x = ops.SparseConvTensor(voxels, coords.int(), backbone.sparse_shape, batch)
        dense = backbone.conv_out(backbone.encoder_layers(backbone.conv_input(x))).dense()  # (B, C, X, Y, Z)
    b, c, h, w, d = dense.shape
    return dense.permute(0, 1, 4, 2, 3).reshape(b, c * d, h, w)


HEATMAP_PRIOR = 0.1


def init_training(model) -> None:
    """Start-of-training initialisation as TransFusion's: the heatmap's last conv bias at the
    logit of a 0.1 prior (-2.19), so the focal loss does not start from p = 0.5 everywhere."""
    with torch.no_grad():
        model.heads["object"].heatmap_head[-1].bias.fill_(math.log(HEATMAP_PRIOR / (1 - HEATMAP_PRIOR)))
        model.heads["object"].prediction_heads[0].heatmap[-1].bias.fill_(math.log(HEATMAP_PRIOR / (1 - HEATMAP_PRIOR)))


def lidar_trainable(backbone: torch.nn.Module, device: torch.device) -> bool:
    """Whether the sparse encoder can be back-propagated on ``device``: spconv 2.3.8's CPU
    backward asks for a CUDA stream and fails, so with spconv modules on the CPU the LiDAR
    backbone is run without gradient (frozen) and only the rest of the model trains."""
    if torch.device(device).type != "cpu":
        return True
    try:
        import spconv.pytorch as spconv
    except ImportError:
        return True
    return not any(isinstance(m, spconv.conv.SparseConvolution) for m in backbone.modules())


def _decode_code(model, code: torch.Tensor) -> torch.Tensor:
    """(P, 10) code -> (P, 7) metric boxes (our convention), for the assignment cost."""
    cx, cy, x0, y0, _ = _geometry(model)
    d = code[:, 3:6].clamp(max=6.0).exp()
    yaw = -torch.atan2(code[:, 6], code[:, 7]) - math.pi / 2
    return torch.stack([code[:, 0] * cx + x0, code[:, 1] * cy + y0, code[:, 2], d[:, 1], d[:, 0], d[:, 2], yaw], 1)


def hull_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(P, M) 3D IoU of the axis-aligned hulls of rotated boxes a (P, 7) and b (M, 7)."""

    def bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = torch.cos(x[:, 6]).abs(), torch.sin(x[:, 6]).abs()
        half = torch.stack([(x[:, 3] * c + x[:, 4] * s) / 2, (x[:, 3] * s + x[:, 4] * c) / 2, x[:, 5] / 2], 1)
        return x[:, :3] - half, x[:, :3] + half

    alo, ahi = bounds(a)
    blo, bhi = bounds(b)
    inter = (torch.minimum(ahi[:, None], bhi[None]) - torch.maximum(alo[:, None], blo[None])).clamp(min=0).prod(-1)
    va, vb = (ahi - alo).prod(-1), (bhi - blo).prod(-1)
    return inter / (va[:, None] + vb[None] - inter).clamp(min=1e-6)


def assign(model, code_pred: torch.Tensor, logits: torch.Tensor, gt_code: torch.Tensor, gt_labels: torch.Tensor):
    """Hungarian matching of P proposals to M boxes: (proposal indices, gt indices)."""
    if gt_code.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    with torch.no_grad():
        p = logits.t().sigmoid()  # (P, K)
        alpha, gamma, eps = 0.25, 2.0, 1e-12
        neg = -(1 - p + eps).log() * (1 - alpha) * p.pow(gamma)
        pos = -(p + eps).log() * alpha * (1 - p).pow(gamma)
        cls_cost = (pos - neg)[:, gt_labels]
        nx, ny = model.cfg.bev_size
        scale = code_pred.new_tensor([nx, ny])
        reg_cost = torch.cdist(code_pred[:, :2] / scale, gt_code[:, :2] / scale, p=1)
        iou = hull_iou(_decode_code(model, code_pred), _decode_code(model, gt_code))
        cost = COST_CLS * cls_cost + COST_REG * reg_cost - COST_IOU * iou
    rows, cols = linear_sum_assignment(torch.nan_to_num(cost, nan=1e6).cpu().numpy())
    return rows, cols


def sigmoid_focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Summed sigmoid focal loss (RetinaNet)."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return (w * (1 - pt).pow(gamma) * ce).sum()


def gaussian_focal(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, gamma: float = 4.0) -> torch.Tensor:
    """Summed CenterNet focal loss of probabilities ``pred`` against gaussian ``target``."""
    pred = pred.clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).to(pred.dtype)
    pos_loss = -(pred.log() * (1 - pred).pow(alpha) * pos)
    neg_loss = -((1 - pred).log() * pred.pow(alpha) * (1 - target).pow(gamma) * (1 - pos))
    return (pos_loss + neg_loss).sum()


def sample_targets(model, sample: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``ModelSpec.targets`` of BEVFusion: (box codes, head labels, gaussian heatmap) of one Sample."""
    boxes, code, labels = _targets(model, sample)
    return code, labels, draw_heatmap(model, boxes, code, labels)


def transfusion_loss(model, inputs: Sequence[dict[str, torch.Tensor]], samples: Sequence[Any]) -> dict[str, torch.Tensor]:
    """The ModelSpec.loss of BEVFusion: {'heatmap', 'cls', 'bbox'} (weighted, batch means)."""
    out = train_forward(model, inputs)
    dev = out["center"].device
    code_pred = torch.cat([out[k].float() for k in ("center", "height", "dim", "rot", "vel")], dim=1)  # (B, 10, P)
    logits = out["heatmap"].float()  # (B, K, P)
    dense = out["dense_heatmap"].float()
    weights = torch.tensor(CODE_WEIGHTS, device=dev)
    heat_t, cls_t, l_bbox, n_pos = [], torch.zeros_like(logits), code_pred.new_zeros(()), 0
    for i, sample in enumerate(samples):
        code, labels, heatmap = sample.extra.get(TARGETS_KEY) or sample_targets(model, sample)
        heat_t.append(torch.from_numpy(heatmap))
        gt_code = torch.from_numpy(code).to(dev)
        gt_labels = torch.from_numpy(labels).to(dev)
        rows, cols = assign(model, code_pred[i].t(), logits[i], gt_code, gt_labels)
        if len(rows):
            r, c = torch.from_numpy(rows).to(dev), torch.from_numpy(cols).to(dev)
            cls_t[i, gt_labels[c], r] = 1.0
            l_bbox = l_bbox + ((code_pred[i].t()[r] - gt_code[c]).abs() * weights).sum()
            n_pos += len(rows)
    heat = torch.stack(heat_t)
    peaks = max(float(heat.eq(1).sum()), 1.0)  # counted on the CPU: no device sync
    norm = max(n_pos, 1)
    return {
        "heatmap": W_HEATMAP * gaussian_focal(dense, heat.to(dev, non_blocking=True)) / peaks,
        "cls": W_CLS * sigmoid_focal(logits, cls_t) / norm,
        "bbox": W_BBOX * l_bbox / norm,
    }
