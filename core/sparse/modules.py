"""Containers of sparse modules (spconv.pytorch's ``SparseModule`` / ``SparseSequential``)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .tensor import SparseConvTensor


class SparseModule(nn.Module):
    """A module whose forward takes and returns a :class:`SparseConvTensor`; a
    :class:`SparseSequential` hands it the whole tensor rather than its features."""

    def __init__(self, name: str | None = None):
        super().__init__()
        self.name = name
        self._sparse_unique_name = ""


class SparseSequential(SparseModule):
    """Runs its children in order: sparse modules get the sparse tensor, any other module (BN,
    ReLU, ...) is applied to its features. As in spconv, feature modules are skipped when there
    are no sites (a BatchNorm1d in training mode cannot normalise zero rows)."""

    def __init__(self, *args: nn.Module, **kwargs: nn.Module):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)
        for key, module in kwargs.items():
            if key in self._modules:
                raise ValueError(f"SparseSequential: child name {key!r} given twice")
            self.add_module(key, module)

    def __getitem__(self, idx: int) -> nn.Module:
        mods = list(self._modules.values())
        if not -len(mods) <= idx < len(mods):
            raise IndexError(f"index {idx} is out of range")
        return mods[idx]

    def __len__(self) -> int:
        return len(self._modules)

    def add(self, module: nn.Module, name: str | None = None) -> None:
        name = str(len(self._modules)) if name is None else name
        if name in self._modules:
            raise KeyError(f"SparseSequential: child name {name!r} exists")
        self.add_module(name, module)

    def forward(self, input):  # noqa: A002 - spconv's argument name
        for module in self._modules.values():
            if isinstance(module, SparseModule) or not isinstance(input, SparseConvTensor):
                input = module(input)
            elif input.indices.shape[0] != 0:
                input = input.replace_feature(module(input.features))
        return input
