"""Benchmark (not a test): per-piece and end-to-end latency of FP32 vs INT8 on a backend, in one
process, with the INT8/FP32 ratio, for each variant asked.

    python benchmarks/pipeline.py --model bevfusion --variants tiny,r50 --samples 5
    python benchmarks/pipeline.py --model bevdet --variants tiny,r50 --samples 5

Each (variant, precision) goes through the real pipeline (`bevdeploy.pipeline.run`) on the
built-in dataset (or --data), so the pieces timed are the exported, built engines. Results go to
benchmarks/results/pipeline-<model>.{json,md}; the Markdown table is also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bevdeploy.cli: set before torch loads

from bevdeploy.bench import device_name
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


def table(rows: list[dict]) -> str:
    lines = ["| variant | piece | FP32 p50 (ms) | INT8 p50 (ms) | INT8/FP32 | speedup |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['piece']} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | "
                     f"{r['ratio']:.3f} | {1 / r['ratio'] if r['ratio'] else 0:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bevfusion", help="Registered model: bevfusion, bevdet, or a plugin's.")
    p.add_argument("--variants", default="tiny,r50")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--samples", type=int, default=5, help="Evaluation samples timed per run (first is warm-up).")
    p.add_argument("--calib-batches", type=int, default=4)
    p.add_argument("--data", type=Path)
    p.add_argument("--version")
    p.add_argument("--workdir", default="bevdeploy-runs/bench")
    args = p.parse_args()
    rows, reports = [], {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        fp32, int8 = measure(args, variant, "fp32"), measure(args, variant, "int8")
        reports[variant] = {"fp32": fp32, "int8": int8}
        for piece, lat in fp32["latency_ms"].items():
            if piece in int8["latency_ms"]:
                a, b = lat["p50"], int8["latency_ms"][piece]["p50"]
                rows.append({"variant": variant, "piece": piece, "fp32_ms": a, "int8_ms": b, "ratio": b / a if a else 0.0})
    md = f"# {args.model}: FP32 vs INT8 on {args.backend}\n\nDevice: {device_name('cpu')}. " \
         f"{args.samples} samples per run, p50 over all but the first.\n\n" + table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"pipeline-{args.model}.md", md)
    atomic_write_json(RESULTS / f"pipeline-{args.model}.json", {"rows": rows, "reports": reports})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
