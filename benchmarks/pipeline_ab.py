"""Put benchmarks/pipeline.py results of two code trees or settings side by side (not a test): per variant,
precision and piece, the p50 of run A and of run B and B/A. Several rounds of each (comma-separated files, runs
taken in turn on one machine) give the median of the rounds' p50s, with every round's value beside it: on a host
whose CPU speed drifts, one pair of runs can differ by 40% in a piece whose code did not change.

    BEVDEPLOY_CUDA_GRAPHS=0 python3 benchmarks/pipeline.py --model bevfusion --backend torch \\
        --precisions fp32,fp16 --samples 11 --name h100-eager
    python3 benchmarks/pipeline.py --model bevfusion --backend torch --precisions fp32,fp16 --samples 11 --name h100
    python3 benchmarks/pipeline_ab.py results/pipeline-bevfusion-torch-h100-eager.json \\
        results/pipeline-bevfusion-torch-h100.json --labels eager,graphs

Pieces missing from any run are left out. Each report's ``execution`` (how its engines ran the pieces) is listed
under the table where the two sides differ in it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _p50s(runs: list[dict], variant: str, precision: str, piece: str) -> list[float] | None:
    try:
        return [r["reports"][variant][precision]["latency_ms"][piece]["p50"] for r in runs]
    except KeyError:
        return None


def table(a: list[dict], b: list[dict], la: str, lb: str) -> str:
    rounds = len(a) > 1 or len(b) > 1
    cols = f"| {la} p50 (ms) | {lb} p50 (ms) | {lb}/{la} |" + (f" {la} rounds | {lb} rounds |" if rounds else "")
    lines = [f"| variant | precision | piece {cols}", "| --- | --- | --- | ---: | ---: | ---: |" + (" --- | --- |" if rounds else "")]
    notes = []
    for variant, by_precision in a[0]["reports"].items():
        for precision, rep_a in by_precision.items():
            for piece in rep_a["latency_ms"]:
                va, vb = _p50s(a, variant, precision, piece), _p50s(b, variant, precision, piece)
                if va is None or vb is None:
                    continue
                ma, mb = statistics.median(va), statistics.median(vb)
                row = f"| {variant} | {precision} | {piece} | {ma:.2f} | {mb:.2f} | {mb / ma if ma else 0:.3f} |"
                if rounds:
                    row += f" {' / '.join(f'{v:.1f}' for v in va)} | {' / '.join(f'{v:.1f}' for v in vb)} |"
                lines.append(row)
            rep_b = b[0]["reports"].get(variant, {}).get(precision, {})
            ea, eb = rep_a.get("execution", {}), rep_b.get("execution", {})
            for piece in sorted(set(ea) | set(eb)):
                if ea.get(piece) != eb.get(piece):
                    notes.append(f"- {variant} {precision} {piece}: {la} {ea.get(piece, '-')!r}, {lb} {eb.get(piece, '-')!r}")
    devices = {rep["device"] for run in (*a, *b) for by in run["reports"].values() for rep in by.values()}
    head = f"Device: {', '.join(sorted(devices))}. p50 over all samples but the first" + (
        f"; median over rounds ({len(a)} of {la}, {len(b)} of {lb}).\n\n" if rounds else ".\n\n")
    return head + "\n".join(lines) + "\n" + ("\nExecution:\n" + "\n".join(notes) + "\n" if notes else "")


def _load(arg: str, parser: argparse.ArgumentParser) -> list[dict]:
    runs = []
    for name in (s.strip() for s in arg.split(",") if s.strip()):
        path = Path(name)
        if not path.is_file():
            parser.error(f"{path} does not exist; give JSON files written by benchmarks/pipeline.py")
        runs.append(json.loads(path.read_text()))
    if not runs:
        parser.error("each side needs at least one JSON file")
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="pipeline.py JSON of run A (comma-separated for several rounds)")
    p.add_argument("b", help="pipeline.py JSON of run B (comma-separated for several rounds)")
    p.add_argument("--labels", default="A,B", help="Column names of the two sides, e.g. eager,graphs.")
    p.add_argument("--out", type=Path, help="Also write the table to this Markdown file.")
    args = p.parse_args()
    labels = [s.strip() for s in args.labels.split(",")]
    if len(labels) != 2:
        p.error(f"--labels takes two names, A,B; got {args.labels!r}")
    md = table(_load(args.a, p), _load(args.b, p), *labels)
    if args.out:
        args.out.write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
