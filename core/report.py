"""report.json / report.md for one run, and the side-by-side table of `bevdeploy compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .bench import device_name, peak_memory
from .specs.report import RunReport
from .workspace import atomic_write_json, atomic_write_text

MB = 1e6


def _metrics(raw: dict[str, Any]) -> dict[str, Any]:
    """The evaluator's dict in the report's shape (None/NaN scores become 0.0 for mAP/NDS)."""
    known = {"mAP", "NDS", "per_class", "tp_errors"}
    return {
        "mAP": float(raw.get("mAP") or 0.0),
        "NDS": float(raw.get("NDS") or 0.0),
        "per_class": raw.get("per_class", {}),
        "tp_errors": {k: float(v) for k, v in (raw.get("tp_errors") or {}).items() if v is not None},
        "extra": {k: v for k, v in raw.items() if k not in known},
    }


def _not_honoured(engines: dict[str, Any], artifacts: dict[str, Any]) -> list[str]:
    """What the backend (engine notes) and the exporter (artifact notes) did not run as asked.
    The FP16 upcast is said by both; the engine's line is kept."""
    out = []
    for name, engine in engines.items():
        notes = list(engine.notes)
        for note in artifacts[name].meta.get("notes", []) if name in artifacts else []:
            if not ("upcast" in note and any("upcast" in n for n in notes)):
                notes.append(note)
        out += [f"{name}: {n}" for n in dict.fromkeys(notes)]
    return out


def _dataset_info(dataset: Any, num_samples: int) -> dict[str, Any]:
    nusc = getattr(dataset, "nusc", None)
    return {
        "dataroot": str(getattr(nusc, "dataroot", getattr(dataset, "dataroot", ""))),
        "version": str(getattr(nusc, "version", getattr(dataset, "version", ""))),
        "split": str(getattr(dataset, "split", "")),
        "samples": num_samples,
    }


def build_report(res: Any, ws: Any, state: dict[str, Any], dataset: Any, clock: dict[str, float]) -> RunReport:
    """Assemble and validate the run's report from what the stages measured."""
    spec = res.spec
    lat = state["timings"].summary(drop_first=1)
    e2e = lat.get("end_to_end", {"mean": 0.0})
    sizes = {}
    for name, art in state["artifacts"].items():
        engine = state["engines"][name]
        sizes[name] = round((engine.size_bytes or art.size_bytes) / MB, 3)
    sizes["total"] = round(sum(sizes.values()), 3)
    mem, mem_what = peak_memory()
    artifacts = {
        name: (str(art.path) if art.path is not None else f"module ({art.format})")
        for name, art in state["artifacts"].items()
    }
    return RunReport(
        model=spec.model,
        variant=spec.variant or "",
        precision=spec.precision,
        backend=spec.backend,
        device=device_name(res.backend.device),
        checkpoint=str(spec.checkpoint) if spec.checkpoint else None,
        demo=res.demo,
        dataset=_dataset_info(dataset, state["num_samples"]),
        metrics=_metrics(state["metrics"]),
        fidelity=state["fidelity"],
        latency_ms=lat,
        fps=round(1000.0 / e2e["mean"], 3) if e2e["mean"] > 0 else 0.0,
        size_mb=sizes,
        memory_mb=round(mem, 1),
        memory_what=mem_what,
        artifacts=artifacts,
        piece_precisions={name: art.precision for name, art in state["artifacts"].items()},
        not_honoured=_not_honoured(state["engines"], state["artifacts"]),
        execution={name: e.execution for name, e in state["engines"].items() if e.execution},
        notes=list(res.notes),
        timings_s={k: round(v, 3) for k, v in clock.items()},
        workspace=str(ws.root),
    )


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_markdown(rep: RunReport) -> str:
    """The report as Markdown: the headline row, then per piece latency/size/fidelity."""
    e2e = rep.latency_ms.get("end_to_end")
    lines = [
        f"# {rep.model} ({rep.variant}) {rep.precision} on {rep.backend}",
        "",
        f"Device: {rep.device}. Samples: {rep.dataset.get('samples')} of split {rep.dataset.get('split')!r}.",
        "",
        "| precision | NDS | mAP | FPS | latency p50 (ms) | latency p90 (ms) | size (MB) | memory (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {rep.precision} | {_f(rep.metrics.NDS, 4)} | {_f(rep.metrics.mAP, 4)} | {_f(rep.fps, 2)} | "
        f"{_f(e2e.p50 if e2e else None, 2)} | {_f(e2e.p90 if e2e else None, 2)} | {_f(rep.size_mb.get('total'), 2)} | "
        f"{_f(rep.memory_mb, 0)} |",
        "",
        "| piece | precision | p50 (ms) | p90 (ms) | size (MB) | cosine | SQNR (dB) | max abs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, lat in rep.latency_ms.items():
        if name == "end_to_end":
            continue
        fid = rep.fidelity.get(name)
        lines.append(
            f"| {name} | {rep.piece_precisions.get(name, 'op')} | {_f(lat.p50, 2)} | {_f(lat.p90, 2)} | "
            f"{_f(rep.size_mb.get(name), 3) if name in rep.size_mb else '-'} | "
            f"{_f(fid.cosine, 5) if fid else '-'} | {_f(fid.sqnr_db, 1) if fid else '-'} | "
            f"{_f(fid.max_abs, 4) if fid else '-'} |"
        )
    lines += ["", f"Memory: {rep.memory_what}.", "Latency: graph execution from prepared inputs to detections, "
              "batch 1, first sample dropped as warm-up."]
    execution = [f"{name}: {how}" for name, how in rep.execution.items()]
    for title, items in (("Not honoured", rep.not_honoured), ("Execution", execution), ("Notes", rep.notes)):
        if items:
            lines += ["", f"{title}:"] + [f"- {x}" for x in items]
    return "\n".join(lines) + "\n"


def write_report(root: Path, rep: RunReport) -> None:
    """report.json then report.md, each atomically."""
    atomic_write_json(Path(root) / "report.json", json.loads(rep.model_dump_json()))
    atomic_write_text(Path(root) / "report.md", format_markdown(rep))


def load_report(path: Path) -> RunReport:
    return RunReport.model_validate_json(Path(path).read_text())


def _e2e_p50(r: RunReport) -> float:
    lat = r.latency_ms.get("end_to_end")
    return lat.p50 if lat else 0.0


def _ratio(x: float, ref: float) -> str:
    return f"{x / ref:.2f}x" if ref else "-"


def compare_table(reports: list[RunReport]) -> str:
    """Side by side, with each model's FP32 run as the reference for the ratios."""
    ref = {r.model: r for r in reports if r.precision == "fp32"}
    lines = [
        "| model | variant | precision | backend | NDS | mAP | FPS | p50 (ms) | size (MB) | memory (MB) "
        "| speed vs fp32 | size vs fp32 | ΔNDS vs fp32 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in reports:
        base = ref.get(r.model)
        p50 = _e2e_p50(r)
        if base is not None:
            ratios = (
                f"{_ratio(_e2e_p50(base), p50)} | {_ratio(r.size_mb.get('total', 0), base.size_mb.get('total', 0))} | "
                f"{r.metrics.NDS - base.metrics.NDS:+.4f}"
            )
        else:
            ratios = "- | - | -"
        lines.append(
            f"| {r.model} | {r.variant} | {r.precision} | {r.backend} | {r.metrics.NDS:.4f} | {r.metrics.mAP:.4f} | "
            f"{r.fps:.2f} | {p50:.2f} | {r.size_mb.get('total', 0):.2f} | {r.memory_mb:.0f} | {ratios} |"
        )
    return "\n".join(lines) + "\n"
