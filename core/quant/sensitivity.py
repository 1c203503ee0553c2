"""Per-layer quantization sensitivity, for any plugin's model (``bevdeploy sensitivity``).

The model is quantized through the plugin's own ``bevdeploy_quantize`` hook (its rules apply),
then every quantized layer (or group of layers) is switched on *alone*, all others in floating
point, and the final outputs are compared with FP32 on a few evaluation samples: the outputs of
the graph's last subgraph (its ``fidelity_outputs`` when it names them, so ranked outputs such
as top-K proposals are left out) for ``metric="fidelity"``, or the nuScenes NDS of the decoded
detections for ``metric="nds"``. Layers are ranked most sensitive first, and the profile then
keeps layers in floating point in that order until the fully quantized model meets the budget
(cosine >= ``min_cosine`` and/or NDS drop <= ``max_nds_drop``). The result is a ``keep_fp`` list
of module-name globs for :class:`~bevdeploy.specs.run.QuantSpec` (or a plugin's default rules).

Everything is deterministic for a seed: the model's weights, the calibration and evaluation
samples (the first N of their splits) and the tie-breaking (by layer name) do not depend on time.
"""

from __future__ import annotations

import copy
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import torch
from pytorch_quantization.nn import TensorQuantizer
from torch import nn

from ..errors import BevDeployError
from ..specs.run import RunSpec

Measure = Callable[[], dict[str, float | None]]


@dataclass
class Budget:
    """What the quantized model must reach; None leaves a criterion out."""

    min_cosine: float | None = None
    max_nds_drop: float | None = None

    def met(self, m: dict[str, float | None]) -> bool:
        if self.min_cosine is not None and (m.get("cosine") is None or m["cosine"] < self.min_cosine):
            return False
        return not (self.max_nds_drop is not None and (m.get("nds_drop") is None or m["nds_drop"] > self.max_nds_drop))


@dataclass
class Profile:
    layers: list[dict[str, Any]] = field(default_factory=list)  # most sensitive first
    all_quantized: dict[str, Any] = field(default_factory=dict)
    keep_fp: list[str] = field(default_factory=list)
    with_keep_fp: dict[str, Any] = field(default_factory=dict)
    met: bool = False


def quantized_layers(model: nn.Module, group_depth: int | None = None) -> dict[str, list[TensorQuantizer]]:
    """Layer (module name, or its first ``group_depth`` name components) -> its enabled quantizers."""
    groups: dict[str, list[TensorQuantizer]] = {}
    for name, module in model.named_modules():
        if isinstance(module, TensorQuantizer):
            continue
        qs = [q for q in module.children() if isinstance(q, TensorQuantizer) and not q._disabled]
        if qs:
            key = ".".join(name.split(".")[:group_depth]) if group_depth else name
            groups.setdefault(key, []).extend(qs)
    return groups


def _enable_only(all_q: list[TensorQuantizer], on: list[TensorQuantizer]) -> None:
    for q in all_q:
        q.disable()
    for q in on:
        q.enable()


def _score(m: dict[str, float | None], metric: str) -> float:
    """Higher = more sensitive (worse when quantized alone)."""
    if metric == "nds":
        return float(m["nds_drop"] if m.get("nds_drop") is not None else np.inf)
    return -float(m["sqnr_db"]) if m.get("sqnr_db") is not None else np.inf


def profile_layers(
    groups: dict[str, list[TensorQuantizer]], measure: Measure, metric: str, budget: Budget,
    log: TextIO | None = None,
) -> Profile:
    """One group at a time, then greedy keep-in-FP in ranking order until ``budget`` is met."""
    all_q = [q for qs in groups.values() for q in qs]
    out = Profile()
    try:
        _enable_only(all_q, all_q)
        out.all_quantized = measure()
        for i, (name, qs) in enumerate(sorted(groups.items())):
            _enable_only(all_q, qs)
            out.layers.append({"layer": name, **measure()})
            if log:
                print(f"sensitivity: {i + 1}/{len(groups)} {name}", file=log)
        out.layers.sort(key=lambda r: (-_score(r, metric), r["layer"]))
        for rank, row in enumerate(out.layers, 1):
            row["rank"] = rank
        out.keep_fp, current = _greedy(groups, all_q, out, measure, budget)
        out.with_keep_fp, out.met = current, budget.met(current)
    finally:
        _enable_only(all_q, all_q)
    return out


def _greedy(groups, all_q, out: Profile, measure: Measure, budget: Budget) -> tuple[list[str], dict]:
    keep: list[str] = []
    current = out.all_quantized
    for row in out.layers:
        if budget.met(current):
            break
        keep.append(row["layer"])
        off = {id(q) for name in keep for q in groups[name]}
        _enable_only(all_q, [q for q in all_q if id(q) not in off])
        current = measure()
    return keep, current


def keep_fp_globs(layers: list[str], grouped: bool) -> list[str]:
    """Globs for QuantSpec.keep_fp: a layer name itself, plus its children for a group."""
    return [g for name in layers for g in ((name, f"{name}.*") if grouped else (name,))]


# --- wiring to a run: data, model, graph, metrics ---------------------------------------------


def _final_outputs(graph, values: dict[str, Any]) -> torch.Tensor:
    last = graph.subgraphs[-1]
    names = last.fidelity_outputs or list(last.outputs)
    parts = [values[n].detach().float().reshape(-1) for n in names if torch.is_tensor(values[n])]
    return torch.cat([p for p in parts if p.is_floating_point()])


def run_sensitivity(
    spec: RunSpec, metric: str = "fidelity", budget: Budget | None = None, samples: int = 4,
    group_depth: int | None = None, pm: Any = None, log: TextIO | None = None,
) -> dict[str, Any]:
    """Quantize ``spec``'s model with its plugin's rules and profile it (see module docstring)."""
    from .. import pipeline
    from .._defaults import execute_graph, module_outputs
    from ..eval import fidelity
    from ..manager import get_plugin_manager

    if metric not in ("fidelity", "nds"):
        raise BevDeployError(f"unknown sensitivity metric {metric!r}; choose fidelity or nds")
    budget = budget or Budget(min_cosine=0.999 if metric == "fidelity" else None,
                              max_nds_drop=0.005 if metric == "nds" else None)
    pm, log = pm or get_plugin_manager(), log or sys.stderr
    torch.manual_seed(spec.seed), np.random.seed(spec.seed), random.seed(spec.seed)
    res = pipeline.resolve(spec.model_copy(update={"precision": "int8"}), pm)
    eval_ds, calib_ds = pipeline.open_datasets(res.spec)
    fp32 = pipeline.build_model(res)
    data = pipeline.calibration_inputs(res, fp32, calib_ds, res.spec.quant.num_batches)
    qmodel = pm.hook.bevdeploy_quantize(model=copy.deepcopy(fp32), spec=res.spec, calib_data=data, qconfig=res.spec.quant)
    if qmodel is None:
        raise BevDeployError(f"no plugin quantizes {spec.model}; check `bevdeploy plugins`")
    qmodel.eval()
    indices = pipeline.eval_indices(eval_ds, res.spec)[:samples]
    inputs = [(eval_ds[i].token, res.model.prepare(fp32, eval_ds[i])) for i in indices]
    fp_graph, q_graph = pipeline.partition(res, fp32, pm), pipeline.partition(res, qmodel, pm)

    def run(graph) -> list[dict[str, Any]]:
        with torch.inference_mode():
            return [execute_graph(graph, module_outputs, x) for _, x in inputs]

    def nds(values: list[dict[str, Any]]) -> float:
        dets = {tok: v[q_graph.output] for (tok, _), v in zip(inputs, values, strict=True)}
        return float(pm.hook.bevdeploy_evaluate(detections=dets, dataset=eval_ds, spec=res.spec)["NDS"] or 0.0)

    ref_values = run(fp_graph)
    ref = torch.cat([_final_outputs(fp_graph, v) for v in ref_values])
    ref_nds = nds(ref_values) if metric == "nds" or budget.max_nds_drop is not None else None

    def measure() -> dict[str, float | None]:
        values = run(q_graph)
        f = fidelity(ref, torch.cat([_final_outputs(q_graph, v) for v in values]))
        m: dict[str, float | None] = {"cosine": f["cosine"], "sqnr_db": f["sqnr_db"]}
        if ref_nds is not None:
            m["nds"] = nds(values)
            m["nds_drop"] = ref_nds - m["nds"]
        return m

    groups = quantized_layers(qmodel, group_depth)
    if not groups:
        raise BevDeployError(f"{spec.model} has no enabled quantizer after its quantization rules; nothing to profile")
    prof = profile_layers(groups, measure, metric, budget, log)
    return {
        "model": res.spec.model, "variant": res.spec.variant,
        "checkpoint": str(res.spec.checkpoint) if res.spec.checkpoint else None,
        "weights_note": "" if res.spec.checkpoint else "random weights: the ranking describes untrained weights",
        "metric": metric, "budget": {"min_cosine": budget.min_cosine, "max_nds_drop": budget.max_nds_drop},
        "seed": spec.seed, "samples": [tok for tok, _ in inputs], "calib_batches": res.spec.quant.num_batches,
        "group_depth": group_depth, "fp32_nds": ref_nds, "all_quantized": prof.all_quantized, "layers": prof.layers,
        "keep_fp": keep_fp_globs(prof.keep_fp, group_depth is not None), "with_keep_fp": prof.with_keep_fp,
        "budget_met": prof.met,
    }


def format_table(result: dict[str, Any], top: int = 20) -> str:
    """The ranking (most sensitive first) and the keep_fp verdict as a Markdown table."""
    nds = result["fp32_nds"] is not None
    head = "| rank | layer | cosine | SQNR (dB) |" + (" NDS drop |" if nds else "")
    lines = [f"# sensitivity of {result['model']} ({result['variant']}), metric {result['metric']}", "", head,
             "| --- | --- | --- | --- |" + (" --- |" if nds else "")]

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for row in result["layers"][:top]:
        lines.append(f"| {row['rank']} | {row['layer']} | {fmt(row['cosine'], '.6f')} | {fmt(row['sqnr_db'], '.1f')} |"
                     + (f" {fmt(row.get('nds_drop'), '.4f')} |" if nds else ""))
    a, k = result["all_quantized"], result["with_keep_fp"]
    lines += ["", f"all quantized: cosine {fmt(a.get('cosine'), '.6f')}, SQNR {fmt(a.get('sqnr_db'), '.1f')} dB",
              f"keep_fp ({len(result['keep_fp'])}): {', '.join(result['keep_fp']) or '(none)'}",
              f"with keep_fp: cosine {fmt(k.get('cosine'), '.6f')}, SQNR {fmt(k.get('sqnr_db'), '.1f')} dB; "
              f"budget {'met' if result['budget_met'] else 'NOT met'}"]
    if result["weights_note"]:
        lines.append(f"note: {result['weights_note']}")
    return "\n".join(lines) + "\n"
