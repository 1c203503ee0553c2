"""The deployable form of a model: a graph of subgraphs and ops wired by named tensors,
and the artifacts and engines the export and build stages make from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

PRECISIONS = ("fp32", "fp16", "int8", "int8-fp32")
"""``int8`` = INT8 where quantized, FP16 elsewhere; ``int8-fp32`` = INT8 with FP32 elsewhere."""


@dataclass
class Subgraph:
    """A piece that is exported and run by a backend.

    ``module`` is called positionally with the tensors named in ``inputs`` (in that order) and
    returns a tensor or a tuple of tensors named by ``outputs``. ``policy`` maps a run precision to
    the precision this piece really uses (e.g. ``{"int8": "fp16"}`` for a head kept in FP16);
    precisions not in it are used as they are. ``exporter`` is ``"onnx"`` for pieces that
    ``torch.onnx`` exports; any other value names a plugin's own exporter (claimed in its
    ``bevdeploy_export`` hook). ``dynamic_axes`` follows ``torch.onnx.export``.
    ``fidelity_outputs`` names the outputs compared element by element against FP32 (None: every
    floating-point output); leave out outputs ordered by a ranking such as top-K proposals.
    """

    name: str
    module: torch.nn.Module
    inputs: list[str]
    outputs: list[str]
    policy: dict[str, str] = field(default_factory=dict)
    exporter: str = "onnx"
    dynamic_axes: dict[str, dict[int, str]] | None = None
    fidelity_outputs: list[str] | None = None

    def precision_for(self, precision: str) -> str:
        return self.policy.get(precision, precision)


@dataclass
class OpNode:
    """A step run between subgraphs by a kernel or Python (e.g. voxelize, bevpool, decode).

    ``fn`` is called positionally with the values named in ``inputs`` and returns one value or a
    tuple of values named by ``outputs``. ``op`` names the registered custom op it uses, if any.
    """

    name: str
    fn: Callable[..., Any]
    inputs: list[str]
    outputs: list[str]
    op: str | None = None


Node = Subgraph | OpNode


def to_device(values: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Named values with their tensors on ``device`` (other values as they are): a sample's inputs for a
    backend's device, or a training batch for the training device."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in values.items()}


@dataclass
class DeployGraph:
    """Nodes in execution order. ``inputs`` are the model-input names (keys of the dict that
    ``ModelSpec.prepare`` returns); ``output`` names the value holding the final
    :class:`~bevdeploy.data.types.Detections`."""

    model: str
    variant: str
    nodes: list[Node]
    inputs: list[str]
    output: str = "detections"

    def __post_init__(self) -> None:
        known = set(self.inputs)
        names: set[str] = set()
        for node in self.nodes:
            if node.name in names:
                raise ValueError(f"duplicate node name {node.name!r} in the deploy graph")
            names.add(node.name)
            missing = [i for i in node.inputs if i not in known]
            if missing:
                raise ValueError(f"node {node.name!r} reads {missing} before anything produces them")
            known.update(node.outputs)
        if self.output not in known:
            raise ValueError(f"no node produces the graph output {self.output!r}")

    @property
    def subgraphs(self) -> list[Subgraph]:
        return [n for n in self.nodes if isinstance(n, Subgraph)]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


@dataclass
class Artifact:
    """What export produced for one subgraph: a file (ONNX or a plugin format), or, for the torch
    backend, the module itself. ``meta`` holds export facts (opset, Q/DQ flavour, node counts)."""

    name: str
    precision: str
    backend: str
    format: Literal["onnx", "torch"] | str
    input_names: list[str]
    output_names: list[str]
    path: Path | None = None
    module: torch.nn.Module | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        if self.path is not None and self.path.exists():
            return self.path.stat().st_size
        if self.module is not None:
            return sum(t.numel() * t.element_size() for t in self.module.state_dict().values())
        return 0


class Engine:
    """A runnable piece. Subclasses implement :meth:`infer_impl`; :meth:`infer` checks that the
    inputs it is given are the ones it expects."""

    def __init__(self, name: str, backend: str, precision: str, input_names: list[str], output_names: list[str]):
        self.name = name
        self.backend = backend
        self.precision = precision
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.notes: list[str] = []  # e.g. "fp16 upcast to fp32 by onnxruntime on CPU"
        self.execution = ""  # how the backend runs the piece where it chooses, e.g. "CUDA graph"
        self.size_bytes = 0

    def infer(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"engine {self.name!r} is missing inputs {missing}")
        return self.infer_impl({n: inputs[n] for n in self.input_names})

    def infer_impl(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError
