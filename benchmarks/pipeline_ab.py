"""Put two benchmarks/pipeline.py results side by side (not a test): per variant, precision and piece, the p50
of run A, of run B and B/A, e.g. the torch backend without and with CUDA graphs on one machine:

    BEVDEPLOY_CUDA_GRAPHS=0 python3 benchmarks/pipeline.py --model bevfusion --backend torch \\
        --precisions fp32,fp16 --samples 11 --name h100-eager
    python3 benchmarks/pipeline.py --model bevfusion --backend torch --precisions fp32,fp16 --samples 11 --name h100
    python3 benchmarks/pipeline_ab.py results/pipeline-bevfusion-torch-h100-eager.json \\
        results/pipeline-bevfusion-torch-h100.json --labels eager,graphs

Pieces missing from either run are left out. Each report's ``execution`` (how its engines ran the pieces) is
listed under the table where the two runs differ in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def table(a: dict, b: dict, la: str, lb: str) -> str:
    lines = [f"| variant | precision | piece | {la} p50 (ms) | {lb} p50 (ms) | {lb}/{la} |", "| --- | --- | --- | ---: | ---: | ---: |"]
    notes = []
    for variant, by_precision in a["reports"].items():
        for precision, rep_a in by_precision.items():
            rep_b = b["reports"].get(variant, {}).get(precision)
            if rep_b is None:
                continue
            for piece, lat in rep_a["latency_ms"].items():
                if piece not in rep_b["latency_ms"]:
                    continue
                pa, pb = lat["p50"], rep_b["latency_ms"][piece]["p50"]
                lines.append(f"| {variant} | {precision} | {piece} | {pa:.2f} | {pb:.2f} | {pb / pa if pa else 0:.3f} |")
            ea, eb = rep_a.get("execution", {}), rep_b.get("execution", {})
            for piece in sorted(set(ea) | set(eb)):
                if ea.get(piece) != eb.get(piece):
                    notes.append(f"- {variant} {precision} {piece}: {la} {ea.get(piece, '-')!r}, "
                                 f"{lb} {eb.get(piece, '-')!r}")
    devices = {rep["device"] for run in (a, b) for by in run["reports"].values() for rep in by.values()}
    head = f"Device: {', '.join(sorted(devices))}. p50 over all samples but the first.\n\n"
    return head + "\n".join(lines) + "\n" + ("\nExecution:\n" + "\n".join(notes) + "\n" if notes else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="pipeline.py JSON of run A")
    p.add_argument("b", type=Path, help="pipeline.py JSON of run B")
    p.add_argument("--labels", default="A,B", help="Column names of the two runs, e.g. eager,graphs.")
    p.add_argument("--out", type=Path, help="Also write the table to this Markdown file.")
    args = p.parse_args()
    labels = [s.strip() for s in args.labels.split(",")]
    if len(labels) != 2:
        p.error(f"--labels takes two names, A,B; got {args.labels!r}")
    for path in (args.a, args.b):
        if not path.is_file():
            p.error(f"{path} does not exist; give two JSON files written by benchmarks/pipeline.py")
    md = table(json.loads(args.a.read_text()), json.loads(args.b.read_text()), *labels)
    if args.out:
        args.out.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
