"""Sample -> BEVDet inputs (batch 1), as BEVDet's test pipeline prepares them: resize the
1600x900 images by the variant's factor, crop bottom-centre to the input size, ImageNet
normalisation (mmdet's mean/std in RGB), the matching ``img_aug_matrix`` (post-rotation and
translation), each camera's calibrated ``camera2ego`` and ``lidar2ego`` for moving the ego-frame
detections into the LiDAR frame.

The camera poses are the rig's calibration, not time-compensated to the key frame's ego pose:
as in BEVDet's TensorRT deployment, the geometry (and so the bev_pool_v2 ranks) is then fixed
per rig and computed once, at the cost of ignoring the few milliseconds of ego motion between
the cameras' timestamps. Training requests (``sample.extra``: ``img_aug`` resize factor, crop
position, flip; ``lidar_aug`` global transform) are applied and folded into these matrices."""

from __future__ import annotations

import numpy as np
import torch
from bevdeploy.data.augment import IMG_AUG_KEY, LIDAR_AUG_KEY
from bevdeploy.data.images import network_input
from bevdeploy.data.types import Sample
from bevdeploy.errors import BevDeployError


def crop_box(
    resized_hw: tuple[int, int], final_hw: tuple[int, int], frac: tuple[float, float] = (0.5, 1.0)
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the input window in the resized image; ``frac`` places it in
    the free margin (test time: horizontally centred, bottom-aligned, BEVDet's crop with crop_h 0)."""
    new_h, new_w = resized_hw
    fh, fw = final_hw
    left, top = int(frac[0] * max(0, new_w - fw)), int(frac[1] * max(0, new_h - fh))
    return (left, top, left + fw, top + fh)


def image_aug_matrix(resize: float, crop: tuple[int, int, int, int], flip: bool = False) -> np.ndarray:
    """4x4 map from original pixels to input pixels (BEVDet's post_rots / post_trans)."""
    m = np.eye(4, dtype=np.float32)
    m[0, 0] = m[1, 1] = resize
    m[0, 3], m[1, 3] = -crop[0], -crop[1]
    if flip:  # pixel column u -> (width - 1 - u), as PIL's FLIP_LEFT_RIGHT moves pixels
        m[0] = -m[0]
        m[0, 3] += crop[2] - crop[0] - 1
    return m


def camera2bev(sample: Sample) -> np.ndarray:
    """(N, 4, 4) camera -> the BEV frame (the ego frame): the rig calibration, with a training-time
    LiDAR-frame augmentation (``sample.extra["lidar_aug"]``) re-expressed in the ego frame."""
    cam2ego = np.asarray(sample.camera2ego, dtype=np.float64)
    aug = sample.extra.get(LIDAR_AUG_KEY)
    if aug is None:
        return cam2ego
    l2e = np.asarray(sample.lidar2ego, dtype=np.float64)
    return (l2e @ np.asarray(aug, dtype=np.float64) @ np.linalg.inv(l2e)) @ cam2ego


def prepare(model, sample: Sample) -> dict[str, torch.Tensor]:
    """img (1,N,3,H,W); camera2ego, camera_intrinsics, img_aug_matrix (1,N,4,4); lidar2ego (1,4,4)."""
    cfg = model.cfg
    req = sample.extra.get(IMG_AUG_KEY) or {}
    resize = cfg.resize * float(req.get("resize", 1.0))
    frac, flip = tuple(req.get("crop_frac", (0.5, 1.0))), bool(req.get("flip", False))
    images = sample.images(scale=resize)
    if len(images) != cfg.num_cameras:
        raise BevDeployError(
            f"sample {sample.token} has {len(images)} camera images, bevdet needs {cfg.num_cameras}; check the dataset"
        )
    imgs, augs = [], []
    for img in images:
        crop = crop_box(img.shape[:2], cfg.image_size, frac)
        imgs.append(network_input(img, crop, flip))
        augs.append(image_aug_matrix(resize, crop, flip))
    intr = np.tile(np.eye(4, dtype=np.float32), (cfg.num_cameras, 1, 1))
    intr[:, :3, :3] = sample.cam_intrinsics

    def t(a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).unsqueeze(0)

    return {
        "img": t(np.stack(imgs)),
        "camera2ego": t(camera2bev(sample)),
        "camera_intrinsics": t(intr),
        "img_aug_matrix": t(np.stack(augs)),
        "lidar2ego": t(sample.lidar2ego),
    }
