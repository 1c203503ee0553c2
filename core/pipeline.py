"""Drives one run: resolve -> data -> model + weights -> quantize -> partition -> export -> build
-> infer -> evaluate -> fidelity -> report (DESIGN.md "Data flow"). Every stage goes through the
hooks; this module only sequences them, caches artifacts in the workspace and measures."""

from __future__ import annotations

import copy
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch

from ._defaults import execute_graph, module_outputs
from .backends import resolve_backend
from .bench import Timings, progress
from .checkpoint import load_checkpoint
from .errors import BevDeployError
from .graph import Artifact, DeployGraph, Engine, OpNode, Subgraph, to_device
from .manager import PluginManager, get_plugin_manager, registered_backends, registered_models
from .specs.registry import BackendSpec, ModelSpec
from .specs.run import RunSpec
from .workspace import Workspace, file_sha256, text_sha256

QUANTIZED = ("int8", "int8-fp32")
FIDELITY_SAMPLES = 3


@dataclass
class Resolved:
    """A RunSpec with every default filled in, plus what it resolved to."""

    spec: RunSpec
    model: ModelSpec
    backend: BackendSpec
    demo: bool = False
    notes: list[str] = field(default_factory=list)


def resolve(spec: RunSpec, pm: PluginManager | None = None) -> Resolved:
    """Check names against what plugins registered; fill the demo variant/checkpoint in.
    Nothing is written, so a bad name fails before the workspace exists."""
    pm = pm or get_plugin_manager()
    models = registered_models(pm)
    if spec.model not in models:
        known = ", ".join(sorted(models)) or "none (see `bevdeploy plugins` for plugins that failed)"
        raise BevDeployError(f"unknown model {spec.model!r}; known models: {known}")
    mspec = models[spec.model]
    variant = spec.variant or mspec.demo_variant
    if variant not in mspec.variants:
        raise BevDeployError(
            f"unknown variant {variant!r} of {spec.model}; known variants: {', '.join(sorted(mspec.variants))}"
        )
    backend = resolve_backend(spec.backend, registered_backends(pm))
    demo = spec.checkpoint is None and spec.data.dataroot is None
    checkpoint, notes = spec.checkpoint, []
    if checkpoint is None and variant == mspec.demo_variant and mspec.demo_checkpoint is not None:
        checkpoint = mspec.demo_checkpoint
    weights = f"weights {checkpoint.name}" if checkpoint else "random weights (no demo checkpoint shipped)"
    if demo:
        notes.append(f"no --checkpoint and no --data: built-in demo, {spec.model} {variant} with {weights} "
                     f"on the built-in synthetic nuScenes set")
    elif checkpoint is None:
        notes.append(f"no --checkpoint: {spec.model} {variant} runs with random weights")
    full = spec.model_copy(update={"variant": variant, "checkpoint": checkpoint})
    return Resolved(full, mspec, backend, demo, notes)


def run_key(spec: RunSpec, model: torch.nn.Module | None = None) -> str:
    """Hash of the spec, the weights' content and the code that builds the graphs (the core and
    the package defining ``model``): equal keys may reuse each other's artifacts."""
    ckpt = file_sha256(spec.checkpoint) if spec.checkpoint and Path(spec.checkpoint).is_file() else ""
    code = code_fingerprint(model) if model is not None else ""
    return text_sha256(spec.model_dump_json() + "|" + ckpt + "|" + code)


def code_fingerprint(model: torch.nn.Module) -> str:
    """Hash of the Python sources of bevdeploy's core and of the outermost package folder on the
    path of ``model``'s class (``bevdeploy.plugins.bevdet.model`` -> all of ``plugins/``, so the
    ops a plugin borrows from another count too): an exported piece is stale when either changes
    (a plugin's new head layout, with the same spec and seeded random weights, once reused an old
    graph)."""
    from . import __file__ as core_init

    core = Path(core_init).parent
    parts = type(model).__module__.split(".")
    packages = (sys.modules.get(".".join(parts[:i])) for i in range(1, len(parts) + 1))
    dirs = [Path(m.__file__).parent for m in packages if m is not None and getattr(m, "__file__", None)]
    outer = next((d for d in dirs if d != core), None)  # outermost first: plugins/, not plugins/bevdet/
    roots = [core] if outer is None else [core, outer]
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def default_out(spec: RunSpec, key: str) -> Path:
    return Path("bevdeploy-runs") / f"{spec.model}-{spec.variant}-{spec.precision}-{spec.backend}-{key[:10]}"


# --- data --------------------------------------------------------------------------------


def open_datasets(spec: RunSpec) -> tuple[Any, Any | None]:
    """(eval dataset, calibration dataset or None). The calibration split must hold enough samples."""
    from .data import open_dataset

    eval_ds = open_dataset(spec.data, role="eval")
    if spec.precision not in QUANTIZED:
        return eval_ds, None
    # the calibration split never follows --split (that is the evaluated one) nor --max-samples
    calib_ds = open_dataset(
        spec.data.model_copy(update={"split": spec.quant.calib_split, "max_samples": None}), role="calib"
    )
    need = spec.quant.num_batches
    if len(calib_ds) < need:
        raise BevDeployError(
            f"the calibration split {getattr(calib_ds, 'split', '')!r} has {len(calib_ds)} samples but "
            f"{need} calibration batches were asked; lower --calib-batches or use a larger split"
        )
    return eval_ds, calib_ds


def eval_indices(dataset: Any, spec: RunSpec) -> list[int]:
    n = len(dataset)
    return list(range(min(n, spec.data.max_samples) if spec.data.max_samples else n))


# --- model -------------------------------------------------------------------------------


def build_model(res: Resolved) -> torch.nn.Module:
    model = res.model.build(res.spec.variant)
    if res.spec.checkpoint is not None:
        # a model whose official checkpoints use another layout maps them in convert_checkpoint()
        load_checkpoint(model, res.spec.checkpoint, getattr(model, "convert_checkpoint", None))
    return model.eval()


def calibration_inputs(res: Resolved, model: torch.nn.Module, calib_ds: Any, n: int) -> list[dict[str, Any]]:
    return [
        res.model.prepare(model, calib_ds[i])
        for i in progress(range(n), "calibration: preparing samples", total=n)
    ]


def quantize(res: Resolved, model: torch.nn.Module, calib_ds: Any, ws: Workspace, pm: PluginManager) -> Any:
    """Quantize via the hook; reuse calib.json when it matches (one sample then only sets shapes)."""
    from .quant import calib_table, load_calib_table, save_calib_table

    path = ws.root / "calib.json"
    cached = ws.cached("calib", ws.key)
    qconfig = res.spec.quant
    if cached:
        qconfig = qconfig.model_copy(update={"num_batches": 1})
    data = calibration_inputs(res, model, calib_ds, qconfig.num_batches)
    print(f"calibration: {qconfig.method} over {len(data)} samples", file=sys.stderr)
    qmodel = pm.hook.bevdeploy_quantize(model=model, spec=res.spec, calib_data=data, qconfig=qconfig)
    if qmodel is None:
        raise BevDeployError(f"no plugin quantizes {res.spec.model}; check `bevdeploy plugins`")
    if cached:
        load_calib_table(qmodel, path)
        res.notes.append("calibration reused from calib.json")
    else:
        ws.forget("calib")
        save_calib_table(calib_table(qmodel), path)
        ws.record("calib", [path], ws.key)
    return qmodel.eval()


def partition(res: Resolved, model: torch.nn.Module, pm: PluginManager) -> DeployGraph:
    graph = pm.hook.bevdeploy_partition(model=model, spec=res.spec)
    if graph is None:
        raise BevDeployError(f"no plugin partitions model {res.spec.model!r}; its plugin lacks bevdeploy_partition")
    _eval_mode(graph)
    return graph


def _eval_mode(graph: DeployGraph) -> None:
    """Subgraph wrappers built by a partition start in training mode like any new nn.Module; an
    exporter that restores 'training' would then switch BN layers to batch statistics."""
    for sg in graph.subgraphs:
        sg.module.eval()


def record_subgraph_io(graph: DeployGraph, inputs: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Run ``graph`` in torch and keep every subgraph's inputs and outputs by name."""
    seen: dict[str, dict[str, dict[str, Any]]] = {}

    def run(sg: Subgraph, args: dict[str, Any]) -> dict[str, Any]:
        outs = module_outputs(sg, args)
        seen[sg.name] = {"inputs": dict(args), "outputs": outs}
        return outs

    with torch.inference_mode():
        execute_graph(graph, run, inputs)
    return seen


# --- export and build ----------------------------------------------------------------------


def _artifact_record(art: Artifact, ws: Workspace) -> dict[str, Any]:
    return {
        "name": art.name,
        "precision": art.precision,
        "backend": art.backend,
        "format": art.format,
        "input_names": art.input_names,
        "output_names": art.output_names,
        "path": str(Path(art.path).resolve().relative_to(ws.root.resolve())) if art.path else None,
        "meta": {k: v for k, v in art.meta.items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))},
    }


def _artifact_from_record(rec: dict[str, Any], ws: Workspace, module: torch.nn.Module) -> Artifact:
    """A recorded file artifact, with ``module``: this run's subgraph module, which the export hooks attach to
    what they export (an engine may run it rather than the file, as BEVFusion's spconv engine does)."""
    fields = {k: rec[k] for k in ("name", "precision", "backend", "format", "input_names", "output_names", "meta")}
    return Artifact(path=ws.root / rec["path"], module=module, **fields)


def piece_precision(res: Resolved, sg: Subgraph) -> str:
    """The precision a piece is exported and built at. A piece's policy only lowers it to a precision
    the backend executes natively: the FP16 parts of an INT8 run stay FP32 on ONNX Runtime CPU, which
    would otherwise upcast them at load behind Cast nodes and run them slower than FP32."""
    wanted = sg.precision_for(res.spec.precision)
    if wanted != res.spec.precision and wanted not in res.backend.native_precisions:
        return "fp32"
    return wanted


def export_piece(
    res: Resolved, sg: Subgraph, example: dict[str, Any], ws: Workspace, pm: PluginManager,
    calib: Callable[[], list[dict[str, Any]]] | None = None,
) -> tuple[Artifact, bool]:
    """(artifact, reused). File artifacts are exported into a staging folder, moved into onnx/
    whole, then recorded; a trusted file with the same key is reused instead. ``calib()`` gives
    the piece's inputs on every calibration sample, called only when the piece is exported."""
    precision = piece_precision(res, sg)
    entry = f"export:{sg.name}"
    cached = ws.cached(entry, ws.key)
    if cached and cached.get("artifact", {}).get("path"):
        return _artifact_from_record(cached["artifact"], ws, sg.module), True
    ws.forget(entry)
    staged = ws.staging(sg.name)
    try:
        art = pm.hook.bevdeploy_export(
            subgraph=sg, precision=precision, backend=res.backend, out_dir=staged, example_inputs=example,
            calib_inputs=calib() if calib else [example],
        )
        if art is None:
            raise BevDeployError(
                f"no plugin exports piece {sg.name!r} (exporter {sg.exporter!r}) for backend {res.backend.name}"
            )
        moved = ws.commit_staged(staged, ws.onnx_dir)
    finally:
        if staged.exists():
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
    if art.path is not None:
        art.path = moved.get(Path(art.path), Path(art.path))
        ws.record(entry, list(moved.values()), ws.key, artifact=_artifact_record(art, ws))
    return art, False


def build_piece(res: Resolved, art: Artifact, precision: str, ws: Workspace, pm: PluginManager) -> Engine:
    art.meta["engine_dir"] = str(ws.engines_dir)
    engine = pm.hook.bevdeploy_build(artifact=art, backend=res.backend, precision=precision)
    if engine is None:
        raise BevDeployError(f"no plugin builds piece {art.name!r} ({art.format}) for {res.backend.name}")
    return engine


# --- infer, evaluate, fidelity -----------------------------------------------------------------


class _TimedEngine(Engine):
    """Delegates to an engine and records the wall time of each call under the piece's name."""

    def __init__(self, engine: Engine, timings: Timings):
        super().__init__(engine.name, engine.backend, engine.precision, engine.input_names, engine.output_names)
        self.inner, self.timings = engine, timings

    def infer(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.timings.wrap(self.name, self.inner.infer)(inputs)


def timed_graph(graph: DeployGraph, engines: dict[str, Engine], timings: Timings) -> tuple[DeployGraph, dict]:
    """The same graph and engines with every node timed, so any infer hook gets per-node timing."""
    nodes = [
        OpNode(n.name, timings.wrap(n.name, n.fn), n.inputs, n.outputs, n.op) if isinstance(n, OpNode) else n
        for n in graph.nodes
    ]
    timed = DeployGraph(graph.model, graph.variant, nodes, graph.inputs, graph.output)
    return timed, {name: _TimedEngine(e, timings) for name, e in engines.items()}


def infer_all(
    res: Resolved, model: torch.nn.Module, graph: DeployGraph, engines: dict[str, Engine], dataset: Any,
    pm: PluginManager,
) -> tuple[dict[str, Any], Timings]:
    """Detections by sample token over the evaluation samples, with per-node and end-to-end times.

    A sample's inputs move to the backend's device first (inside the end-to-end time), so that the ops
    between engines (geometry, bev pooling, voxelization, decode) run where the engines do."""
    timings = Timings()
    tgraph, tengines = timed_graph(graph, engines, timings)
    device = torch.device(res.backend.device)
    infer = timings.wrap("end_to_end", lambda inputs: pm.hook.bevdeploy_infer(
        graph=tgraph, engines=tengines, sample=to_device(inputs, device)))
    detections = {}
    indices = eval_indices(dataset, res.spec)
    for i in progress(indices, "inference", total=len(indices)):
        sample = dataset[i]
        with torch.inference_mode():
            inputs = res.model.prepare(model, sample)
            dets = infer(inputs)
        if dets is None:
            raise BevDeployError(f"no plugin ran inference for {res.spec.model}")
        detections[sample.token] = dets
    return detections, timings


def fidelity_all(
    res: Resolved, model: torch.nn.Module, fp32_graph: DeployGraph, engines: dict[str, Engine], dataset: Any
) -> dict[str, dict[str, float]]:
    """Per piece: the engine against the FP32 piece on identical inputs (recorded from the FP32 graph in
    torch on the CPU), handed to the engine on the backend's device as inference hands them."""
    from .eval import fidelity

    refs: dict[str, list[torch.Tensor]] = {}
    tests: dict[str, list[torch.Tensor]] = {}
    device = torch.device(res.backend.device)
    indices = eval_indices(dataset, res.spec)[:FIDELITY_SAMPLES]
    for i in indices:
        with torch.inference_mode():
            seen = record_subgraph_io(fp32_graph, res.model.prepare(model, dataset[i]))
            for name, io in seen.items():
                if name not in engines:
                    continue
                out = engines[name].infer(to_device(io["inputs"], device))
                compared = fp32_graph.node(name).fidelity_outputs or list(io["outputs"])
                for o, ref in io["outputs"].items():
                    if o in compared and isinstance(ref, torch.Tensor) and ref.is_floating_point() and o in out:
                        refs.setdefault(name, []).append(ref.detach().float().reshape(-1).cpu())
                        tests.setdefault(name, []).append(torch.as_tensor(out[o]).detach().float().reshape(-1).cpu())
    result = {}
    for name in refs:
        f = fidelity(torch.cat(refs[name]), torch.cat(tests[name]))
        result[name] = {**{k: float(f[k]) for k in ("cosine", "sqnr_db", "max_abs")}, "samples": len(indices)}
    return result


# --- the run -------------------------------------------------------------------------------


@dataclass
class RunResult:
    report: Any  # specs.report.RunReport
    workspace: Path


def run(
    spec: RunSpec, out: Path | None = None, force: bool = False, pm: PluginManager | None = None,
    log: TextIO | None = None,
) -> RunResult:
    """The whole pipeline for one RunSpec. User errors raise BevDeployError before anything is
    written where they can be detected up front (names, weights, data, calibration split size)."""
    from . import report as reporting

    pm, log = pm or get_plugin_manager(), log or sys.stderr
    clock: dict[str, float] = {}
    t = time.perf_counter()
    res = resolve(spec, pm)
    for note in res.notes:
        print(note, file=log)
    eval_ds, calib_ds = open_datasets(res.spec)
    model = build_model(res)
    clock["load"] = time.perf_counter() - t
    key = run_key(res.spec, model)
    ws = Workspace(Path(out) if out else default_out(res.spec, key), key, force).open()
    try:
        state = _stages(res, model, eval_ds, calib_ds, ws, pm, clock)
        rep = reporting.build_report(res, ws, state, eval_ds, clock)
        reporting.write_report(ws.root, rep)
    finally:
        ws.discard_staging()
    return RunResult(rep, ws.root)


def _stages(
    res: Resolved, model: torch.nn.Module, eval_ds: Any, calib_ds: Any, ws: Workspace, pm: PluginManager,
    clock: dict[str, float],
) -> dict[str, Any]:
    """quantize -> partition -> export -> build -> infer -> evaluate -> fidelity, timing each."""
    t = time.perf_counter()
    fp32_model = model
    if res.spec.precision in QUANTIZED:
        fp32_model = copy.deepcopy(model)
        model = quantize(res, model, calib_ds, ws, pm)
    clock["quantize"] = time.perf_counter() - t
    graph = partition(res, model, pm)
    fp32_graph = partition(res, fp32_model, pm) if model is not fp32_model else graph
    artifacts, engines = export_and_build(res, fp32_model, graph, calib_ds if calib_ds is not None else eval_ds,
                                          ws, pm, clock)
    t = time.perf_counter()
    detections, timings = infer_all(res, fp32_model, graph, engines, eval_ds, pm)
    clock["infer"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = pm.hook.bevdeploy_evaluate(detections=detections, dataset=eval_ds, spec=res.spec)
    if metrics is None:
        raise BevDeployError(f"no plugin evaluated {res.spec.model}")
    clock["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    fid = fidelity_all(res, fp32_model, fp32_graph, engines, eval_ds)
    clock["fidelity"] = time.perf_counter() - t
    return {"graph": graph, "artifacts": artifacts, "engines": engines, "timings": timings,
            "metrics": metrics, "fidelity": fid, "num_samples": len(detections)}


def export_and_build(
    res: Resolved, fp32_model: torch.nn.Module, graph: DeployGraph, example_ds: Any, ws: Workspace,
    pm: PluginManager, clock: dict[str, float],
) -> tuple[dict[str, Artifact], dict[str, Engine]]:
    """Export every subgraph (example inputs recorded on the first calibration sample; for an INT8
    ONNX Runtime lowering, which measures some ranges itself, on every calibration sample) and
    build it."""
    t = time.perf_counter()
    ort_int8 = res.spec.precision.startswith("int8") and res.backend.qdq_flavour == "ort"
    n = min(len(example_ds), res.spec.quant.num_batches) if ort_int8 else 1

    def record(i: int) -> dict[str, dict[str, Any]]:
        with torch.inference_mode():
            return record_subgraph_io(graph, res.model.prepare(fp32_model, example_ds[i]))

    recorded = [record(0)]

    def calib_of(name: str) -> Callable[[], list[dict[str, Any]]]:
        def inputs() -> list[dict[str, Any]]:
            if len(recorded) < n:  # the other samples, once, when a piece is really exported
                recorded.extend(record(i) for i in range(1, n))
            return [r[name]["inputs"] for r in recorded]
        return inputs

    examples = recorded[0]
    artifacts, engines, reused = {}, {}, []
    for sg in graph.subgraphs:
        artifacts[sg.name], was_cached = export_piece(res, sg, examples[sg.name]["inputs"], ws, pm, calib_of(sg.name))
        if was_cached:
            reused.append(sg.name)
    if reused:
        res.notes.append(f"reused exported pieces from the workspace: {', '.join(reused)}")
    clock["export"] = time.perf_counter() - t
    t = time.perf_counter()
    for sg in graph.subgraphs:
        precision, wanted = piece_precision(res, sg), sg.precision_for(res.spec.precision)
        engines[sg.name] = build_piece(res, artifacts[sg.name], precision, ws, pm)
        if precision != wanted:
            engines[sg.name].notes.append(f"{wanted} (piece policy) is not native on {res.backend.name}; ran {precision}")
    clock["build"] = time.perf_counter() - t
    return artifacts, engines
