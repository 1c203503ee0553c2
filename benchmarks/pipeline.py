"""Benchmark (not a test): per-piece and end-to-end latency of two precisions (FP32 vs INT8 unless
--precisions says otherwise) on a backend, in one process, with their ratio, for each variant asked.

    python benchmarks/pipeline.py --model bevfusion --variants tiny,r50 --samples 5
    python benchmarks/pipeline.py --model bevdet --variants tiny,r50 --samples 5
    python benchmarks/pipeline.py --model bevfusion --backend torch --precisions fp32,fp16 --samples 11 --name h100

Each (variant, precision) goes through the real pipeline (`bevdeploy.pipeline.run`) on the
built-in dataset (or --data), so the pieces timed are the exported, built engines. Results go to
benchmarks/results/pipeline-<model>[-<backend>][-<name>].{json,md} (no backend part for
onnxruntime); the Markdown table is also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bevdeploy.cli: set before torch loads

from bevdeploy.pipeline import run
from bevdeploy.specs.run import DataSpec, QuantSpec, RunSpec
from bevdeploy.workspace import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def measure(args: argparse.Namespace, variant: str, precision: str) -> dict:
    data = DataSpec(dataroot=args.data, max_samples=args.samples, **({"version": args.version} if args.version else {}))
    spec = RunSpec(model=args.model, variant=variant, precision=precision, backend=args.backend, data=data,
                   quant=QuantSpec(num_batches=args.calib_batches))
    out = Path(args.workdir) / f"{args.model}-{variant}-{precision}-{args.backend}"
    print(f"== {args.model} {variant} {precision} on {args.backend}", file=sys.stderr)
    report = run(spec, out=out).report
    return json.loads(report.model_dump_json())


def table(rows: list[dict], a: str, b: str) -> str:
    A, B = a.upper(), b.upper()
    lines = [f"| variant | piece | {A} p50 (ms) | {B} p50 (ms) | {B}/{A} | speedup |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['piece']} | {r[a + '_ms']:.2f} | {r[b + '_ms']:.2f} | "
                     f"{r['ratio']:.3f} | {1 / r['ratio'] if r['ratio'] else 0:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bevfusion", help="Registered model: bevfusion, bevdet, or a plugin's.")
    p.add_argument("--variants", default="tiny,r50")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--precisions", default="fp32,int8", help="The two precisions compared: base,other.")
    p.add_argument("--name", help="Suffix of the result files (e.g. the machine).")
    p.add_argument("--samples", type=int, default=5, help="Evaluation samples timed per run (first is warm-up).")
    p.add_argument("--calib-batches", type=int, default=4)
    p.add_argument("--data", type=Path)
    p.add_argument("--version")
    p.add_argument("--workdir", default="bevdeploy-runs/bench")
    args = p.parse_args()
    precisions = [v.strip() for v in args.precisions.split(",") if v.strip()]
    if len(precisions) != 2:
        p.error(f"--precisions takes two precisions, base,other (e.g. fp32,fp16); got {args.precisions!r}")
    pa, pb = precisions
    rows, reports = [], {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        base, other = measure(args, variant, pa), measure(args, variant, pb)
        reports[variant] = {pa: base, pb: other}
        for piece, lat in base["latency_ms"].items():
            if piece in other["latency_ms"]:
                a, b = lat["p50"], other["latency_ms"][piece]["p50"]
                rows.append({"variant": variant, "piece": piece, f"{pa}_ms": a, f"{pb}_ms": b, "ratio": b / a if a else 0.0})
    md = f"# {args.model}: {pa.upper()} vs {pb.upper()} on {args.backend}\n\nDevice: {base['device']}. " \
         f"{args.samples} samples per run, p50 over all but the first.\n\n" + table(rows, pa, pb)
    stem = "-".join(["pipeline", args.model] + ([args.backend] if args.backend != "onnxruntime" else [])
                    + ([args.name] if args.name else []))
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{stem}.md", md)
    atomic_write_json(RESULTS / f"{stem}.json", {"rows": rows, "reports": reports})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
