"""The sparse tensor that flows between sparse modules: features, their integer coordinates,
the grid they live on, and the rulebooks computed so far.

Layout follows spconv 2.x's ``SparseConvTensor`` so that code written against spconv runs
unchanged: ``indices`` is (N, 1 + ndim) int32 ``(batch, d0, d1, ...)`` in the order of
``spatial_shape``, ``dense()`` returns ``(B, C, *spatial_shape)``. ``indice_dict`` is shared by
every tensor derived with :meth:`replace_feature` (and by a conv's output), which is how a
submanifold conv with an ``indice_key`` finds the rulebook an earlier layer computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class SparseConvTensor:
    """Active sites of a batch of sparse grids and their features."""

    def __init__(
        self,
        features: torch.Tensor,
        indices: torch.Tensor,
        spatial_shape: Sequence[int],
        batch_size: int,
        *,
        indice_dict: dict[Any, Any] | None = None,
    ):
        if features.dim() != 2 or indices.dim() != 2 or features.shape[0] != indices.shape[0]:
            raise ValueError(
                f"features (N, C) and indices (N, 1 + ndim) must agree; got {tuple(features.shape)} "
                f"and {tuple(indices.shape)}"
            )
        if indices.shape[1] != len(spatial_shape) + 1:
            raise ValueError(f"indices have {indices.shape[1]} columns for a {len(spatial_shape)}-d grid")
        self._features = features
        self.indices = indices
        self.spatial_shape = [int(v) for v in spatial_shape]
        self.batch_size = int(batch_size)
        self.indice_dict: dict[Any, Any] = {} if indice_dict is None else indice_dict

    @property
    def features(self) -> torch.Tensor:
        return self._features

    @features.setter
    def features(self, value: torch.Tensor) -> None:
        raise ValueError("features cannot be set; use x = x.replace_feature(new_features), as with spconv")

    def replace_feature(self, feature: torch.Tensor) -> SparseConvTensor:
        """Same sites and rulebooks, new features (for BN, activations, residual adds)."""
        if feature.shape[0] != self.indices.shape[0]:
            raise ValueError(f"replace_feature: {feature.shape[0]} rows for {self.indices.shape[0]} sites")
        return SparseConvTensor(
            feature, self.indices, self.spatial_shape, self.batch_size, indice_dict=self.indice_dict
        )

    @property
    def spatial_size(self) -> int:
        n = 1
        for s in self.spatial_shape:
            n *= s
        return n

    def dense(self, channels_first: bool = True) -> torch.Tensor:
        """Scatter into a zero grid: (B, C, *spatial_shape), or channels last when asked."""
        f = self.features
        out = f.new_zeros([self.batch_size, *self.spatial_shape, f.shape[1]])
        idx = self.indices.to(f.device).long()
        out = out.index_put(tuple(idx.unbind(1)), f)  # also with no sites: keeps the autograd graph
        if not channels_first:
            return out
        ndim = len(self.spatial_shape)
        return out.permute(0, ndim + 1, *range(1, ndim + 1)).contiguous()

    @classmethod
    def from_dense(cls, x: torch.Tensor) -> SparseConvTensor:
        """(B, *spatial, C) channels-last grid -> its non-zero sites (as spconv's from_dense)."""
        spatial = list(x.shape[1:-1])
        idx = torch.nonzero(x.abs().sum(-1) != 0)
        feats = x[tuple(idx.unbind(1))]
        return cls(feats, idx.int(), spatial, x.shape[0])

    def __repr__(self) -> str:
        return (
            f"SparseConvTensor(sites={self.indices.shape[0]}, channels={self.features.shape[1]}, "
            f"spatial_shape={self.spatial_shape}, batch_size={self.batch_size})"
        )
