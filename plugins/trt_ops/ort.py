"""ONNX Runtime binding of the custom ops through onnxruntime-extensions (Python custom ops).

Each op's ``define_ort()`` calls :func:`define` once per exported name, running the op's PyTorch
reference on the node's numpy inputs. onnxruntime-extensions snapshots the Python op table when
its library is registered on a ``SessionOptions``, so every op must be defined *before* that:
:func:`session_options` does both in the right order.

Limits, documented once: attributes can only be int, float or string scalars (so the schemes
we export keep list-valued attributes out of nodes meant for ONNX Runtime, see each op's
``symbolic.py``); tensors arrive as float32/int32/int64 as declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from bevdeploy import BackendUnavailable

from .naming import split_qualified

_DEFINED: set[str] = set()
_LIST_ATTRS: dict[tuple[str, str], set[str]] = {}  # (domain, op type) -> attributes passed as "1,2" strings


def _extensions():
    try:
        import onnxruntime_extensions as ext
    except ImportError as exc:  # pragma: no cover - installed with the package
        raise BackendUnavailable(
            f"onnxruntime-extensions cannot be imported ({exc}); install it to run custom ops on ONNX Runtime"
        ) from exc
    return ext


def _dtype(name: str):
    dt = _extensions().PyCustomOpDef
    return {"float": dt.dt_float, "int32": dt.dt_int32, "int64": dt.dt_int64, "double": dt.dt_double}[name]


def _attr_type(name: str):
    dt = _extensions().PyCustomOpDef
    return {"int": dt.dt_int64, "float": dt.dt_float, "string": dt.dt_string}[name]


def define(
    qualified: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    attrs: dict[str, str],
    compute: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
) -> None:
    """Define ``qualified`` (``'domain::Type'``; bare = default domain) as a Python custom op.

    ``inputs``/``outputs`` are dtype names ('float', 'int32', 'int64'); ``attrs`` maps attribute
    name -> 'int' | 'float' | 'string' | 'ints' (a list, see :func:`adapt_model`);
    ``compute(*tensors, **attrs)`` gets CPU torch tensors and returns tensor(s). Defining a name
    twice is a no-op, so every ``ort_define`` is idempotent.
    """
    if qualified in _DEFINED:
        return
    domain, op_type = split_qualified(qualified)
    lists = {k for k, v in attrs.items() if v == "ints"}
    if lists:
        _LIST_ATTRS[(domain, op_type)] = lists

    def kernel(*arrays, **attributes):
        for k in lists:
            attributes[k] = [int(v) for v in str(attributes[k]).split(",")]
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        with torch.no_grad():
            result = compute(*tensors, **attributes)
        if isinstance(result, tuple):
            return tuple(r.detach().contiguous().numpy() for r in result)
        return result.detach().contiguous().numpy()

    _extensions().onnx_op(
        op_type=f"{domain}::{op_type}",
        inputs=[_dtype(t) for t in inputs],
        outputs=[_dtype(t) for t in outputs],
        attrs={k: _attr_type("string" if v == "ints" else v) for k, v in attrs.items()},
    )(kernel)
    _DEFINED.add(qualified)


def adapt_model(model):
    """Copy of ``model`` (onnx.ModelProto) runnable by onnxruntime-extensions.

    Its Python ops take only scalar attributes, so list attributes of the schemes that use
    them (BEVFormer_tensorrt / mmdeploy deformable conv: ``stride``, ``padding``, ``dilation``)
    are rewritten as "a,b" strings. Graphs in our own scheme need no adaptation.
    """
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        names = _LIST_ATTRS.get((node.domain, node.op_type), set())
        for attr in node.attribute:
            if attr.name in names and attr.type == onnx.AttributeProto.INTS:
                text = ",".join(str(v) for v in attr.ints)
                attr.ClearField("ints")
                attr.type = onnx.AttributeProto.STRING
                attr.s = text.encode()
    return out


def defined_names() -> frozenset[str]:
    """Names defined so far in this process."""
    return frozenset(_DEFINED)


def session_options(defines: Iterable[Callable[[], None]] | None = None):
    """``onnxruntime.SessionOptions`` with every custom op defined, then the library registered.

    ``defines`` defaults to the ``ort_define`` of every registered op spec.
    """
    import onnxruntime as ort

    if defines is None:
        from bevdeploy.plugins import registered_ops

        defines = [spec.ort_define for spec in registered_ops().values() if spec.ort_define]
    for fn in defines:
        fn()
    options = ort.SessionOptions()
    options.register_custom_ops_library(_extensions().get_library_path())
    return options
