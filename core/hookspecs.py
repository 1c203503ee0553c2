"""Every hook bevdeploy calls, grouped by pipeline stage.

Hooks are called with keyword arguments; an implementation may accept only the arguments it
needs (pluggy checks at registration that it asks for none the spec lacks). Stage hooks that pick
one implementation are ``firstresult``: the first non-None result wins and an implementation
returns None for models, pieces or backends it does not own. Plugins registered later are called
first, so a third-party plugin can override a built-in for its own model; the core's generic
defaults (``bevdeploy._defaults``) are registered first and therefore run last.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from . import PROJECT_NAME

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    from collections.abc import Iterable
    from pathlib import Path

    import torch

    from .data.types import Detections
    from .graph import Artifact, DeployGraph, Engine, Subgraph
    from .specs.registry import BackendSpec, ModelSpec, OpSpec
    from .specs.run import QuantSpec, RunSpec

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Registration: what is installed. Called by the plugin manager's users (CLI, pipeline) once.
# --------------------------------------------------------------------------------------------


@hookspec
def bevdeploy_register_models() -> list[ModelSpec]:
    """Return the model families this plugin provides.

    Called when the pipeline resolves ``--model`` and by ``bevdeploy models``/``plugins``.
    Each :class:`~bevdeploy.specs.registry.ModelSpec` names the family, its variants, how to build
    the FP32 ``torch.nn.Module`` and how to turn a dataset sample into the model's inputs.
    A model name must be unique across all plugins; a duplicate is a registration error.
    """


@hookspec
def bevdeploy_register_ops() -> list[OpSpec]:
    """Return the custom operators this plugin provides (reference, kernels, ONNX/ORT/TRT glue).

    Called by ``bevdeploy ops`` and by backends that must register custom-op bindings
    (ONNX Runtime custom-op library, TensorRT plugin creators) before building an engine.
    """


@hookspec
def bevdeploy_register_backends() -> list[BackendSpec]:
    """Return the inference backends this plugin provides.

    Called when the pipeline resolves ``--backend``. A backend that cannot be imported here is
    still registered; its ``is_available()`` returns ``(False, reason)`` and it is refused only
    when used.
    """


# --------------------------------------------------------------------------------------------
# Quantize: called once per run for precisions that quantize (int8, int8-fp32).
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def bevdeploy_quantize(
    model: torch.nn.Module, spec: RunSpec, calib_data: Iterable[dict[str, Any]], qconfig: QuantSpec
) -> torch.nn.Module | None:
    """Insert quantizers, calibrate and apply the model's quantization rules.

    ``calib_data`` yields model-input dicts (the output of ``ModelSpec.prepare``) from the
    calibration split; ``qconfig`` is the validated quantization spec (method, percentile,
    number of batches, per-channel weights, layers kept in higher precision). Returns the
    quantized model (calibrated, amax loaded) or None to decline. The core's default applies
    generic PTQ (BN folding, quantizers on every Conv/Linear, histogram calibration); a model
    plugin returns its own result to add rules (shared quantizers, disabled layers).
    Stops at the first non-None result.
    """


# --------------------------------------------------------------------------------------------
# Partition: split the (possibly quantized) model into deployable pieces.
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def bevdeploy_partition(model: torch.nn.Module, spec: RunSpec) -> DeployGraph | None:
    """Split ``model`` into a :class:`~bevdeploy.graph.DeployGraph`.

    The graph holds named subgraphs (modules that are exported and run by a backend) and ops
    (Python callables or custom kernels run between them), wired by named tensors. This is where
    a model plugin registers its pieces. Return None for models this plugin does not own.
    Stops at the first non-None result.
    """


# --------------------------------------------------------------------------------------------
# Export: one subgraph to one artifact, per precision and backend.
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def bevdeploy_export(
    subgraph: Subgraph,
    precision: str,
    backend: BackendSpec,
    out_dir: Path,
    example_inputs: dict[str, torch.Tensor],
    calib_inputs: list[dict[str, torch.Tensor]],
) -> Artifact | None:
    """Export ``subgraph`` for ``precision`` on ``backend`` into ``out_dir``.

    ``example_inputs`` are real tensors recorded at the subgraph's inputs on a calibration
    sample; ``calib_inputs`` the same on each calibration sample for an INT8 run on a backend of
    Q/DQ flavour "ort" (the first is ``example_inputs``; just it otherwise), for the ranges ONNX
    Runtime's lowering measures itself (tensors that no quantizer covers). The core's default exports dense subgraphs with ``torch.onnx`` and lowers the
    calibration table to the Q/DQ flavour the backend wants; a plugin returns its own artifact
    for pieces the default cannot export (e.g. sparse convolution) and None otherwise.
    Stops at the first non-None result.
    """


# --------------------------------------------------------------------------------------------
# Build: one artifact to one runnable engine.
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def bevdeploy_build(artifact: Artifact, backend: BackendSpec, precision: str) -> Engine | None:
    """Build a runnable :class:`~bevdeploy.graph.Engine` from ``artifact``.

    The core's default hands the artifact to ``backend.build``; a plugin returns its own engine
    for artifacts only it can run (e.g. a sparse-convolution runtime). Stops at the first
    non-None result.
    """


# --------------------------------------------------------------------------------------------
# Infer: one prepared sample through the built graph.
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def bevdeploy_infer(
    graph: DeployGraph, engines: dict[str, Engine], sample: dict[str, Any]
) -> Detections | None:
    """Run one prepared sample (model inputs by name) through ``graph`` and return detections
    in the LiDAR frame.

    The core's default executes the graph node by node (engines for subgraphs, callables for
    ops). A plugin overrides it only for models whose host loop is special (e.g. temporal
    models feeding a previous BEV back). Stops at the first non-None result.
    """


# --------------------------------------------------------------------------------------------
# Evaluate: detections over a split to metrics.
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def bevdeploy_evaluate(
    detections: dict[str, Detections], dataset: Any, spec: RunSpec
) -> dict[str, Any] | None:
    """Score ``detections`` (by sample token) against ``dataset``'s ground truth.

    The core's default computes the nuScenes detection metrics through the devkit (mAP, NDS,
    per-class AP, TP errors). Stops at the first non-None result.
    """
