"""Image decoding shared by the loader and the visualisation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import BevDeployError

# JPEG decoders can scale by 1/2, 1/4, 1/8 while decoding (in the DCT domain): far cheaper than
# decoding full size and shrinking after, and itself an area filter.
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_JPEG = {".jpg", ".jpeg"}


def scaled_size(hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """(H, W) of an image of size ``hw`` resized by ``scale`` (truncated, as the models' resize)."""
    return int(hw[0] * scale), int(hw[1] * scale)


def resize_rgb(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` resized to ``size`` (H, W): area-averaged when shrinking, bilinear when enlarging."""
    if img.shape[:2] == tuple(size):
        return img
    shrink = size[0] < img.shape[0] or size[1] < img.shape[1]
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_rgb(path: str | Path, scale: float = 1.0) -> np.ndarray:
    """Decode an image file into an HxWx3 uint8 RGB array (cv2 decodes BGR; models expect RGB).

    ``scale`` < 1 returns the image resized to ``scaled_size`` of the file's size; a JPEG is then
    decoded at the smallest DCT reduction that is still at least that size (about 4x less work
    for the tiny models' 0.22-0.24 scales) and area-resized the rest of the way."""
    path = str(path)
    flag, size = cv2.IMREAD_COLOR, None
    if scale != 1.0:
        from PIL import Image  # reads only the header

        try:
            with Image.open(path) as im:
                size = scaled_size((im.height, im.width), scale)
        except (OSError, ValueError):
            raise BevDeployError(f"cannot read image {path}; check that the dataroot's sensor files are complete") from None
        if Path(path).suffix.lower() in _JPEG:
            k = max((k for k in _REDUCED if scale * k <= 1.0), default=None)
            flag = _REDUCED[k] if k else flag
    bgr = cv2.imread(path, flag)
    if bgr is None:
        raise BevDeployError(f"cannot read image {path}; check that the dataroot's sensor files are complete")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb if size is None else resize_rgb(rgb, size)


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def network_input(
    img: np.ndarray, box: tuple[int, int, int, int], flip: bool = False,
    mean: np.ndarray = IMAGENET_MEAN, std: np.ndarray = IMAGENET_STD,
) -> np.ndarray:
    """(3, h, w) float32 network input from an HxWx3 uint8 RGB image: the window ``box`` (left,
    top, right, bottom), zero-filled where it leaves the image, optionally mirrored left-right,
    scaled to [0, 1] and normalised by ``mean``/``std``."""
    left, top, right, bottom = box
    h, w = img.shape[:2]
    out = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)
    y0, y1, x0, x1 = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = img[y0:y1, x0:x1]
    if flip:
        out = out[:, ::-1]
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    return ((out.astype(np.float32) * scale) - mean / std).transpose(2, 0, 1)
