"""Sample -> BEVFusion inputs (batch 1), as mit-han-lab's test pipeline prepares them:
resize by the variant's factor, crop the bottom-centre to the input size (ImageAug3D at test
time), ImageNet normalisation, the matching ``img_aug_matrix``, and the sparse LiDAR depth image
per camera that DepthLSSTransform (and CUDA-BEVFusion's camera.backbone) consumes."""

from __future__ import annotations

import numpy as np
import torch
from bevdeploy.data.types import Sample
from bevdeploy.errors import BevDeployError
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_box(orig_hw: tuple[int, int], resize: float, final_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the test-time crop: horizontally centred, bottom-aligned."""
    h, w = orig_hw
    new_w, new_h = int(w * resize), int(h * resize)
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


def _image(img: np.ndarray, resize: float, crop: tuple[int, int, int, int], flip: bool = False) -> np.ndarray:
    pil = Image.fromarray(img)
    pil = pil.resize((int(pil.width * resize), int(pil.height * resize)), Image.BICUBIC).crop(crop)
    if flip:
        pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
    x = (np.asarray(pil, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return x.transpose(2, 0, 1)


def train_crop(
    orig_hw: tuple[int, int], resize: float, final_hw: tuple[int, int], frac: tuple[float, float]
) -> tuple[int, int, int, int]:
    """The crop window of a training-time image augmentation: ``frac`` places it inside the
    resized image's free margin (0 left/top .. 1 right/bottom; the test crop is (0.5, 1))."""
    h, w = orig_hw
    new_w, new_h = int(w * resize), int(h * resize)
    fh, fw = final_hw
    left = int(round(max(0, new_w - fw) * float(frac[0])))
    top = int(round((new_h - fh) * float(frac[1])))
    return (left, top, left + fw, top + fh)


def _image_params(sample: Sample, orig_hw: tuple[int, int], cfg) -> tuple[float, tuple[int, int, int, int], bool]:
    """(resize, crop, flip): the test-time ones, or the request in ``sample.extra['img_aug']``."""
    aug = sample.extra.get("img_aug") if sample.extra else None
    if not aug:
        return cfg.camera.resize, crop_box(orig_hw, cfg.camera.resize, cfg.camera.image_size), False
    resize = cfg.camera.resize * float(aug.get("resize", 1.0))
    crop = train_crop(orig_hw, resize, cfg.camera.image_size, aug.get("crop_frac", (0.5, 1.0)))
    return resize, crop, bool(aug.get("flip", False))


def depth_image(
    points: torch.Tensor, lidar2image: torch.Tensor, img_aug: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """(N_cam, 1, H, W): camera-frame depth of every LiDAR point that projects into the input
    image, 0 elsewhere. Like mit-han-lab, depth is clamped to 1e-5 only for the division and a
    later point overwrites an earlier one on the same pixel."""
    n_cam = lidar2image.shape[0]
    h, w = image_size
    out = torch.zeros(n_cam, 1, h, w)
    xyz = points[:, :3].t()  # (3, P)
    cam = lidar2image[:, :3, :3].matmul(xyz) + lidar2image[:, :3, 3:4]  # (N, 3, P)
    dist = cam[:, 2, :].clone()
    cam[:, 2, :] = cam[:, 2, :].clamp(1e-5, 1e5)
    cam[:, :2, :] = cam[:, :2, :] / cam[:, 2:3, :]
    cam = img_aug[:, :3, :3].matmul(cam) + img_aug[:, :3, 3:4]
    uv = cam[:, :2, :].transpose(1, 2)  # (N, P, 2) as (u=col, v=row)
    on = (uv[..., 1] < h) & (uv[..., 1] >= 0) & (uv[..., 0] < w) & (uv[..., 0] >= 0)
    cam, idx = torch.nonzero(on, as_tuple=True)  # camera-major, then point order
    px = uv[cam, idx].long()
    d = dist[cam, idx]
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
    images = sample.images()
    if len(images) != cfg.num_cameras:
        raise BevDeployError(
            f"sample {sample.token} has {len(images)} camera images, bevfusion needs {cfg.num_cameras}; check the dataset"
        )
    imgs, augs = [], []
    for img in images:
        resize, crop, flip = _image_params(sample, img.shape[:2], cfg)
        imgs.append(_image(img, resize, crop, flip))
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
