"""The hashed rulebook builders (bevdeploy.sparse.hashmap) on the CPU, in Triton's interpreter: the same rulebooks
as the sort-based builders of bevdeploy.sparse.rulebook, bit for bit (outputs, their order, the neighbour map and
the used offsets), for submanifold and strided convs, dilations, one-axis kernels and two batches.
tests/gpu/test_sparse_kernel_gpu.py checks the compiled kernels at LiDAR sizes."""

from __future__ import annotations

import pytest
import torch
from sparse_inputs import random_sites
from triton_interpreter import reason

WHY = reason()  # before anything imports Triton
pytestmark = pytest.mark.skipif(bool(WHY), reason=WHY or "-")

from bevdeploy.sparse import rulebook as R  # noqa: E402

SHAPE = [9, 8, 7]


def _hashmap():
    from bevdeploy.sparse import hashmap

    return hashmap


@pytest.mark.parametrize("n", [1, 37, 300])
@pytest.mark.parametrize("kernel,dilation", [((3, 3, 3), (1, 1, 1)), ((3, 1, 5), (2, 1, 1)), ((1, 1, 3), (1, 1, 1))])
def test_submanifold_equals_sort_based(n: int, kernel, dilation) -> None:
    sites = random_sites(n, SHAPE, 2, seed=n)
    ref = R.submanifold_rulebook(sites, SHAPE, kernel, dilation)
    neighbors, used = R._compact(_hashmap().submanifold_neighbors(sites, SHAPE, kernel, dilation), n)
    assert torch.equal(neighbors, ref.neighbors)
    assert torch.equal(used, ref.offsets)


@pytest.mark.parametrize("n", [1, 37, 300])
@pytest.mark.parametrize(
    "kernel,stride,padding,dilation",
    [((3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1)), ((1, 1, 3), (1, 1, 2), (0, 0, 0), (1, 1, 1)),
     ((2, 2, 2), (2, 2, 2), (0, 0, 0), (1, 1, 1)), ((3, 3, 3), (1, 2, 1), (0, 1, 2), (2, 1, 1))],
)  # fmt: skip
def test_regular_equals_sort_based(n: int, kernel, stride, padding, dilation) -> None:
    sites = random_sites(n, SHAPE, 2, seed=n + 1)
    ref = R.regular_rulebook(sites, SHAPE, kernel, stride, padding, dilation)
    out_shape = R.output_shape(SHAPE, kernel, stride, padding, dilation)
    neighbors, keys = _hashmap().regular_neighbors(sites, out_shape, kernel, stride, padding, dilation)
    neighbors, used = R._compact(neighbors, n)
    assert ref.neighbors.shape[0] > 0
    assert torch.equal(R._decode(keys, out_shape), ref.out_indices)  # the same outputs in the same order
    assert torch.equal(neighbors, ref.neighbors)
    assert torch.equal(used, ref.offsets)


def test_only_3d_grids() -> None:
    sites = random_sites(10, SHAPE, 1)
    with pytest.raises(ValueError, match="3-d grids"):
        _hashmap().submanifold_neighbors(sites[:, :3], SHAPE[:2], (3, 3), (1, 1))
