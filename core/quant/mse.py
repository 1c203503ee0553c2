"""MSE calibration from a collected histogram, on the CPU.

pytorch-quantization 2.1.3's "mse" moves the histogram to CUDA; this is the same criterion
(amax among bin centres from ``start_bin`` on, minimising the count-weighted squared error of
fake-quantizing the bin centres) evaluated with numpy on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch


def _errors(candidates: np.ndarray, c: np.ndarray, n: np.ndarray, bound: float) -> np.ndarray:
    scale = bound / candidates[:, None]  # [K, 1]
    q = np.minimum(np.round(c[None, :] * scale), bound) / scale
    return (np.square(q - c[None, :]) * n[None, :]).sum(axis=1)


def mse_amax(hist: np.ndarray, edges: np.ndarray, num_bits: int = 8, unsigned: bool = False,
             start_bin: int = 128, coarse: int = 8) -> torch.Tensor:
    """The amax minimising quantization MSE over a histogram of |x| (``hist``, ``edges``).

    Searched on every ``coarse``-th candidate, then on every candidate around the best one: the
    error curve is smooth at bin scale, and this is ~8x cheaper than trying all ~2000 candidates.
    """
    # numpy, single-threaded: these [K, bins] ops are too small for torch's thread pool to pay off
    counts = np.asarray(hist, dtype=np.float32)
    e = np.asarray(edges, dtype=np.float32)
    centers = (e[1:] + e[:-1]) / 2
    candidates = centers[start_bin:] if len(centers) > start_bin else centers
    candidates = candidates[candidates > 0]
    if candidates.size == 0:
        return torch.tensor(float(e[-1]), dtype=torch.float32)
    bound = 2.0 ** (num_bits - 1 + int(unsigned)) - 1.0
    filled = counts > 0  # empty bins add no error: leave them out
    c, n = centers[filled], counts[filled]
    best = int(np.argmin(_errors(candidates[::coarse], c, n, bound))) * coarse
    lo, hi = max(0, best - coarse), min(candidates.size, best + coarse + 1)
    fine = candidates[lo:hi]
    return torch.tensor(float(fine[int(np.argmin(_errors(fine, c, n, bound)))]), dtype=torch.float32)
