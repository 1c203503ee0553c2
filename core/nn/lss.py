"""Lift-Splat-Shoot geometry shared by LSS-style camera view transformers."""

from __future__ import annotations

import torch


def frustum(image_size: tuple[int, int], feature_size: tuple[int, int], dbound: tuple[float, float, float]) -> torch.Tensor:
    """(D, fH, fW, 3) of (u, v, depth): each feature cell's pixel position in the network input
    image (``image_size`` = (H, W)) at every depth bin ``arange(*dbound)``."""
    ih, iw = image_size
    fh, fw = feature_size
    depths = torch.arange(*dbound, dtype=torch.float).view(-1, 1, 1).expand(-1, fh, fw)
    d = depths.shape[0]
    xs = torch.linspace(0, iw - 1, fw).view(1, 1, fw).expand(d, fh, fw)
    ys = torch.linspace(0, ih - 1, fh).view(1, fh, 1).expand(d, fh, fw)
    return torch.stack((xs, ys, depths), -1)
