"""Batched 4x4 matrix inverse in plain PyTorch (InverseTRT; fp32 only, as in the anchors).

Written as the closed-form adjugate / determinant (the way a GPU kernel inverts a 4x4 in
registers), not as a call to LAPACK, so that ``torch.linalg.inv`` remains an independent check.
For singular input the determinant is 0 and the result is inf/nan, as the plugin's would be;
for ill-conditioned input the error grows with the condition number (see the tests).
"""

from __future__ import annotations

import itertools

import torch


def _det3(m: torch.Tensor) -> torch.Tensor:
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )


def inverse_reference(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of every 4x4 matrix in ``matrices`` (..., 4, 4)."""
    if matrices.shape[-2:] != (4, 4):
        raise ValueError(f"inverse expects (..., 4, 4) matrices, got {tuple(matrices.shape)}")
    cof = torch.empty_like(matrices)
    idx = range(4)
    for i, j in itertools.product(idx, idx):
        rows = [r for r in idx if r != i]
        cols = [c for c in idx if c != j]
        minor = matrices[..., rows, :][..., :, cols]
        cof[..., i, j] = (-1) ** (i + j) * _det3(minor)
    det = (matrices[..., 0, :] * cof[..., 0, :]).sum(-1)
    return cof.transpose(-1, -2) / det[..., None, None]
