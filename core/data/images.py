"""Image decoding shared by the loader and the visualisation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import BevDeployError


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file into an HxWx3 uint8 RGB array (cv2 decodes BGR; models expect RGB)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BevDeployError(f"cannot read image {path}; check that the dataroot's sensor files are complete")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
