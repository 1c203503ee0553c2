"""Rulebooks: for every output site and kernel offset, which input site feeds it.

A rulebook is stored as a neighbour map ``(M outputs, K' offsets)`` of input rows, with the row
index ``N`` (one past the last input) where no input exists; only the K' offsets that have at
least one pair are kept. :meth:`Rulebook.pairs` lists the same pairs offset by offset. The convs
in :mod:`.conv` use one or the other.

Sites are hashed to their linear index in the (batch, *spatial) grid; lookups are a sort plus
``searchsorted``, so building a rulebook is a handful of vectorised tensor ops whatever the number
of sites (no Python loop over voxels, same code on CPU and CUDA).

Kernel offsets are enumerated row-major over ``kernel_size``, the order of spconv 2.x's weight
``[out, k0, k1, ..., in]``. The output sites of a strided conv are ordered by their first
appearance when pairs are enumerated offset-major, input-minor; that is the order spconv 2.3's
CPU kernels produce, so outputs match spconv row for row there (on CUDA spconv's order differs;
the set of sites is the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

#: On CUDA, build 3-d rulebooks with the Triton hash table of :mod:`.hashmap` (the same rulebooks in a handful
#: of launches); False keeps the sort-based builders there (an A/B switch for benchmarks).
HASHED = True


def _hashed(indices: torch.Tensor, kernel: Sequence[int]) -> bool:
    if not (HASHED and indices.is_cuda and indices.shape[0] > 0 and len(kernel) == 3):
        return False
    from . import hashmap  # imports Triton: only on this path

    return hashmap.available()


@dataclass
class Rulebook:
    """Neighbour map of one sparse conv plus the output sites it writes to."""

    neighbors: torch.Tensor  # (M, K') long: input row per output site and used offset; N = none
    offsets: torch.Tensor  # (K',) long: the used kernel offsets (row-major index into the kernel)
    out_indices: torch.Tensor  # (M, 1 + ndim) int32
    out_shape: list[int]
    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    subm: bool
    num_inputs: int  # N, also the neighbour index that means "no input"

    _pairs: tuple[torch.Tensor, torch.Tensor, list[int]] | None = field(default=None, repr=False)

    @property
    def num_pairs(self) -> int:
        return int((self.neighbors < self.num_inputs).sum())

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The map as (input rows, output rows, pairs per used offset), offset-major; computed
        once per rulebook (submanifold layers sharing an ``indice_key`` share it)."""
        if self._pairs is None:
            m = self.neighbors.shape[0]
            by_offset = self.neighbors.t().reshape(-1)
            flat = torch.nonzero(by_offset < self.num_inputs).squeeze(1)
            counts = torch.bincount(flat // max(m, 1), minlength=self.offsets.numel())
            self._pairs = (by_offset[flat], flat % max(m, 1), counts.tolist())
        return self._pairs


def output_shape(
    shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> list[int]:
    """Spatial shape of a regular (non-submanifold) conv's output, as for a dense conv."""
    dims = zip(shape, kernel, stride, padding, dilation, strict=True)
    out = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, k, st, p, d in dims]
    if any(o <= 0 for o in out):
        raise ValueError(
            f"sparse conv on grid {list(shape)} with kernel {list(kernel)} leaves an empty grid {out}"
        )
    return out


def _strides(shape: Sequence[int]) -> list[int]:
    """Row-major strides of a grid: linear index = sum(coord * stride)."""
    return [math.prod(shape[a + 1 :]) for a in range(len(shape))]


def _decode(keys: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Linear indices in a (B, *shape) grid -> (M, 1 + ndim) int32 (batch, *coords)."""
    cols = []
    for stride in [math.prod(shape), *_strides(shape)]:
        cols.append(keys // stride)
        keys = keys % stride
    return torch.stack(cols, dim=1).to(torch.int32)


def _compact(neighbors: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the offsets no output uses; returns (neighbors, used offsets)."""
    used = torch.nonzero((neighbors < n).any(0)).squeeze(1)
    return neighbors[:, used], used


def _candidates(
    coords: torch.Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    out_shape: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, N) linear output position (without batch) and validity of every (offset, input)
    pair, built per axis and broadcast: the offset grid is separable."""
    key: torch.Tensor | int = 0
    valid: torch.Tensor | bool = True
    ndim, strides = len(kernel), _strides(out_shape)
    for a in range(ndim):
        taps = torch.arange(kernel[a], device=coords.device)[:, None] * dilation[a]
        num = coords[None, :, a] + padding[a] - taps  # (k_a, N) = out * stride where divisible
        ok = (num % stride[a] == 0) & (num >= 0) & (num < out_shape[a] * stride[a])
        view = [1] * ndim + [coords.shape[0]]
        view[a] = kernel[a]
        key = key + (num // stride[a] * strides[a]).view(view)
        valid = valid & ok.view(view)
    k_total = math.prod(kernel)
    return key.reshape(k_total, coords.shape[0]), valid.reshape(k_total, coords.shape[0])  # type: ignore[union-attr]


def regular_rulebook(
    indices: torch.Tensor,
    shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> Rulebook:
    """Rulebook of a strided/padded conv: output site o receives input i through offset k when
    ``i = o * stride - padding + k * dilation``; every output reached by some input is active."""
    out_shape = output_shape(shape, kernel, stride, padding, dilation)
    device, n = indices.device, indices.shape[0]
    if _hashed(indices, kernel):
        from .hashmap import regular_neighbors

        neighbors, keys = regular_neighbors(indices, out_shape, kernel, stride, padding, dilation)
        neighbors, used = _compact(neighbors, n)
        return Rulebook(neighbors, used, _decode(keys, out_shape), out_shape, tuple(kernel), tuple(dilation), False, n)
    k_total = math.prod(kernel)
    idx = indices.long()
    key, valid = _candidates(idx[:, 1:], kernel, stride, padding, dilation, out_shape)
    key = key + idx[None, :, 0] * math.prod(out_shape)
    flat = torch.nonzero(valid.reshape(-1)).squeeze(1)  # offset-major, input-minor
    k_of, i_of = flat // max(n, 1), flat % max(n, 1)
    uniq, inverse = torch.unique(key.reshape(-1)[flat], return_inverse=True)
    first = torch.full((uniq.numel(),), flat.numel(), dtype=torch.long, device=device)
    first = first.scatter_reduce(0, inverse, torch.arange(flat.numel(), device=device), reduce="amin")
    order = torch.argsort(first)  # output rows in order of first appearance (spconv CPU order)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=device)
    neighbors = torch.full((uniq.numel(), k_total), n, dtype=torch.long, device=device)
    neighbors[rank[inverse], k_of] = i_of  # one input per (output, offset): no collisions
    neighbors, used = _compact(neighbors, n)
    out_indices = _decode(uniq[order], out_shape)
    return Rulebook(neighbors, used, out_indices, out_shape, tuple(kernel), tuple(dilation), False, n)


def submanifold_rulebook(
    indices: torch.Tensor, shape: Sequence[int], kernel: Sequence[int], dilation: Sequence[int]
) -> Rulebook:
    """Rulebook of a submanifold conv: outputs are the input sites; site o receives site i
    through offset k when ``i = o + (k - kernel // 2) * dilation`` (the kernel is centred).

    Sites are hashed in a grid padded by the kernel's reach on every side, so a neighbour's key
    is the site's key plus a per-offset constant and one outside the grid can never match."""
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"submanifold conv needs an odd kernel to have a centre; got {list(kernel)}")
    n = indices.shape[0]
    if _hashed(indices, kernel):
        from .hashmap import submanifold_neighbors

        neighbors, used = _compact(submanifold_neighbors(indices, shape, kernel, dilation), n)
        return Rulebook(neighbors, used, indices, list(shape), tuple(kernel), tuple(dilation), True, n)
    reach = [(k // 2) * d for k, d in zip(kernel, dilation, strict=True)]
    padded = [s + 2 * r for s, r in zip(shape, reach, strict=True)]
    strides = _strides(padded)
    idx = indices.long()
    keys = idx[:, 0] * math.prod(padded)
    for a, (r, st) in enumerate(zip(reach, strides, strict=True)):
        keys = keys + (idx[:, 1 + a] + r) * st
    delta = torch.zeros((), dtype=torch.long, device=indices.device)
    for a in range(len(kernel)):  # (k0, k1, ...) row-major key offsets
        taps = (torch.arange(kernel[a], device=indices.device) * dilation[a] - reach[a]) * strides[a]
        delta = delta[..., None] + taps
    sorted_keys, perm = torch.sort(keys)
    query = keys[:, None] + delta.reshape(1, -1)  # (N, K)
    if n:
        pos = torch.searchsorted(sorted_keys, query).clamp_(max=n - 1)
        neighbors = torch.where(sorted_keys[pos] == query, perm[pos], n)
    else:
        neighbors = query
    neighbors, used = _compact(neighbors, n)
    return Rulebook(neighbors, used, indices, list(shape), tuple(kernel), tuple(dilation), True, n)
