"""Rulebooks built on the GPU with a hash table of sites, in Triton: a handful of launches where the sort-based
builders of :mod:`.rulebook` take 50 - 100 tensor ops each.

With its convolutions fused (:mod:`.kernels`), BEVFusion's sparse backbone on an H100 was bound by kernel
launches (about 760 per forward in benchmarks/results/sparse-profile-h100-s30.txt; counted on the CPU by
benchmarks/sparse_cpu.py, 592 of the forward's 862 tensor ops build rulebooks). Here a site's
linear key goes into an open-addressing table (linear probing, Fibonacci hashing, keys claimed with an atomic
compare-and-swap) and every neighbour lookup is a probe:

* submanifold: insert the sites, then one probe per site and kernel offset gives the neighbour map;
* strided / padded: insert every output position some (offset, input) pair reaches, keeping the pair's first
  flat index (offset-major, input-minor) with an atomic min; order the distinct outputs by it (one sort: the
  same order as :func:`.rulebook.regular_rulebook`) and write each pair's input into its output's row.

The result equals the sort-based builders' rulebook exactly (same outputs, same order, same neighbour map):
tests/sparse/test_sparse_hashmap_interpret.py checks that in Triton's interpreter, tests/gpu on the device.
Keys are int64 (batch and the padded grid), values int32 (site indices and flat pair indices below 2**31).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .kernels import TRITON_ERROR, available

EMPTY = -1  # a free slot's key
BLOCK = 256
# arguments that change with every frame: not specialised (Triton would compile a variant whenever one of them
# crosses a multiple of 16, stalling a frame mid-stream)
PER_FRAME = ["n", "SHIFT", "CAP_MASK"]

__all__ = ["available", "regular_neighbors", "submanifold_neighbors"]

if not TRITON_ERROR:  # the CPU install has no Triton
    import triton
    import triton.language as tl

    @triton.jit
    def _slot(key, SHIFT):
        """Fibonacci hashing: the top 64 - SHIFT bits of key * 2**64 / golden ratio."""
        return ((key.to(tl.uint64) * 0x9E3779B97F4A7C15) >> SHIFT.to(tl.uint64)).to(tl.int64)

    @triton.jit
    def _insert(tkeys_ptr, key, active, SHIFT, CAP_MASK):
        """Claim a slot for every active lane's key (or find the one it holds); returns the slots."""
        slot = _slot(key, SHIFT)
        while tl.max(active.to(tl.int32), axis=0) > 0:
            # atomic_cas takes no mask: an inactive lane compares its slot with -3, which no slot holds, so it
            # writes nothing. (Aiming them all at one spare slot instead serialised them there: 1 ms per r50
            # strided layer on an H100, where 7 of 8 (offset, input) pairs are inactive.)
            prev = tl.atomic_cas(tkeys_ptr + slot, tl.where(active, -1, -3).to(tl.int64), key)
            won = active & ((prev == -1) | (prev == key))
            active = active & ~won
            slot = tl.where(active, (slot + 1) & CAP_MASK, slot)
        return slot

    @triton.jit
    def _find(tkeys_ptr, key, active, SHIFT, CAP_MASK):
        """The slot holding each active lane's key, or -1 where the key is absent."""
        slot = _slot(key, SHIFT)
        found = tl.full(key.shape, -1, tl.int64)
        while tl.max(active.to(tl.int32), axis=0) > 0:
            k = tl.load(tkeys_ptr + slot, mask=active, other=-1)
            hit = active & (k == key)
            found = tl.where(hit, slot, found)
            active = active & ~hit & (k != -1)
            slot = (slot + 1) & CAP_MASK
        return found

    @triton.jit
    def _subm_key(idx_ptr, rows, mask, S0, S1, S2, SB, R0: tl.constexpr, R1: tl.constexpr, R2: tl.constexpr):
        """Linear key of sites (batch, d0, d1, d2) in the grid padded by the kernel's reach."""
        base = idx_ptr + rows.to(tl.int64) * 4
        b = tl.load(base, mask=mask, other=0).to(tl.int64)
        d0 = tl.load(base + 1, mask=mask, other=0).to(tl.int64)
        d1 = tl.load(base + 2, mask=mask, other=0).to(tl.int64)
        d2 = tl.load(base + 3, mask=mask, other=0).to(tl.int64)
        return b * SB + (d0 + R0) * S0 + (d1 + R1) * S1 + (d2 + R2) * S2

    @triton.jit(do_not_specialize=PER_FRAME)
    def _subm_insert_kernel(idx_ptr, n, tkeys_ptr, tvals_ptr, S0, S1, S2, SB,
                            R0: tl.constexpr, R1: tl.constexpr, R2: tl.constexpr,
                            SHIFT, CAP_MASK, BLOCK: tl.constexpr):  # fmt: skip
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = rows < n
        key = _subm_key(idx_ptr, rows, mask, S0, S1, S2, SB, R0, R1, R2)
        slot = _insert(tkeys_ptr, key, mask, SHIFT, CAP_MASK)
        tl.store(tvals_ptr + slot, rows, mask=mask)

    @triton.jit(do_not_specialize=PER_FRAME)
    def _subm_query_kernel(idx_ptr, n, tkeys_ptr, tvals_ptr, nbr_ptr, S0, S1, S2, SB,
                           R0: tl.constexpr, R1: tl.constexpr, R2: tl.constexpr,
                           K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr,
                           D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
                           SHIFT, CAP_MASK, BLOCK: tl.constexpr):  # fmt: skip
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = rows < n
        key = _subm_key(idx_ptr, rows, mask, S0, S1, S2, SB, R0, R1, R2)
        for k in range(K0 * K1 * K2):  # row-major offsets, the weight's order
            delta = ((k // (K1 * K2)) * D0 - R0) * S0 + ((k // K2 % K1) * D1 - R1) * S1 + ((k % K2) * D2 - R2) * S2
            slot = _find(tkeys_ptr, key + delta, mask, SHIFT, CAP_MASK)
            hit = slot >= 0
            val = tl.load(tvals_ptr + slot, mask=hit, other=n)
            tl.store(nbr_ptr + rows.to(tl.int64) * (K0 * K1 * K2) + k, val.to(tl.int64), mask=mask)

    @triton.jit
    def _regular_pair(idx_ptr, p, n, OUT0, OUT1, OUT2, SB,
                      K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr,
                      ST0: tl.constexpr, ST1: tl.constexpr, ST2: tl.constexpr,
                      P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr,
                      D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr):  # fmt: skip
        """Flat pair p = k * n + i -> (valid, output key): input i reaches output o through offset k when
        i = o * stride - padding + k * dilation on every axis."""
        k = p // n
        i = p % n
        base = idx_ptr + i * 4
        ok = p < (K0 * K1 * K2) * n
        b = tl.load(base, mask=ok, other=0).to(tl.int64)
        num0 = tl.load(base + 1, mask=ok, other=0).to(tl.int64) + P0 - (k // (K1 * K2)) * D0
        num1 = tl.load(base + 2, mask=ok, other=0).to(tl.int64) + P1 - (k // K2 % K1) * D1
        num2 = tl.load(base + 3, mask=ok, other=0).to(tl.int64) + P2 - (k % K2) * D2
        ok &= (num0 % ST0 == 0) & (num0 >= 0) & (num0 < OUT0 * ST0)
        ok &= (num1 % ST1 == 0) & (num1 >= 0) & (num1 < OUT1 * ST1)
        ok &= (num2 % ST2 == 0) & (num2 >= 0) & (num2 < OUT2 * ST2)
        key = b * SB + (num0 // ST0) * (OUT1 * OUT2) + (num1 // ST1) * OUT2 + num2 // ST2
        return ok, key, k, i

    @triton.jit(do_not_specialize=PER_FRAME)
    def _regular_pairs_kernel(idx_ptr, n, tkeys_ptr, tvals_ptr, nbr_ptr, KP, OUT0, OUT1, OUT2, SB,
                              K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr,
                              ST0: tl.constexpr, ST1: tl.constexpr, ST2: tl.constexpr,
                              P0: tl.constexpr, P1: tl.constexpr, P2: tl.constexpr,
                              D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
                              SHIFT, CAP_MASK, FILL: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
        """Every valid (offset, input) pair of a strided conv. FILL = 0: insert its output key and keep the pair's
        smallest flat index in ``tvals``. FILL = 1: ``tvals`` holds each output's row; write the pair's input into
        the neighbour map (``nbr``, KP columns)."""
        p = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        ok, key, k, i = _regular_pair(idx_ptr, p, n, OUT0, OUT1, OUT2, SB, K0, K1, K2, ST0, ST1, ST2,
                                      P0, P1, P2, D0, D1, D2)  # fmt: skip
        if FILL:
            slot = _find(tkeys_ptr, key, ok, SHIFT, CAP_MASK)
            row = tl.load(tvals_ptr + slot, mask=ok, other=0).to(tl.int64)
            tl.store(nbr_ptr + row * KP + k, i, mask=ok)
        else:
            slot = _insert(tkeys_ptr, key, ok, SHIFT, CAP_MASK)
            tl.atomic_min(tvals_ptr + slot, p.to(tl.int32), mask=ok)


def _table(capacity_for: int, device: torch.device, fill: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Keys and int32 values of a table at most half full."""
    log2cap = max(4, math.ceil(math.log2(max(1, 2 * capacity_for))))
    keys = torch.full((1 << log2cap,), EMPTY, dtype=torch.int64, device=device)
    vals = torch.full((1 << log2cap,), fill, dtype=torch.int32, device=device)
    return keys, vals, log2cap


def _strides(shape: Sequence[int]) -> list[int]:
    return [math.prod(shape[a + 1 :]) for a in range(len(shape))]


def _check_3d(indices: torch.Tensor, kernel: Sequence[int]) -> None:
    if indices.shape[1] != 4 or len(kernel) != 3:
        raise ValueError("the hashed rulebooks are for 3-d grids: indices (N, 4) and a 3-d kernel")


def submanifold_neighbors(
    indices: torch.Tensor, shape: Sequence[int], kernel: Sequence[int], dilation: Sequence[int]
) -> torch.Tensor:
    """Neighbour map (N, K) long of a submanifold conv over all K offsets (N = none): the sort-based builder's
    map before it drops unused offsets."""
    _check_3d(indices, kernel)
    n = indices.shape[0]
    reach = [(k // 2) * d for k, d in zip(kernel, dilation, strict=True)]
    padded = [s + 2 * r for s, r in zip(shape, reach, strict=True)]
    s0, s1, s2 = _strides(padded)
    sb = math.prod(padded)
    idx = indices.contiguous()
    tkeys, tvals, log2cap = _table(n, indices.device, 0)
    k_total = math.prod(kernel)
    nbr = torch.empty((n, k_total), dtype=torch.int64, device=indices.device)
    grid = (triton.cdiv(n, BLOCK),)
    consts = {"R0": reach[0], "R1": reach[1], "R2": reach[2], "SHIFT": 64 - log2cap, "CAP_MASK": (1 << log2cap) - 1,
              "BLOCK": BLOCK}  # fmt: skip
    _subm_insert_kernel[grid](idx, n, tkeys, tvals, s0, s1, s2, sb, **consts)
    _subm_query_kernel[grid](idx, n, tkeys, tvals, nbr, s0, s1, s2, sb, K0=kernel[0], K1=kernel[1],
                             K2=kernel[2], D0=dilation[0], D1=dilation[1], D2=dilation[2], **consts)  # fmt: skip
    return nbr


def regular_neighbors(
    indices: torch.Tensor,
    out_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(neighbour map (M, K) long over all K offsets, output keys (M,) in the (B, *out_shape) grid) of a strided
    conv, outputs in order of their first (offset, input) pair: the sort-based builder's map before it drops
    unused offsets."""
    _check_3d(indices, kernel)
    n = indices.shape[0]
    k_total = math.prod(kernel)
    if k_total * n >= 2**31:
        raise ValueError(f"{n} sites x {k_total} offsets overflow the int32 pair index")
    reach = math.prod(-(-k // s) for k, s in zip(kernel, stride, strict=True))  # outputs one input can touch
    sb = math.prod(out_shape)
    tkeys, first, log2cap = _table(n * reach, indices.device, 2**31 - 1)
    idx = indices.contiguous()
    consts = {"K0": kernel[0], "K1": kernel[1], "K2": kernel[2], "ST0": stride[0], "ST1": stride[1],
              "ST2": stride[2], "P0": padding[0], "P1": padding[1], "P2": padding[2], "D0": dilation[0],
              "D1": dilation[1], "D2": dilation[2], "SHIFT": 64 - log2cap, "CAP_MASK": (1 << log2cap) - 1,
              "BLOCK": BLOCK}  # fmt: skip
    grid = (triton.cdiv(k_total * n, BLOCK),)
    o0, o1, o2 = out_shape
    # the insert pass writes no neighbour map: ``first`` stands in for its pointer, never stored to
    _regular_pairs_kernel[grid](idx, n, tkeys, first, first, 0, o0, o1, o2, sb, FILL=0, **consts)
    slots = torch.nonzero(tkeys >= 0).squeeze(1)
    slots = slots[torch.argsort(first[slots])]  # first appearance: flat pair indices are distinct
    rank = torch.empty_like(first)
    rank[slots] = torch.arange(slots.numel(), dtype=torch.int32, device=indices.device)
    nbr = torch.full((slots.numel(), k_total), n, dtype=torch.int64, device=indices.device)
    _regular_pairs_kernel[grid](idx, n, tkeys, rank, nbr, k_total, o0, o1, o2, sb, FILL=1, **consts)
    return nbr, tkeys[slots]
