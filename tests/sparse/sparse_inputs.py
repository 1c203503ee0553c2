"""Small random sparse grids and a helper that runs spconv single-threaded (its CPU strided conv
races with more than one intra-op thread). A module of its own, not conftest: ``from conftest
import`` can pick up another folder's conftest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

try:
    import spconv.pytorch as spconv
except ImportError:  # the GPU machine has no spconv: only the comparisons skip
    spconv = None

needs_spconv = pytest.mark.skipif(
    spconv is None, reason="spconv is not installed; nothing to compare against"
)

SHAPE = [9, 8, 7]
BATCH = 2


def random_sites(n: int, shape: list[int] = SHAPE, batch: int = BATCH, seed: int = 0) -> torch.Tensor:
    """n distinct (batch, d0, d1, d2) int32 sites."""
    g = torch.Generator().manual_seed(seed)
    cells = batch * shape[0] * shape[1] * shape[2]
    lin = torch.randperm(cells, generator=g)[:n]
    cols = []
    for size in reversed(shape):
        cols.append(lin % size)
        lin = lin // size
    cols.append(lin)
    return torch.stack(cols[::-1], dim=1).to(torch.int32)


@contextmanager
def single_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
