"""TensorRT 10 binding: each custom-op node becomes a Python plugin (``tensorrt.plugin``) whose
implementation calls the same ``torch.ops.bevdeploy`` op, i.e. H6's Triton kernel on CUDA.

How TensorRT finds them: its ONNX parser looks a plugin up by the node's op type, version "1"
and the node's ``plugin_namespace`` attribute. Every name is registered in the ``bevdeploy``
namespace (Python plugins need one). Nodes of our scheme already carry
``plugin_namespace="bevdeploy"``; graphs exported under the bevformer_tensorrt / mmdeploy names
(meant for those projects' C++ libraries) run on ours after :func:`bind_namespace`.

``tensorrt`` is optional: :func:`available` says why it cannot be used; :func:`register` raises
``BackendUnavailable`` with that reason. Nothing here runs without a TensorRT runtime (none can be
installed on our machines, see ENVIRONMENT.md); tests skip with the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from bevdeploy import BackendUnavailable

from .naming import OUR_DOMAIN, split_qualified

_REGISTERED: set[str] = set()


def available() -> tuple[bool, str]:
    """(True, '') when ``tensorrt.plugin`` imports, else (False, reason)."""
    try:
        import tensorrt  # noqa: F401
        import tensorrt.plugin  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the stub wheels fail in several ways; all mean "unavailable"
        return False, f"TensorRT Python plugin API unavailable ({type(exc).__name__}: {exc})"
    return True, ""


def _plugin_id(qualified: str) -> str:
    return f"{OUR_DOMAIN}::{split_qualified(qualified)[1]}"


def bind_namespace(model):
    """Copy of ``model`` (onnx.ModelProto) whose nodes named like one of this library's ops (any
    scheme) carry ``plugin_namespace="bevdeploy"``, so TensorRT's parser binds them to our plugins."""
    import onnx

    from . import op_specs

    ours = {split_qualified(q) for spec in op_specs() for q in spec.onnx_names.values()}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        if (node.domain, node.op_type) in ours and not any(a.name == "plugin_namespace" for a in node.attribute):
            node.attribute.append(onnx.helper.make_attribute("plugin_namespace", OUR_DOMAIN))
    return out


def _signature(tensors: Sequence[str], attrs: dict[str, type], tensor_type, extra: list[inspect.Parameter]):
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind, annotation=tensor_type) for n in tensors]
    params += [inspect.Parameter(n, kind, annotation=t) for n, t in attrs.items()]
    return params + extra


def _annotations(signature: inspect.Signature) -> dict[str, Any]:
    # tensorrt.plugin reads the type hints; built functions get them from their signature
    out = {name: p.annotation for name, p in signature.parameters.items()}
    out["return"] = signature.return_annotation
    return out


def register(
    qualified: str,
    tensors: Sequence[str],
    attrs: dict[str, type],
    out_shape: Callable[..., tuple[Any, Any]],
    run: Callable[..., Any],
) -> None:
    """Register one exported name as a TensorRT Python plugin.

    ``tensors``: input names in node order; ``attrs``: attribute name -> int | float | str, or a
    ``numpy.typing.NDArray[...]`` for list attributes (``tensorrt.plugin`` takes no lists);
    ``out_shape(descs: dict, attrs: dict) -> (shape expressions tuple, dtype)``;
    ``run(tensors: dict[str, torch.Tensor], attrs: dict) -> torch.Tensor`` (CUDA, on the current stream).
    """
    if qualified in _REGISTERED:
        return
    ok, reason = available()
    if not ok:
        raise BackendUnavailable(f"cannot register TensorRT plugin {qualified}: {reason}")
    import tensorrt.plugin as trtp
    import torch

    plugin_id = _plugin_id(qualified)
    names = list(tensors)

    def desc(*args, **kwargs):
        bound = desc.__signature__.bind(*args, **kwargs)
        values = dict(bound.arguments)
        shape, dtype = out_shape({n: values[n] for n in names}, {a: values[a] for a in attrs})
        return trtp.from_shape_expr(shape, dtype=dtype)

    desc.__signature__ = inspect.Signature(
        _signature(names, attrs, trtp.TensorDesc, []), return_annotation=trtp.TensorDesc
    )
    desc.__annotations__ = _annotations(desc.__signature__)

    def impl(*args, **kwargs):
        values = dict(impl.__signature__.bind(*args, **kwargs).arguments)
        stream = torch.cuda.ExternalStream(values["stream"])
        with torch.cuda.stream(stream):
            inputs = {n: torch.as_tensor(values[n], device="cuda") for n in names}
            result = run(inputs, {a: values[a] for a in attrs})
            out = torch.as_tensor(values["outputs"][0], device="cuda")
            out.copy_(result.reshape(out.shape).to(out.dtype))

    extra = [
        inspect.Parameter("outputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=tuple[trtp.Tensor]),
        inspect.Parameter("stream", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int),
    ]
    impl.__signature__ = inspect.Signature(_signature(names, attrs, trtp.Tensor, extra), return_annotation=None)
    impl.__annotations__ = _annotations(impl.__signature__)
    trtp.register(plugin_id)(desc)
    trtp.impl(plugin_id)(impl)
    _REGISTERED.add(qualified)
