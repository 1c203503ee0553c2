"""The core's generic stage implementations. Registered first, so they run last: a model plugin
that returns a result for its own model or piece wins, and these handle everything else."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from . import hookimpl
from .graph import Artifact, DeployGraph, Engine, OpNode, Subgraph
from .specs.registry import BackendSpec


def execute_graph(
    graph: DeployGraph,
    run_subgraph: Callable[[Subgraph, dict[str, Any]], Mapping[str, Any]],
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """Run ``graph`` node by node and return every named value.

    ``run_subgraph(subgraph, inputs_by_name)`` returns the subgraph's outputs by name (an engine, or
    the module itself when recording in torch); ops are called positionally.
    """
    values: dict[str, Any] = dict(inputs)
    for node in graph.nodes:
        args = {name: values[name] for name in node.inputs}
        if isinstance(node, Subgraph):
            result = run_subgraph(node, args)
            missing = [o for o in node.outputs if o not in result]
            if missing:
                raise RuntimeError(f"subgraph {node.name!r} did not produce {missing}")
            values.update({o: result[o] for o in node.outputs})
        else:
            values.update(_op_outputs(node, node.fn(*args.values())))
    return values


def _op_outputs(node: OpNode, result: Any) -> dict[str, Any]:
    if len(node.outputs) == 1:
        return {node.outputs[0]: result}
    if not isinstance(result, (tuple, list)) or len(result) != len(node.outputs):
        raise RuntimeError(f"op {node.name!r} must return {len(node.outputs)} values {node.outputs}")
    return dict(zip(node.outputs, result, strict=True))


def module_outputs(subgraph: Subgraph, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Call a subgraph's module in torch (no autograd) and name its outputs."""
    with torch.inference_mode():
        result = subgraph.module(*[inputs[n] for n in subgraph.inputs])
    if isinstance(result, torch.Tensor):
        result = (result,)
    if len(result) != len(subgraph.outputs):
        raise RuntimeError(f"subgraph {subgraph.name!r} returned {len(result)} values for {subgraph.outputs}")
    return dict(zip(subgraph.outputs, result, strict=True))


@hookimpl
def bevdeploy_quantize(model: torch.nn.Module, calib_data: Iterable[dict[str, Any]], qconfig: Any) -> Any:
    """Generic PTQ: BN folding, quantizers on every Conv/Linear, histogram calibration."""
    from .quant import generic_quantize

    return generic_quantize(model, calib_data, qconfig)


@hookimpl
def bevdeploy_export(
    subgraph: Subgraph, precision: str, backend: BackendSpec, out_dir: Path, example_inputs: dict[str, Any],
    calib_inputs: list[dict[str, Any]],
) -> Artifact | None:
    """Dense pieces through torch.onnx (lowered to the backend's Q/DQ flavour); the torch backend
    takes the module itself. Pieces with a plugin exporter are left to that plugin."""
    if backend.qdq_flavour == "torch":
        return Artifact(
            name=subgraph.name,
            precision=precision,
            backend=backend.name,
            format="torch",
            input_names=list(subgraph.inputs),
            output_names=list(subgraph.outputs),
            module=subgraph.module,
        )
    if subgraph.exporter != "onnx":
        return None
    from .export import export_subgraph

    return export_subgraph(subgraph, example_inputs, precision, backend.qdq_flavour, Path(out_dir), backend.name,
                           calib_inputs)


@hookimpl
def bevdeploy_build(artifact: Artifact, backend: BackendSpec, precision: str) -> Engine | None:
    return backend.build(artifact, precision)


@hookimpl
def bevdeploy_infer(graph: DeployGraph, engines: dict[str, Engine], sample: dict[str, Any]) -> Any:
    """Engines for subgraphs, callables for ops, in graph order."""
    values = execute_graph(graph, lambda sg, args: engines[sg.name].infer(args), sample)
    return values[graph.output]


@hookimpl
def bevdeploy_evaluate(detections: dict[str, Any], dataset: Any) -> dict[str, Any] | None:
    """nuScenes detection metrics through the devkit, over the samples that were inferred (a
    ``--max-samples`` run must not count the samples it skipped as misses)."""
    from .eval import evaluate_detections

    return evaluate_detections(detections, dataset, sample_tokens=list(detections))
