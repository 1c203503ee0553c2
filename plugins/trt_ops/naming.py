"""ONNX naming schemes for the custom-op nodes, and the helper every symbolic uses to emit one.

Three schemes exist so that our graphs load with other projects' plugin libraries:

- ``bevdeploy`` (default): domain ``bevdeploy``, our own op types and attributes.
- ``bevformer_tensorrt``: DerryHub/BEVFormer_tensorrt's plugin names in the default ONNX domain
  (``MultiScaleDeformableAttnTRT``, ``BEVPoolV2TRT``, ...); with ``half2=True`` the ``...TRT2``
  variants (packed half2 arithmetic) where that project has one.
- ``mmdeploy``: open-mmlab/mmdeploy's TensorRT op names (domain ``mmdeploy``).

An op that has no counterpart in a scheme refuses to export under it (``BevDeployError``)
rather than inventing a name the other project's library would not find.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bevdeploy import BevDeployError

SCHEMES: tuple[str, ...] = ("bevdeploy", "bevformer_tensorrt", "mmdeploy")
DEFAULT_SCHEME = "bevdeploy"
OUR_DOMAIN = "bevdeploy"
# the ONNX domain each scheme's nodes live in ('' = the default domain, which needs no custom opset)
SCHEME_DOMAINS: dict[str, str] = {"bevdeploy": OUR_DOMAIN, "bevformer_tensorrt": "", "mmdeploy": "mmdeploy"}


@dataclass(frozen=True)
class Naming:
    """The active naming: scheme and whether half2 (``...TRT2``) names are wanted."""

    scheme: str = DEFAULT_SCHEME
    half2: bool = False


_DEFAULT_NAMING = Naming()
_CURRENT: contextvars.ContextVar[Naming] = contextvars.ContextVar("bevdeploy_onnx_naming", default=_DEFAULT_NAMING)


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` if known, else raise a one-line user error listing the known ones."""
    if scheme not in SCHEMES:
        raise BevDeployError(f"unknown ONNX naming scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    return scheme


def custom_opsets(scheme: str) -> dict[str, int]:
    """``torch.onnx.export``'s ``custom_opsets`` for a graph exported under ``scheme``: only the domain its
    nodes use (naming an unused domain makes the exporter warn on every export)."""
    domain = SCHEME_DOMAINS[check_scheme(scheme)]
    return {domain: 1} if domain else {}


@contextlib.contextmanager
def onnx_naming(scheme: str, half2: bool = False) -> Iterator[Naming]:
    """Export custom-op nodes under ``scheme`` inside the ``with`` block (restored afterwards)."""
    naming = Naming(check_scheme(scheme), bool(half2))
    token = _CURRENT.set(naming)
    try:
        yield naming
    finally:
        _CURRENT.reset(token)


def current_naming() -> Naming:
    """The naming in force for the export running now."""
    return _CURRENT.get()


@dataclass(frozen=True)
class OpNames:
    """The exported names of one op, per scheme, as ``'domain::Type'`` (empty domain = ONNX default).

    ``half2`` is the bevformer_tensorrt ``...TRT2`` type, when that project has one.
    """

    op: str
    names: dict[str, str]
    half2: str | None = None

    def qualified(self, naming: Naming | None = None) -> str:
        """``'domain::Type'`` for ``naming`` (default: the active one); raises if the scheme lacks the op."""
        naming = naming or current_naming()
        if naming.scheme not in self.names:
            have = ", ".join(self.names)
            raise BevDeployError(
                f"op {self.op} has no {naming.scheme} counterpart; export it under one of: {have}"
            )
        if naming.half2 and naming.scheme == "bevformer_tensorrt" and self.half2:
            return self.half2
        return self.names[naming.scheme]

    def all_qualified(self) -> list[str]:
        """Every name this op can be exported under (used to define ONNX Runtime bindings)."""
        out = list(self.names.values()) + ([self.half2] if self.half2 else [])
        return list(dict.fromkeys(out))

    def scheme_names(self) -> dict[str, str]:
        """Scheme -> name, with ``bevformer_tensorrt_half2`` added when there is one (for OpSpec)."""
        out = dict(self.names)
        if self.half2:
            out["bevformer_tensorrt_half2"] = self.half2
        return out


def split_qualified(name: str) -> tuple[str, str]:
    """``'domain::Type'`` -> (domain, Type); a bare type is in the default domain ''."""
    domain, _, op_type = name.rpartition("::")
    return domain, op_type


def tensor_sizes(value, rank: int | None = None) -> list[int | None]:
    """``value``'s sizes as the exporter knows them, None for a dynamic dim. When its rank is unknown or
    not ``rank``: ``rank`` Nones (``[None]`` without a ``rank``), so callers can unpack and :func:`typed`
    leaves the type unset."""
    from torch.onnx import symbolic_helper

    sizes = symbolic_helper._get_tensor_sizes(value)
    if sizes is not None and rank in (None, len(sizes)):
        return list(sizes)
    return [None] * (rank or 1)


def typed(value, like, sizes: Sequence[int | None]):
    """Give the custom node's output ``value`` the dtype of ``like`` (an input Value) and ``sizes``.

    The exporter cannot infer a custom node's output, so without this it warns on every export and the
    graph carries only symbolic dims. Set only when every size is a known int and ``like``'s dtype is
    known; otherwise the type stays unset (a wrong static shape would be worse than none). Nodes in the
    default domain (the bevformer_tensorrt scheme) lose the type again: the exporter runs ONNX shape
    inference on them, finds no schema and drops what was set (TensorRT's parser takes the plugin's own
    shapes, so those graphs lose nothing it uses).
    """
    import torch

    like_type = like.type()
    if not all(isinstance(s, int) for s in sizes):
        return value
    if not isinstance(like_type, torch._C.TensorType) or like_type.scalarType() is None:
        return value
    value.setType(like_type.with_sizes([int(s) for s in sizes]))
    return value


def emit(g, names: OpNames, *inputs, out_like, out_sizes: Sequence[int | None], **attrs):
    """Add the op's node to the TorchScript-ONNX graph ``g`` under the active naming.

    ``attrs`` use torch's suffix convention (``out_height_i=128``, ``mode_s="bilinear"``). Nodes in
    our domain also carry ``plugin_namespace="bevdeploy"`` (TensorRT's parser looks plugins up by
    op type + that attribute; ONNX Runtime ignores undeclared attributes). ``out_like`` (the input
    whose dtype the node writes) and ``out_sizes`` (the node's own output shape under the active
    scheme) type the output, see :func:`typed`.
    """
    domain, op_type = split_qualified(names.qualified())
    if domain == OUR_DOMAIN:  # TensorRT's ONNX parser finds namespaced plugins through this attribute
        attrs = {"plugin_namespace_s": OUR_DOMAIN, **attrs}
    return typed(g.op(f"{domain}::{op_type}" if domain else op_type, *inputs, **attrs), out_like, out_sizes)

