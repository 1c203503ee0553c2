"""Rulebooks: for every kernel offset, which input site feeds which output site.

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

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class Rulebook:
    """Pairs per kernel offset plus the output sites they write to."""

    pairs_in: list[torch.Tensor]  # per offset: input rows (long)
    pairs_out: list[torch.Tensor]  # per offset: output rows (long)
    out_indices: torch.Tensor  # (M, 1 + ndim) int32
    out_shape: list[int]
    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    center: int | None  # offset whose pairs are the identity (submanifold), handled without gather


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


def _offsets(kernel: Sequence[int], device: torch.device) -> torch.Tensor:
    grid = list(itertools.product(*(range(k) for k in kernel)))
    return torch.tensor(grid, dtype=torch.long, device=device).reshape(-1, len(kernel))


def _linear(batch: torch.Tensor, coords: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Linear index of (batch, *coords) in a (B, *shape) grid; coords (..., ndim) long."""
    key = batch
    for axis, size in enumerate(shape):
        key = key * size + coords[..., axis]
    return key


def _split(values: torch.Tensor, offset_of: torch.Tensor, num_offsets: int) -> list[torch.Tensor]:
    """Split rows sorted by offset into one tensor per offset (one host sync for the sizes)."""
    counts = torch.bincount(offset_of, minlength=num_offsets)
    return list(torch.split(values, counts.tolist()))


def _empty(
    out_indices: torch.Tensor,
    out_shape: list[int],
    kernel: Sequence[int],
    dilation: Sequence[int],
    k_total: int,
    center: int | None,
) -> Rulebook:
    """No input sites: no pairs, no outputs (an empty point cloud is a valid input)."""
    none = out_indices.new_zeros(0, dtype=torch.long)
    return Rulebook(
        [none] * k_total, [none] * k_total, out_indices, out_shape, tuple(kernel), tuple(dilation), center
    )


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
    offs = _offsets(kernel, device)
    k_total = offs.shape[0]
    if n == 0:
        return _empty(
            indices.new_zeros((0, indices.shape[1])).int(), out_shape, kernel, dilation, k_total, None
        )
    idx = indices.long()
    st = torch.tensor(list(stride), dtype=torch.long, device=device)
    num = (
        idx[None, :, 1:]
        + torch.tensor(list(padding), device=device)
        - offs[:, None, :] * torch.tensor(list(dilation), device=device)
    )  # (K, N, ndim) = out * stride where divisible
    bound = torch.tensor(out_shape, dtype=torch.long, device=device)
    valid = ((num % st == 0) & (num >= 0) & (num // st < bound)).all(-1)
    flat = torch.nonzero(valid.reshape(-1)).squeeze(1)  # offset-major, input-minor
    k_of, i_of = flat // n, flat % n
    out_coords = num.reshape(-1, num.shape[-1])[flat] // st
    batch = idx[i_of, 0]
    keys = _linear(batch, out_coords, out_shape)
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.numel(),), flat.numel(), dtype=torch.long, device=device)
    first = first.scatter_reduce(0, inverse, torch.arange(flat.numel(), device=device), reduce="amin")
    order = torch.argsort(first)  # output rows in order of first appearance (spconv CPU order)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=device)
    out_rows = rank[inverse]
    src = first[order]
    out_indices = torch.cat([batch[src, None], out_coords[src]], dim=1).to(torch.int32)
    return Rulebook(
        pairs_in=_split(i_of, k_of, k_total),
        pairs_out=_split(out_rows, k_of, k_total),
        out_indices=out_indices,
        out_shape=out_shape,
        kernel_size=tuple(kernel),
        dilation=tuple(dilation),
        center=None,
    )


def submanifold_rulebook(
    indices: torch.Tensor, shape: Sequence[int], kernel: Sequence[int], dilation: Sequence[int]
) -> Rulebook:
    """Rulebook of a submanifold conv: outputs are the input sites; site o receives site i
    through offset k when ``i = o + (k - kernel // 2) * dilation`` (the kernel is centred)."""
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"submanifold conv needs an odd kernel to have a centre; got {list(kernel)}")
    device, n = indices.device, indices.shape[0]
    offs = _offsets(kernel, device)
    k_total = offs.shape[0]
    centre_k = (k_total - 1) // 2  # row-major index of the centre of an odd kernel
    if n == 0:
        return _empty(indices, list(shape), kernel, dilation, k_total, centre_k)
    idx = indices.long()
    centre = torch.tensor([k // 2 for k in kernel], device=device)
    delta = (offs - centre) * torch.tensor(list(dilation), device=device)  # (K, ndim)
    keys = _linear(idx[:, 0], idx[:, 1:], shape)
    sorted_keys, perm = torch.sort(keys)
    query = idx[None, :, 1:] + delta[:, None, :]  # (K, N, ndim) neighbour of each output site
    bound = torch.tensor(list(shape), dtype=torch.long, device=device)
    inside = ((query >= 0) & (query < bound)).all(-1)
    qkeys = _linear(idx[None, :, 0].expand(k_total, n), query, shape)
    pos = torch.searchsorted(sorted_keys, qkeys.reshape(-1)).clamp(max=max(n - 1, 0)).reshape(k_total, n)
    found = inside & (sorted_keys[pos] == qkeys)
    found[centre_k] = False  # the centre offset maps every site to itself: no gather needed
    flat = torch.nonzero(found.reshape(-1)).squeeze(1)
    k_of, o_of = flat // n, flat % n
    i_of = perm[pos.reshape(-1)[flat]]
    return Rulebook(
        pairs_in=_split(i_of, k_of, k_total),
        pairs_out=_split(o_of, k_of, k_total),
        out_indices=indices,
        out_shape=list(shape),
        kernel_size=tuple(kernel),
        dilation=tuple(dilation),
        center=centre_k,
    )
