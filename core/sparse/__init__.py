"""Sparse convolution in plain PyTorch, a drop-in for the parts of ``spconv.pytorch`` that
voxel backbones use (``SparseConvTensor``, ``SubMConv3d``, ``SparseConv3d``, ``SparseModule``,
``SparseSequential``), with spconv 2.x parameter names, shapes and output layout.

Why: spconv ships per-CUDA-version binary wheels; this runs wherever torch runs (any CUDA, CPU,
deterministic on CPU, safe with many threads) and trains through autograd. A model picks an
implementation with :func:`sparse_impl` (``"torch"`` for this one, ``"spconv"``, or ``"auto"``),
and checkpoints move between the two unchanged.
"""

from __future__ import annotations

from .conv import SparseConv3d, SparseConvolution, SubMConv3d, gather_gemm, gather_gemm_scatter
from .impl import IMPLS, resolve_impl, sparse_conv_types, sparse_impl, sparse_sequential_types
from .modules import SparseModule, SparseSequential
from .rulebook import Rulebook, regular_rulebook, submanifold_rulebook
from .tensor import SparseConvTensor

__all__ = [
    "IMPLS",
    "Rulebook",
    "SparseConv3d",
    "SparseConvTensor",
    "SparseConvolution",
    "SparseModule",
    "SparseSequential",
    "SubMConv3d",
    "gather_gemm",
    "gather_gemm_scatter",
    "regular_rulebook",
    "resolve_impl",
    "sparse_conv_types",
    "sparse_impl",
    "sparse_sequential_types",
    "submanifold_rulebook",
]
