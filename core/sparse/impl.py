"""Choosing the sparse-convolution implementation: this package (``"torch"``) or spconv 2.x
(``"spconv"``). Both expose the same names (``SparseConvTensor``, ``SubMConv3d``,
``SparseConv3d``, ``SparseModule``, ``SparseSequential``) with the same parameters, so a model
builds its layers from whichever namespace :func:`sparse_impl` returns and its state dict is the
same either way.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import BevDeployError

IMPLS = ("auto", "torch", "spconv")


def _spconv() -> ModuleType | None:
    try:
        return importlib.import_module("spconv.pytorch")
    except ImportError:
        return None


def resolve_impl(name: str) -> str:
    """``"auto"`` -> ``"spconv"`` when spconv imports (the deployed runtime), else ``"torch"``;
    ``"torch"``/``"spconv"`` are returned as they are once known to be usable."""
    if name not in IMPLS:
        raise BevDeployError(f"unknown sparse implementation {name!r}; choose one of {', '.join(IMPLS)}")
    if name == "auto":
        return "spconv" if _spconv() is not None else "torch"
    if name == "spconv" and _spconv() is None:
        raise BevDeployError("sparse implementation 'spconv' asked for but spconv cannot be imported; "
                             "install spconv 2.3.x or use sparse_impl='torch'")  # fmt: skip
    return name


def sparse_impl(name: str = "auto") -> ModuleType:
    """The namespace whose ``SubMConv3d``/``SparseConv3d``/``SparseSequential``/... a model
    builds from: ``bevdeploy.sparse`` or ``spconv.pytorch``."""
    if resolve_impl(name) == "spconv":
        return _spconv()  # type: ignore[return-value]
    return importlib.import_module("bevdeploy.sparse")


def sparse_conv_types() -> tuple[type, ...]:
    """Every sparse conv base class available here (ours, and spconv's when it imports), for
    code that treats sparse convs generically (BN folding, fake quantization, exporters)."""
    from .conv import SparseConvolution

    sp = _spconv()
    if sp is None:
        return (SparseConvolution,)
    from spconv.pytorch.conv import SparseConvolution as SpconvConvolution

    return (SparseConvolution, SpconvConvolution)


def sparse_sequential_types() -> tuple[type, ...]:
    """Every SparseSequential class available here (ours, and spconv's when it imports)."""
    from .modules import SparseSequential

    sp = _spconv()
    return (SparseSequential,) if sp is None else (SparseSequential, sp.SparseSequential)
