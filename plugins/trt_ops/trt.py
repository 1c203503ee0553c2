"""TensorRT 10 binding: each custom-op node becomes a Python plugin (``tensorrt.plugin``). Ops that declare a
:class:`PluginFormats` advertise their fp16 / int8 / channel-vectorized variants to TensorRT's autotuner and
launch the matching Triton kernel directly; the others call ``torch.ops.bevdeploy.<op>`` in LINEAR format.

How TensorRT finds them: its ONNX parser looks a plugin up by the node's op type, version "1" and the node's
``plugin_namespace`` attribute. Every name is registered in the ``bevdeploy`` namespace (Python plugins need
one). Nodes of our scheme already carry ``plugin_namespace="bevdeploy"``; graphs exported under the
bevformer_tensorrt / mmdeploy names run on ours after :func:`bind_namespace`.

TensorRT facts this module relies on (NVIDIA/TensorRT ``python/packaging/bindings_wheel/tensorrt/plugin/``
= the ``tensorrt.plugin`` sources, and the TensorRT 10 API docs):

* ``trtp.autotune(plugin_id)`` decorates ``(inputs: TensorDesc..., attrs..., outputs: tuple[TensorDesc]) ->
  list[AutoTuneCombination]``; it is called positionally with the inputs' descriptors (``_plugin_class.py``
  ``get_supported_format_combinations``), whose ``ndim`` is known. Without one, TensorRT assumes the network's
  input types and LINEAR for all I/O (``trt.plugin.autotune`` docs).
* ``AutoTuneCombination(io_types, layouts)``: comma-separated per I/O (inputs then outputs), each a type / format
  name or alternatives joined by ``|`` (dependent) or ``*`` (independent); type names "FP32", "FP16" or a
  ``trt.DataType`` member name ("INT8"); format names are ``trt.TensorFormat`` member names ("LINEAR", "CHW4",
  "CHW32", "CDHW32", ...) (``_autotune.py``, ``_utils._str_to_data_type``).
* At enqueue each ``trtp.Tensor`` carries ``dtype``, ``format``, ``scale`` (``PluginTensorDesc.scale``),
  ``shape`` (the LOGICAL dims), ``strides`` and ``data_ptr`` (``_plugin_class.py`` ``enqueue``). Its
  ``__cuda_array_interface__`` describes the logical shape only, so a vectorized buffer is wrapped here with
  its physical shape (:func:`physical_shape`).
* ``PluginTensorDesc.scale``: "only valid when data type is kINT8. TensorRT will set the value to -1.0F if it is
  invalid" (TensorRT 10 C++ API, ``structnvinfer1_1_1_plugin_tensor_desc``). TensorRT 10 deprecates implicit
  quantization (calibrators, 10.1) and its docs never say that explicit quantization fills this field; NVIDIA's
  advice for a plugin taking int8 from Q/DQ (forums.developer.nvidia.com/t/226705, NVIDIA/TensorRT#3055) is
  to absorb the input DQ: ``Q -> plugin``. So the int8 scale is also carried as a node attribute
  (``<data input>_scale``, 0 = none) written by :func:`fold_dequantize` from the DQ's constant scale (our
  calibration); at run time a valid TensorRT scale wins, else the attribute, else a one-line error.
* Formats' type bindings (TensorRT ``TensorFormat`` docs; 10.16 "Data Format Descriptions"): CHW2 and HWC8
  FP16/BF16; CHW4 INT8 (or FP16; "for INT8 the C dimension must be a build-time constant"); CHW32 FP32, FP16,
  INT8; CDHW32 (5-D) FP16, INT8. Our int8 kernels write fp16, so an int8 combination's output is FP16 in the
  input's format, which these bindings allow for CHW4 / CHW32 / CDHW32.
* Python plugin attributes cannot have defaults (``_validate.py``), and ``enqueue`` reads every impl attribute
  from the node's fields, so every node needs every declared attribute: our symbolics emit ``*_scale=0.0``
  and :func:`bind_namespace` adds it to foreign-scheme nodes.

Build flow for int8: export with the op's input quantized (``x -> Q -> DQ -> op``), then
``model, n = fold_dequantize(model)`` before TensorRT parses it (strongly typed, as the backend builds Q/DQ graphs):
the plugin then receives INT8 and TensorRT autotunes LINEAR / kCHW4 / kCHW32 for it. Without the fold the plugin
sees the DQ's float tensor and runs fp32 / fp16.

``tensorrt`` is optional: :func:`available` says why it cannot be used; :func:`register` raises
``BackendUnavailable`` with that reason. The format tables, the kernel choice, buffer shapes and the ONNX passes
are pure functions, tested without TensorRT.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bevdeploy import BackendUnavailable, BevDeployError

from .layouts import vector_width
from .naming import OUR_DOMAIN, split_qualified

_REGISTERED: set[str] = set()
_FORMATS: dict[str, PluginFormats] = {}  # qualified name -> what its plugin advertises (see declare)

# TensorRT TensorFormat name -> (our layout name, spatial dims after the vectorized channel dim)
TRT_FORMATS: dict[str, tuple[str, int]] = {
    "LINEAR": ("linear", 0), "CHW2": ("chw2", 2), "CHW4": ("chw4", 2), "CHW16": ("chw16", 2),
    "CHW32": ("chw32", 2), "CDHW32": ("chw32", 3), "HWC8": ("hwc8", 2), "DHWC8": ("hwc8", 3),
    "HWC": ("hwc", 2), "DHWC": ("hwc", 3),
}
# TensorRT DataType member name -> our precision, and the AutoTuneCombination spelling of that type
TRT_TYPES: dict[str, str] = {"FLOAT": "fp32", "HALF": "fp16", "INT8": "int8"}
TUNE_TYPES: dict[str, str] = {"FLOAT": "FP32", "HALF": "FP16", "INT8": "INT8"}
_TYPESTR = {"FLOAT": "<f4", "HALF": "<f2", "INT8": "|i1", "INT32": "<i4", "INT64": "<i8", "BOOL": "|b1"}
_OUT_TYPE = {"INT8": "HALF"}  # the int8 kernels write fp16 (triton_util.INT8_OUT_DTYPE)


@dataclass(frozen=True)
class PluginFormats:
    """What one plugin offers TensorRT's autotuner. ``inputs``: the plugin's inputs in node order; ``data``: the
    one whose type and format pick the kernel; ``by_rank``: per rank of ``data``, its (type, format) pairs
    (TensorRT member names, e.g. ("INT8", "CHW32")). The output takes the data input's format and the kernel's
    output type; every other input is LINEAR with ``side_types`` (an AutoTuneCombination type string)."""

    inputs: tuple[str, ...]
    data: str
    by_rank: Mapping[int, tuple[tuple[str, str], ...]]
    side_types: str = "FP32*FP16"
    half: str = "fp16"  # kernel precision for FP16 I/O ("fp16x2" for the half2-arithmetic names)
    scale_attr: str = field(default="")

    def __post_init__(self):
        if self.data not in self.inputs:
            raise ValueError(f"data input {self.data!r} is not one of {self.inputs}")
        if not self.scale_attr:
            object.__setattr__(self, "scale_attr", f"{self.data}_scale")


@dataclass(frozen=True)
class Launch:
    """The kernel variant TensorRT's chosen combination maps to: precision, layout, int8 scale of the data."""

    precision: str
    layout: str
    scale: float | None = None


def available() -> tuple[bool, str]:
    """(True, '') when ``tensorrt.plugin`` imports, else (False, reason)."""
    try:
        import tensorrt  # noqa: F401
        import tensorrt.plugin  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the stub wheels fail in several ways; all mean "unavailable"
        return False, f"TensorRT Python plugin API unavailable ({type(exc).__name__}: {exc})"
    return True, ""


def declare(qualified: str, formats: PluginFormats) -> None:
    """Record what ``qualified``'s plugin advertises (symbolics call this at import, without TensorRT), so that
    :func:`bind_namespace` and :func:`fold_dequantize` know its data input and scale attribute."""
    _FORMATS[qualified] = formats


def declared(qualified: str) -> PluginFormats | None:
    """The formats declared for ``qualified``, if any."""
    return _FORMATS.get(qualified)


# ---------------------------------------------------------------------------------------------------------------
# pure tables: combinations, kernel choice, scales, buffer shapes
# ---------------------------------------------------------------------------------------------------------------


def enum_name(value: Any) -> str:
    """Member name of a TensorRT enum value (``trt.DataType.INT8`` -> "INT8"), or the string itself."""
    if isinstance(value, str):
        return value
    return getattr(value, "name", None) or str(value).rpartition(".")[2]


def output_type(type_name: str) -> str:
    """TensorRT type of the output for a data input of ``type_name`` (INT8 in -> HALF out)."""
    return _OUT_TYPE.get(type_name, type_name)


def autotune_rows(formats: PluginFormats, rank: int) -> list[tuple[str, str]]:
    """(io_types, layouts) strings of every AutoTuneCombination for a data input of ``rank`` dims, I/O order =
    ``formats.inputs`` then the output; empty (TensorRT's LINEAR default) for a rank with no entry."""
    rows = []
    for type_name, fmt in formats.by_rank.get(rank, ()):
        types = [TUNE_TYPES[type_name] if n == formats.data else formats.side_types for n in formats.inputs]
        layouts = [fmt if n == formats.data else "LINEAR" for n in formats.inputs]
        rows.append((", ".join([*types, TUNE_TYPES[output_type(type_name)]]), ", ".join([*layouts, fmt])))
    return rows


def kernel_launch(op: str, formats: PluginFormats, type_name: str, format_name: str, rank: int) -> tuple[str, str]:
    """(precision, layout) of the kernel for the data input's TensorRT type and format; a one-line
    BevDeployError for a combination the plugin does not advertise."""
    offered = formats.by_rank.get(rank, ())
    if (type_name, format_name) not in offered:
        have = ", ".join(f"{t}/{f}" for t, f in offered) or "none"
        raise BevDeployError(f"TensorRT plugin {op}: {type_name}/{format_name} on a {rank}-d {formats.data!r} is not "
                             f"supported (offered: {have}); rebuild the engine so that TensorRT picks an offered one.")
    precision = TRT_TYPES[type_name]
    return (formats.half if precision == "fp16" else precision), TRT_FORMATS[format_name][0]


def int8_scale(op: str, name: str, trt_scale: float | None, attr_scale: float | None) -> float:
    """Per-tensor scale of an int8 input: TensorRT's when valid (> 0; it writes -1 otherwise), else the node's
    ``<name>_scale`` attribute, else a one-line error naming the fix."""
    for s in (trt_scale, attr_scale):
        if s is not None and float(s) > 0:
            return float(s)
    raise BevDeployError(f"TensorRT plugin {op}: int8 {name!r} has no scale (TensorRT gave {trt_scale}, attribute "
                         f"{name}_scale={attr_scale}); run trt.fold_dequantize on the Q/DQ graph before building.")


def physical_shape(shape: Sequence[int], format_name: str) -> tuple[int, ...]:
    """Buffer shape of a logical tensor in a TensorRT format: (*lead, ceil(C / V), *spatial, V), C the dim before
    the format's 2 (3 for CDHW32 / DHWC8 / DHWC) spatial dims; LINEAR is the logical shape."""
    layout, spatial = TRT_FORMATS[format_name]
    shape = tuple(int(s) for s in shape)
    if layout == "linear":
        return shape
    if len(shape) < spatial + 1:
        raise BevDeployError(f"TensorRT format {format_name} needs at least {spatial + 1} dims, got shape {shape}.")
    cdim = len(shape) - spatial - 1
    channels = shape[cdim]
    vec = vector_width(layout, channels)
    return (*shape[:cdim], -(-channels // vec), *shape[cdim + 1:], vec)


def cuda_array_interface(data_ptr: int, shape: Sequence[int], type_name: str, stream: int | None) -> dict:
    """``__cuda_array_interface__`` (v3) of a dense C-contiguous buffer (strides None means contiguous)."""
    if type_name not in _TYPESTR:
        raise BevDeployError(f"TensorRT type {type_name} cannot be handed to the kernels; use one of {', '.join(_TYPESTR)}.")
    return {"shape": tuple(int(s) for s in shape), "typestr": _TYPESTR[type_name], "data": (int(data_ptr), False),
            "strides": None, "version": 3, "stream": stream}


class _Buffer:
    """Wraps a CUDA array interface so that ``torch.as_tensor`` can view a plugin buffer without copying."""

    def __init__(self, interface: dict):
        self.__cuda_array_interface__ = interface


# ---------------------------------------------------------------------------------------------------------------
# ONNX passes (no TensorRT needed)
# ---------------------------------------------------------------------------------------------------------------


def _our_names() -> dict[tuple[str, str], str]:
    from . import op_specs

    return {split_qualified(q): q for spec in op_specs() for q in spec.onnx_names.values()}


def bind_namespace(model):
    """Copy of ``model`` (onnx.ModelProto) whose nodes named like one of this library's ops (any scheme) carry
    ``plugin_namespace="bevdeploy"`` and every attribute our plugin declares without a value in the node
    (``*_scale=0.0``), so that TensorRT's parser binds them to our plugins."""
    import onnx

    ours = _our_names()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        qualified = ours.get((node.domain, node.op_type))
        if qualified is None:
            continue
        have = {a.name for a in node.attribute}
        if "plugin_namespace" not in have:
            node.attribute.append(onnx.helper.make_attribute("plugin_namespace", OUR_DOMAIN))
        formats = _FORMATS.get(qualified)
        if formats is not None and formats.scale_attr not in have:
            node.attribute.append(onnx.helper.make_attribute(formats.scale_attr, 0.0))
    return out


def _scalar_constants(graph) -> dict[str, Any]:
    from bevdeploy.export.checks import graph_constants

    return {k: v for k, v in graph_constants(graph).items() if v.size == 1}


def _int8_dq_scale(dq, consts: dict) -> float | None:
    """Scale of a per-tensor int8 DequantizeLinear with zero point 0 (None for anything else)."""
    if dq.op_type != "DequantizeLinear" or len(dq.input) < 2 or dq.input[1] not in consts:
        return None
    zp = consts.get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None  # absent: uint8 in ONNX
    if zp is None or str(zp.dtype) != "int8" or int(zp.reshape(-1)[0]) != 0:
        return None
    scale = float(consts[dq.input[1]].reshape(-1)[0])
    return scale if scale > 0 else None


def fold_dequantize(model) -> tuple[Any, int]:
    """Let int8-capable plugins read the int8 tensor of a ``Q -> DQ -> plugin`` chain: the plugin's data input is
    rewired to the DQ's int8 input, the DQ's constant scale written to its ``*_scale`` attribute, and a Cast
    restores the old output type after the plugin (our int8 kernels write fp16). Returns (new model, nodes
    folded). A DQ left without consumers is dropped. Nodes without declared int8 formats are left alone."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(bind_namespace(model))
    graph, ours = out.graph, _our_names()
    consts = _scalar_constants(graph)
    producers = {o: n for n in graph.node for o in n.output}
    nodes, folded = [], 0
    for node in graph.node:
        nodes.append(node)
        formats = _FORMATS.get(ours.get((node.domain, node.op_type), ""))
        if formats is None or not any(t == "INT8" for combos in formats.by_rank.values() for t, _ in combos):
            continue
        index = _data_index(node, formats)
        dq = producers.get(node.input[index]) if index is not None else None
        scale = _int8_dq_scale(dq, consts) if dq is not None else None
        if scale is None:
            continue
        float_type = onnx.helper.np_dtype_to_tensor_dtype(consts[dq.input[1]].dtype)
        node.input[index] = dq.input[0]
        for a in node.attribute:
            if a.name == formats.scale_attr:
                a.f = scale
        if float_type != onnx.TensorProto.FLOAT16:  # the kernel's fp16 output, cast back to what the DQ gave
            name = node.output[0]
            node.output[0] = f"{name}__{formats.data}_int8_fp16"
            nodes.append(onnx.helper.make_node("Cast", [node.output[0]], [name], to=float_type,
                                               name=f"{node.name or name}__cast"))
        folded += 1
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    kept = [n for n in nodes if n.op_type != "DequantizeLinear" or any(o in used for o in n.output)]
    del graph.node[:]
    graph.node.extend(kept)
    return out, folded


def _data_index(node, formats: PluginFormats) -> int | None:
    """Position of the data input in ``node`` (the plugin's input order is the registered tensor order)."""
    index = formats.inputs.index(formats.data)
    return index if index < len(node.input) else None


# ---------------------------------------------------------------------------------------------------------------
# registration (needs tensorrt)
# ---------------------------------------------------------------------------------------------------------------


def _plugin_id(qualified: str) -> str:
    return f"{OUR_DOMAIN}::{split_qualified(qualified)[1]}"


def _signature(tensors: Sequence[str], attrs: dict[str, type], tensor_type, extra: list[inspect.Parameter]):
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind, annotation=tensor_type) for n in tensors]
    params += [inspect.Parameter(n, kind, annotation=t) for n, t in attrs.items()]
    return params + extra


def _built(fn: Callable, params: list[inspect.Parameter], returns: Any) -> Callable:
    """Give ``fn`` (``*args, **kwargs``) the signature and type hints tensorrt.plugin validates."""
    fn.__signature__ = inspect.Signature(params, return_annotation=returns)
    fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    return fn


def _as_torch(t, stream: int):
    """A torch view of a plugin tensor: TensorRT's own array interface for LINEAR, the physical shape otherwise."""
    import torch

    fmt = enum_name(t.format)
    if fmt == "LINEAR":
        return torch.as_tensor(t, device="cuda")
    shape = physical_shape(tuple(t.shape), fmt)
    return torch.as_tensor(_Buffer(cuda_array_interface(t.data_ptr, shape, enum_name(t.dtype), stream)), device="cuda")


def register(
    qualified: str,
    tensors: Sequence[str],
    attrs: dict[str, type],
    out_shape: Callable[..., tuple[Any, Any]],
    run: Callable[..., Any],
    formats: PluginFormats | None = None,
) -> None:
    """Register one exported name as a TensorRT Python plugin.

    ``tensors``: input names in node order; ``attrs``: attribute name -> int | float | str, or a
    ``numpy.typing.NDArray[...]`` for list attributes (``tensorrt.plugin`` takes no lists);
    ``out_shape(descs: dict, attrs: dict) -> (shape expressions tuple, dtype)``. Without ``formats``:
    ``run(tensors: dict[str, torch.Tensor], attrs: dict) -> torch.Tensor`` in LINEAR format. With ``formats``
    (declared for ``qualified``, its ``scale_attr`` among ``attrs``): TensorRT autotunes over them and
    ``run(tensors, attrs, launch: Launch)`` gets the data input as its physical buffer in the chosen format and
    returns the output in that format. CUDA tensors, on the current stream.
    """
    if qualified in _REGISTERED:
        return
    ok, reason = available()
    if not ok:
        raise BackendUnavailable(f"cannot register TensorRT plugin {qualified}: {reason}")
    import tensorrt as trt
    import tensorrt.plugin as trtp

    plugin_id, names = _plugin_id(qualified), list(tensors)
    if formats is not None:
        if list(formats.inputs) != names or formats.scale_attr not in attrs:
            raise ValueError(f"{qualified}: formats must list the inputs {names} and its scale_attr among the attrs")
        declare(qualified, formats)

    def desc(*args, **kwargs):
        values = dict(desc.__signature__.bind_partial(*args, **kwargs).arguments)
        missing = [a for a in attrs if a not in values]
        if missing:  # Python plugin attributes have no defaults; enqueue would fail on them later
            raise BevDeployError(f"{qualified} node lacks attribute(s) {', '.join(missing)}; re-export it or pass the "
                                 f"graph through trt.bind_namespace / trt.fold_dequantize before building.")
        shape, dtype = out_shape({n: values[n] for n in names}, {a: values[a] for a in attrs})
        if formats is not None:
            dtype = getattr(trt.DataType, output_type(enum_name(dtype)))
        return trtp.from_shape_expr(shape, dtype=dtype)

    _built(desc, _signature(names, attrs, trtp.TensorDesc, []), trtp.TensorDesc)
    trtp.register(plugin_id)(desc)
    outputs = inspect.Parameter("outputs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=tuple[trtp.Tensor])
    stream = inspect.Parameter("stream", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int)
    impl = _linear_impl(names, attrs, run) if formats is None else _format_impl(qualified, names, attrs, run, formats)
    trtp.impl(plugin_id)(_built(impl, _signature(names, attrs, trtp.Tensor, [outputs, stream]), None))
    if formats is not None:
        tune_out = inspect.Parameter("outputs", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     annotation=tuple[trtp.TensorDesc])
        tune = _autotune(formats, trtp)
        trtp.autotune(plugin_id)(_built(tune, _signature(names, attrs, trtp.TensorDesc, [tune_out]),
                                        list[trtp.AutoTuneCombination]))
    _REGISTERED.add(qualified)


def _autotune(formats: PluginFormats, trtp) -> Callable:
    def tune(*args, **kwargs):
        values = dict(tune.__signature__.bind(*args, **kwargs).arguments)
        rank = values[formats.data].ndim
        return [trtp.AutoTuneCombination(io, layouts) for io, layouts in autotune_rows(formats, rank)]

    return tune


def _linear_impl(names: list[str], attrs: dict[str, type], run: Callable) -> Callable:
    def impl(*args, **kwargs):
        import torch

        values = dict(impl.__signature__.bind(*args, **kwargs).arguments)
        with torch.cuda.stream(torch.cuda.ExternalStream(values["stream"])):
            inputs = {n: torch.as_tensor(values[n], device="cuda") for n in names}
            result = run(inputs, {a: values[a] for a in attrs})
            out = torch.as_tensor(values["outputs"][0], device="cuda")
            out.copy_(result.reshape(out.shape).to(out.dtype))

    return impl


def _format_impl(op: str, names: list[str], attrs: dict[str, type], run: Callable, formats: PluginFormats) -> Callable:
    def impl(*args, **kwargs):
        import torch

        values = dict(impl.__signature__.bind(*args, **kwargs).arguments)
        data, out_t, stream = values[formats.data], values["outputs"][0], values["stream"]
        type_name = enum_name(data.dtype)
        precision, layout = kernel_launch(op, formats, type_name, enum_name(data.format), len(tuple(data.shape)))
        scale = int8_scale(op, formats.data, data.scale, values.get(formats.scale_attr)) if precision == "int8" else None
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            inputs = {n: _as_torch(values[n], stream) for n in names}
            result = run(inputs, {a: values[a] for a in attrs}, Launch(precision, layout, scale))
            out = _as_torch(out_t, stream)
            out.copy_(result.reshape(out.shape).to(out.dtype))

    return impl
