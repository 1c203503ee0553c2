"""Time chosen benchmark rows under several TUNING overrides, side by side (GPU, one command).

    python3 benchmarks/ops_tune.py --rows 'grid_sampler 3d fp32,grid_sampler 3d fp16:chw2' \\
        --configs '[{}, {"per_precision": {"fp32:3d": {"staged": true}}}]' [--rep-ms 40] [--l2 warm|cold] [--out FILE.md]

ops.py --sweep times a kernels module's whole SWEEP over every row of the op; this times only the rows named,
under the configurations given, so that one question (does staging pay for grid 3D fp32?) costs seconds. Each
configuration is applied over the kernels module's committed TUNING: its top-level keys replace TUNING's, and
its "per_precision" entries are merged key by key into TUNING's entries of the same name (so
``{"per_precision": {"fp32:3d": {"staged": true}}}`` keeps the other fp32:3d keys). Every row is checked against
the op's reference before it is timed (a configuration that fails or is out of tolerance is reported, not
timed); ms: median CUDA-graph replay as in ops.py, "% copy" against the 1 GiB copy measured in the same run.
``--l2 cold`` times each call on inputs not in L2 (ops.rotating_ms: calls in turn on copies of the inputs that
together move four times the L2): replays of one call after another leave the input in L2 wherever it fits, and a
change that only keeps it there (an output store that leaves L2 first, NOTES-ops item 35) looks faster warm than it
is in a network.
``--l2 both`` times every configuration both ways, so that a change is judged on the two at once (a
configuration that wins warm and loses cold, or the reverse, NOTES-ops items 35 - 37).
Prints one JSON line per measurement and a markdown table (configurations as columns) last, one per L2 state.
"""

import argparse
import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ops  # noqa: E402  (sets up the package mapping, like ops.py itself)
import ops_cases  # noqa: E402
import torch  # noqa: E402


def merged(tuning: dict, override: dict) -> dict:
    """``override`` applied over ``tuning`` (per_precision merged entry by entry, see the module docstring)."""
    out = copy.deepcopy(tuning)
    for key, value in override.items():
        if key == "per_precision":
            per = out.setdefault("per_precision", {})
            for name, entry in value.items():
                per[name] = {**per.get(name, {}), **entry}
        else:
            out[key] = value
    return out


def parse_rows(text: str) -> list[tuple[str, str, str, str]]:
    """'op case precision[:layout], ...' -> [(op, case, precision, layout)], each checked against ops_cases."""
    rows = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split()
        if len(parts) != 3:
            raise ValueError(f"a row is 'OP CASE PRECISION[:LAYOUT]', got {item!r}")
        op, case, (precision, _, layout) = parts[0], parts[1], parts[2].partition(":")
        if op not in ops_cases.OPS:
            raise ValueError(f"unknown op {op!r}; one of {', '.join(ops_cases.OPS)}")
        build, anchors, tiny, precisions = ops_cases.OPS[op]
        if case not in anchors:
            raise ValueError(f"{op} has no anchor case {case!r}; one of {', '.join(anchors)}")
        if precision not in precisions:
            raise ValueError(f"{op} has no precision {precision!r}; one of {', '.join(precisions)}")
        layouts = build(tiny[0]).layouts.get(precision, ())  # the anchors list the same layouts, built on the CPU
        if layout and layout not in layouts:
            raise ValueError(f"{op} {precision} has no {layout!r} row; one of {', '.join(layouts) or 'none'}")
        rows.append((op, case, precision, layout or "linear"))
    if not rows:
        raise ValueError("no rows given")
    return rows


# --l2 value -> the L2 states timed; each state's time is stored under ops.L2_TIME_KEYS ("ms" warm, "cold_ms" cold)
L2_MODES = {"warm": ("warm",), "cold": ("cold",), "both": ("warm", "cold")}
PCT_KEYS = {"warm": "pct_copy_bw", "cold": "pct_copy_bw_cold"}


def time_row(op, variant, precision, layout, configs, rep_ms, bw, states=("warm",)) -> list[dict]:
    """ops.py's sweep row under each configuration in turn: checked, then timed where within tolerance in each L2
    state of ``states`` ("warm": CUDA-graph replays, "ms"; "cold": each call on inputs not in L2, "cold_ms")."""
    case = ops_cases.OPS[op][0](variant, device="cuda")
    kernel = ops_cases.kernel_for(op)
    module = sys.modules[kernel.__module__]
    reference, _ = ops_cases.reference_for(op)
    kargs, rargs = ops_cases.variant_inputs(case, precision)
    ref = reference(*rargs)
    name = f"{op} {variant} {precision}" + ("" if layout == "linear" else f":{layout}")
    default = copy.deepcopy(module.TUNING)
    out_rows = []
    try:
        for i, cfg in enumerate(configs):
            module.TUNING.clear()
            module.TUNING.update(merged(default, cfg))
            checked = ops._sweep_row(op, case, precision, layout, cfg, kernel, kargs, ref, rep_ms, time_failed=False,
                                     states=states)
            row = {**checked, "row": name, "config": i, "override": cfg}  # "config": the index, not the override
            for state in states:
                if row.get(ops.L2_TIME_KEYS[state]):
                    row[PCT_KEYS[state]] = ops.pct_of(row["bytes"], row[ops.L2_TIME_KEYS[state]], bw)
            print(json.dumps(row), flush=True)
            out_rows.append(row)
    finally:
        module.TUNING.clear()
        module.TUNING.update(default)
    return out_rows


def markdown(rows: list[dict], configs: list[dict], copy_gbps: float, l2: str = "warm", device: str = "") -> str:
    """The configurations, then per L2 state of ``l2`` a table of rows x configurations (ms, then each against c0)."""
    lines = [f"# ops_tune on {device or 'the GPU'} (copy {copy_gbps:.0f} GB/s; L2 {l2})", "",
             "Configurations:", ""]
    lines += [f"- c{i}: `{json.dumps(c)}`" for i, c in enumerate(configs)]
    by_row: dict = {}
    for r in rows:
        by_row.setdefault(r["row"], {})[r["config"]] = r
    for state in L2_MODES[l2]:
        key = ops.L2_TIME_KEYS[state]
        head = ["row", *(f"c{i} {key}" for i in range(len(configs))),
                *(f"c{i} vs c0" for i in range(1, len(configs)))]
        lines += ["", f"L2 {state}:", ""] if len(L2_MODES[l2]) > 1 else [""]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for name, per in by_row.items():
            ms = [per.get(i, {}).get(key) for i in range(len(configs))]
            cells = [f"{m:.4f}" if m else ("error" if "error" in per.get(i, {}) else "fail") for i, m in enumerate(ms)]
            rel = [f"{(m / ms[0] - 1) * 100:+.1f}%" if m and ms[0] else "" for m in ms[1:]]
            lines.append("| " + " | ".join([name, *cells, *rel]) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True, help="comma-separated 'OP CASE PRECISION[:LAYOUT]'")
    parser.add_argument("--configs", default="[{}]", help="JSON list of TUNING overrides; the first is the baseline")
    parser.add_argument("--rep-ms", type=int, default=40)
    parser.add_argument("--l2", default="warm",
                        help="warm (replays as ops.py times ms), cold (as it times cold ms) or both")
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    try:
        rows = parse_rows(args.rows)
        try:
            configs = json.loads(args.configs)
        except json.JSONDecodeError:
            configs = None
        if not (isinstance(configs, list) and configs and all(isinstance(c, dict) for c in configs)
                and all(isinstance(c.get("per_precision", {}), dict) for c in configs)):
            raise ValueError(f"--configs must be a non-empty JSON list of TUNING overrides (objects), got "
                             f"{args.configs!r}")
        if args.l2 not in L2_MODES:
            raise ValueError(f"--l2 must be warm, cold or both, got {args.l2!r}")
    except ValueError as exc:
        print(f"ops_tune.py: {exc}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("ops_tune.py needs a CUDA GPU", file=sys.stderr)
        return 2
    bw = ops.copy_bandwidth(args.rep_ms)["gbps"]
    results = []
    for op, variant, precision, layout in rows:
        results += time_row(op, variant, precision, layout, configs, args.rep_ms, bw, L2_MODES[args.l2])
        torch.cuda.empty_cache()
    ops.write_report(markdown(results, configs, bw, args.l2, torch.cuda.get_device_name()), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
