"""Sample -> BEVFusion inputs (batch 1), as mit-han-lab's test pipeline prepares them:
resize by the variant's factor, crop the bottom-centre to the input size (ImageAug3D at test
time), ImageNet normalisation, the matching ``img_aug_matrix``, and the sparse LiDAR depth image
per camera that DepthLSSTransform (and CUDA-BEVFusion's camera.backbone) consumes."""

from __future__ import annotations

import numpy as np
import torch
from bevdeploy.data.images import network_input
from bevdeploy.data.types import Sample
from bevdeploy.errors import BevDeployError


def crop_box(resized_hw: tuple[int, int], final_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the test-time crop: horizontally centred, bottom-aligned."""
    new_h, new_w = resized_hw
    fh, fw = final_hw
    top = new_h - fh
    left = int(max(0, new_w - fw) / 2)
    return (left, top, left + fw, top + fh)


def image_aug_matrix(resize: float, crop: tuple[int, int, int, int], flip: bool = False) -> np.ndarray:
    """4x4 map from original pixel coordinates to input pixel coordinates (resize, crop, then
    an optional horizontal flip of the cropped image)."""
    m = np.eye(4, dtype=np.float32)
    m[0, 0] = m[1, 1] = resize
    m[0, 3], m[1, 3] = -crop[0], -crop[1]
    if flip:
        f = np.eye(4, dtype=np.float32)
        f[0, 0], f[0, 3] = -1.0, crop[2] - crop[0]
        m = f @ m
    return m


def train_crop(resized_hw: tuple[int, int], final_hw: tuple[int, int], frac: tuple[float, float]) -> tuple[int, int, int, int]:
    """The crop window of a training-time image augmentation: ``frac`` places it inside the
    resized image's free margin (0 left/top .. 1 right/bottom; the test crop is (0.5, 1))."""
    new_h, new_w = resized_hw
    fh, fw = final_hw
    left = int(round(max(0, new_w - fw) * float(frac[0])))
    top = int(round((new_h - fh) * float(frac[1])))
    return (left, top, left + fw, top + fh)


def _resize(sample: Sample, cfg) -> float:
    """The test-time resize factor, or the one requested in ``sample.extra['img_aug']``."""
    aug = sample.extra.get("img_aug") if sample.extra else None
    return cfg.camera.resize * float(aug.get("resize", 1.0)) if aug else cfg.camera.resize


def _crop(sample: Sample, resized_hw: tuple[int, int], cfg) -> tuple[tuple[int, int, int, int], bool]:
    """(crop, flip) in the resized image: the test-time ones, or the request in ``sample.extra``."""
    aug = sample.extra.get("img_aug") if sample.extra else None
    if not aug:
        return crop_box(resized_hw, cfg.camera.image_size), False
    return train_crop(resized_hw, cfg.camera.image_size, aug.get("crop_frac", (0.5, 1.0))), bool(aug.get("flip", False))


def depth_image(
    points: torch.Tensor, lidar2image: torch.Tensor, img_aug: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """(N_cam, 1, H, W): camera-frame depth of every LiDAR point that projects into the input
    image, 0 elsewhere. Like mit-han-lab, depth is clamped to 1e-5 only for the division and a
    later point overwrites an earlier one on the same pixel."""
    n_cam = lidar2image.shape[0]
    h, w = image_size
    out = torch.zeros(n_cam, 1, h, w)
    xyz = points[:, :3].t().contiguous()  # (3, P): rows stay contiguous, so every op below streams
    cams, pixels, depths = [], [], []
    for c in range(n_cam):  # one camera at a time: ~4x faster than broadcasting over (N, P)
        x, y, dist = lidar2image[c, :3, :3].matmul(xyz) + lidar2image[c, :3, 3:4]
        z = dist.clamp(1e-5, 1e5)
        u, v = x / z, y / z
        a = img_aug[c]
        col = a[0, 0] * u + a[0, 1] * v + a[0, 2] * z + a[0, 3]
        row = a[1, 0] * u + a[1, 1] * v + a[1, 2] * z + a[1, 3]
        idx = torch.nonzero((row < h) & (row >= 0) & (col < w) & (col >= 0)).squeeze(1)  # point order
        cams.append(torch.full_like(idx, c))
        pixels.append(torch.stack([col[idx], row[idx]], dim=1).long())
        depths.append(dist[idx])
    cam, px, d = torch.cat(cams), torch.cat(pixels), torch.cat(depths)  # camera-major, then point order
    # last point wins per camera, deterministically: an index_put with repeated pixels lets CPU
    # threads race over which value lands (measured: depth sums differed between identical runs).
    # All cameras in one scatter: pixels of different cameras never collide.
    lin = (cam * h + px[:, 1]) * w + px[:, 0]
    order = torch.arange(lin.numel(), device=lin.device)
    last = torch.full((n_cam * h * w,), -1, dtype=torch.long, device=lin.device).scatter_reduce(0, lin, order, "amax")
    hit = last >= 0
    out.view(-1)[hit] = d[last[hit]]
    return out


def prepare(model, sample: Sample) -> dict[str, torch.Tensor]:
    """The model inputs of one sample (batch 1): img (1,N,3,H,W), depth (1,N,1,H,W), points
    (P,5, with sweeps), camera2lidar / camera_intrinsics / img_aug_matrix / lidar2image
    (1,N,4,4) float32."""
    cfg = model.cfg
    resize = _resize(sample, cfg)
    images = sample.images(scale=resize)
    if len(images) != cfg.num_cameras:
        raise BevDeployError(
            f"sample {sample.token} has {len(images)} camera images, bevfusion needs {cfg.num_cameras}; check the dataset"
        )
    imgs, augs = [], []
    for img in images:
        crop, flip = _crop(sample, img.shape[:2], cfg)
        imgs.append(network_input(img, crop, flip))
        augs.append(image_aug_matrix(resize, crop, flip))
    intr = np.tile(np.eye(4, dtype=np.float32), (cfg.num_cameras, 1, 1))
    intr[:, :3, :3] = sample.cam_intrinsics
    img_aug = torch.from_numpy(np.stack(augs))
    lidar2image = torch.from_numpy(np.asarray(sample.lidar2image, dtype=np.float32))
    points = torch.from_numpy(np.ascontiguousarray(sample.points, dtype=np.float32))
    depth = depth_image(points, lidar2image, img_aug, cfg.camera.image_size)
    return {
        "img": torch.from_numpy(np.stack(imgs)).unsqueeze(0),
        "depth": depth.unsqueeze(0),
        "points": points,
        "camera2lidar": torch.from_numpy(np.asarray(sample.camera2lidar, dtype=np.float32)).unsqueeze(0),
        "camera_intrinsics": torch.from_numpy(intr).unsqueeze(0),
        "img_aug_matrix": img_aug.unsqueeze(0),
        "lidar2image": lidar2image.unsqueeze(0),
    }
