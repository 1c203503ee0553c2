"""Two runs of benchmarks/ops.py side by side: per row the time in each, the change, and the targets met in each.

    python3 benchmarks/compare_runs.py A/ops.json B/ops.json [--rows SUBSTRING,...] [--out FILE.md]

Rows are matched by case and variant (precision and layout); a row in only one run is listed as missing in the
other. Run on the CPU: it reads the two JSON files and times nothing.

Where the two runs come from GPUs whose 1 GiB copies differ by more than 5% (an H100 and an H200, say), the table
also gives each row's DRAM elasticity, ln(ms B / ms A) / ln(copy A / copy B), from the warm times and from the cold
ones (inputs in DRAM): 1 where the row's time changes as much as the copy's (bound by DRAM bandwidth, as a copy
is), 0 where it does not change (bound by something the two GPUs share: latency, issue, L1 or L2). Between runs on
one kind of GPU the columns are left out: the copies differ by noise only, and the ratio would divide noise by
noise.
"""

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops  # noqa: E402  (ops.py's row naming and report writer)

ELASTIC_MIN_RATIO = 1.05  # copies further apart than this: the runs are on GPUs of different bandwidth


class RunError(ValueError):
    """Input this tool cannot compare: a file that is not an ops.py result, or rows that match nothing."""


def load_run(path: Path) -> dict:
    """The result ops.py wrote as ops.json, checked for the keys this tool reads."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: no such file; give the ops.json that benchmarks/ops.py --out DIR wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not a JSON file ({exc.__class__.__name__}); give an ops.json of benchmarks/ops.py") \
            from None
    if not isinstance(data, dict) or not {"device", "copy", "rows", "targets"} <= data.keys():
        raise RunError(f"{path}: not an ops.py result (it needs device, copy, rows and targets)")
    return data


def row_key(row: dict) -> str:
    """'grid_sampler[2d] int8 chw4': the case and variant, as the targets name them."""
    return f"{row['case']} {ops._variant(row)}"


def _timed(run: dict) -> dict[str, dict]:
    return {row_key(r): r for r in run["rows"] if "ms" in r}


def _change(a: float | None, b: float | None) -> str:
    return f"{100.0 * (b / a - 1.0):+.1f}%" if a and b else ""


def _ms(v: float | None) -> str:
    return f"{v:.4f}" if v else ""


def _pct(v: float | None) -> str:
    return f"{v:.1f}" if v is not None else ""


def elasticity(ms_a: float, ms_b: float, copy_a: float, copy_b: float) -> float:
    """ln(ms_b / ms_a) / ln(copy_a / copy_b): how much of the copy's change in speed a row's time follows."""
    return math.log(ms_b / ms_a) / math.log(copy_a / copy_b)


def _met(run: dict) -> dict[str, bool]:
    return {t["target"]: bool(t["met"]) for t in run["targets"]}


def _summary(name: str, path: Path, run: dict) -> str:
    met = _met(run)
    copy = [t for t in met if t.endswith(">= 60% copy bw")]
    return (f"- {name}: `{path}`, {run['device']}, 1 GiB copy {run['copy']['gbps']:.0f} GB/s; targets met "
            f"{sum(met.values())} of {len(met)}, of them >= 60% of the 1 GiB copy {sum(met[t] for t in copy)} of "
            f"{len(copy)}")


def markdown(path_a: Path, run_a: dict, path_b: Path, run_b: dict, only: list[str] | None = None) -> str:
    """The comparison as markdown: the runs, one table row per benchmark row, and the targets whose status differs."""
    rows_a, rows_b = _timed(run_a), _timed(run_b)
    keys = list(rows_a) + [k for k in rows_b if k not in rows_a]
    if only:
        keys = [k for k in keys if any(s in k for s in only)]
        if not keys:
            raise RunError(f"no row of either run has {', '.join(map(repr, only))} in its name; rows are named "
                           f"like {next(iter(rows_a), 'grid_sampler[2d] int8 chw4')!r}")
    copy_a, copy_b = run_a["copy"]["gbps"], run_b["copy"]["gbps"]
    elastic = max(copy_a, copy_b) / min(copy_a, copy_b) > ELASTIC_MIN_RATIO
    lines = ["# Two ops.py runs compared", "", _summary("A", path_a, run_a), _summary("B", path_b, run_b), "",
             "ms / cold ms: CUDA-graph replays warm, and on rotating copies of the inputs (ops.py); B vs A: the change "
             "in time (negative: B faster); % copy: of each run's own 1 GiB copy."]
    head = "| row | ms A | ms B | B vs A | cold ms A | cold ms B | cold B vs A | % copy A | % copy B |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if elastic:
        lines.append(f"DRAM elasticity: ln(ms B / ms A) / ln(copy A / copy B), the copies {copy_a:.0f} and "
                     f"{copy_b:.0f} GB/s; 1 as a copy, 0 for a row bound by what the GPUs share. Warm, a row whose "
                     "bytes fit in L2 runs from L2 and shows 0 whatever bounds it in DRAM; cold says that.")
        head += " elasticity warm | elasticity cold |"
        rule += " ---: | ---: |"
    lines += ["", head, rule]
    for k in keys:
        a, b = rows_a.get(k, {}), rows_b.get(k, {})
        cells = [k, _ms(a.get("ms")) or "missing", _ms(b.get("ms")) or "missing", _change(a.get("ms"), b.get("ms")),
                 _ms(a.get("cold_ms")), _ms(b.get("cold_ms")), _change(a.get("cold_ms"), b.get("cold_ms")),
                 _pct(a.get("pct_copy_bw")), _pct(b.get("pct_copy_bw"))]
        if elastic:
            cells += [f"{elasticity(a[t], b[t], copy_a, copy_b):.2f}" if a.get(t) and b.get(t) else ""
                      for t in ("ms", "cold_ms")]
        lines.append("| " + " | ".join(cells) + " |")
    met_a, met_b = _met(run_a), _met(run_b)
    flips = [t for t in met_a if t in met_b and met_a[t] != met_b[t] and (not only or any(s in t for s in only))]
    lines += ["", "## Targets met in one run only", ""]
    if flips:
        lines += ["| target | A | B |", "| --- | --- | --- |"]
        lines += [f"| {t} | {'met' if met_a[t] else 'missed'} | {'met' if met_b[t] else 'missed'} |" for t in flips]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path, help="ops.json of the first run (A)")
    parser.add_argument("run_b", type=Path, help="ops.json of the second run (B)")
    parser.add_argument("--rows", default="", help="comma-separated substrings; only rows whose name has one")
    parser.add_argument("--out", default="", help="also write the markdown here")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.rows.split(",") if s.strip()]
    try:
        run_a, run_b = load_run(args.run_a), load_run(args.run_b)
        text = markdown(args.run_a, run_a, args.run_b, run_b, only)
    except RunError as exc:
        print(f"compare_runs.py: {exc}", file=sys.stderr)
        return 2
    ops.write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
