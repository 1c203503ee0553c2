"""Sample -> BEVDet inputs (batch 1), as BEVDet's test pipeline prepares them: resize the
1600x900 images by the variant's factor, crop bottom-centre to the input size, ImageNet
normalisation (mmdet's mean/std in RGB), the matching ``img_aug_matrix`` (post-rotation and
translation), each camera's calibrated ``camera2ego`` and ``lidar2ego`` for moving the ego-frame
detections into the LiDAR frame.

The camera poses are the rig's calibration, not time-compensated to the key frame's ego pose:
as in BEVDet's TensorRT deployment, the geometry (and so the bev_pool_v2 ranks) is then fixed
per rig and computed once, at the cost of ignoring the few milliseconds of ego motion between
the cameras' timestamps."""

from __future__ import annotations

import numpy as np
import torch
from bevdeploy.data.types import Sample
from bevdeploy.errors import BevDeployError
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_box(orig_hw: tuple[int, int], resize: float, final_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): horizontally centred, bottom-aligned (BEVDet test crop, crop_h 0)."""
    h, w = orig_hw
    new_w, new_h = int(w * resize), int(h * resize)
    fh, fw = final_hw
    top, left = new_h - fh, int(max(0, new_w - fw) / 2)
    return (left, top, left + fw, top + fh)


def image_aug_matrix(resize: float, crop: tuple[int, int, int, int]) -> np.ndarray:
    """4x4 map from original pixels to input pixels (BEVDet's post_rots / post_trans)."""
    m = np.eye(4, dtype=np.float32)
    m[0, 0] = m[1, 1] = resize
    m[0, 3], m[1, 3] = -crop[0], -crop[1]
    return m


def _image(img: np.ndarray, resize: float, crop: tuple[int, int, int, int]) -> np.ndarray:
    pil = Image.fromarray(img)
    pil = pil.resize((int(pil.width * resize), int(pil.height * resize)), Image.BILINEAR).crop(crop)
    return ((np.asarray(pil, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def prepare(model, sample: Sample) -> dict[str, torch.Tensor]:
    """img (1,N,3,H,W); camera2ego, camera_intrinsics, img_aug_matrix (1,N,4,4); lidar2ego (1,4,4)."""
    cfg = model.cfg
    images = sample.images()
    if len(images) != cfg.num_cameras:
        raise BevDeployError(
            f"sample {sample.token} has {len(images)} camera images, bevdet needs {cfg.num_cameras}; check the dataset"
        )
    imgs, augs = [], []
    for img in images:
        crop = crop_box(img.shape[:2], cfg.resize, cfg.image_size)
        imgs.append(_image(img, cfg.resize, crop))
        augs.append(image_aug_matrix(cfg.resize, crop))
    intr = np.tile(np.eye(4, dtype=np.float32), (cfg.num_cameras, 1, 1))
    intr[:, :3, :3] = sample.cam_intrinsics

    def t(a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).unsqueeze(0)

    return {
        "img": t(np.stack(imgs)),
        "camera2ego": t(sample.camera2ego),
        "camera_intrinsics": t(intr),
        "img_aug_matrix": t(np.stack(augs)),
        "lidar2ego": t(sample.lidar2ego),
    }
