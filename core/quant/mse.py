"""MSE calibration from a collected histogram, on the CPU.

pytorch-quantization 2.1.3's "mse" moves the histogram to CUDA; this is the same criterion
(amax among bin centres from ``start_bin`` on, minimising the count-weighted squared error of
fake-quantizing the bin centres) evaluated for all candidates at once on whatever device.
"""

from __future__ import annotations

import numpy as np
import torch


def mse_amax(hist: np.ndarray, edges: np.ndarray, num_bits: int = 8, unsigned: bool = False,
             start_bin: int = 128, stride: int = 1) -> torch.Tensor:
    """The amax minimising quantization MSE over a histogram of |x| (``hist``, ``edges``)."""
    counts = torch.as_tensor(np.asarray(hist), dtype=torch.float64)
    e = torch.as_tensor(np.asarray(edges), dtype=torch.float64)
    centers = (e[1:] + e[:-1]) / 2
    candidates = centers[start_bin::stride] if len(centers) > start_bin else centers
    candidates = candidates[candidates > 0]
    if candidates.numel() == 0:
        return torch.tensor(float(e[-1]), dtype=torch.float32)
    bound = 2.0 ** (num_bits - 1 + int(unsigned)) - 1.0
    scale = bound / candidates[:, None]  # [K, 1]
    q = torch.clamp(torch.round(centers[None, :] * scale), max=bound) / scale
    errors = ((q - centers[None, :]) ** 2 * counts[None, :]).mean(dim=1)
    return candidates[int(torch.argmin(errors))].to(torch.float32)
