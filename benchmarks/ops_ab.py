"""Compare kernel variants timed by benchmarks/ops.py on one machine, row by row.

    python3 benchmarks/ops_ab.py results/ab-s11-3.jsonl [--base base]

Input: JSON lines as ops.py prints them (one per row), each with a "variant" key added by the A/B run, e.g.
``base1``, ``ws0_2``: the variant's name and the repeat, which a trailing number (after an optional "_") gives.
Each row's time per variant is the minimum over its repeats; the change is against the ``--base`` variant.
Run-to-run spread of unchanged code on one machine is about 1%; across machines, up to 6% (NOTES-ops.md).
"""

import argparse
import json
import re
import sys
from collections import defaultdict


def load(path: str) -> dict:
    """{(case, precision, layout): {variant: [(ms, pct_copy_bw), ...]}} in the file's row order."""
    rows: dict = defaultdict(lambda: defaultdict(list))
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                r = json.loads(line)
                variant = re.sub(r"_?\d+$", "", r["variant"])
                rows[(r["case"], r["precision"], r["layout"])][variant].append((r["ms"], r["pct_copy_bw"]))
    return rows


def variant_names(rows: dict) -> list[str]:
    """The variants of load()'s rows, in the order they first appear."""
    return list(dict.fromkeys(v for per in rows.values() for v in per))


def table(rows: dict, base: str) -> list[str]:
    variants = variant_names(rows)
    others = [v for v in variants if v != base]
    head = ["row", *(f"{v} ms" for v in variants), *(f"{v} vs {base}" for v in others), *(f"{v} % copy" for v in variants)]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (case, precision, layout), per in rows.items():
        best = {v: min(per[v]) for v in variants if per.get(v)}
        if base not in best:
            continue
        b = best[base][0]
        cells = [f"{case} {precision} {layout}", *(f"{best[v][0]:.4f}" if v in best else "" for v in variants),
                 *(f"{(best[v][0] / b - 1) * 100:+.1f}%" if v in best else "" for v in others),
                 *(f"{best[v][1]:.1f}" if v in best else "" for v in variants)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl")
    parser.add_argument("--base", default="base", help="the variant the others are compared with")
    args = parser.parse_args(argv)
    try:
        rows = load(args.jsonl)
    except (OSError, ValueError, KeyError) as exc:
        print(f"ops_ab: cannot read {args.jsonl}: {exc}", file=sys.stderr)
        return 2
    variants = variant_names(rows)
    if args.base not in variants:
        print(f"ops_ab: no variant {args.base!r} in {args.jsonl} (found {', '.join(variants)}); pass --base NAME.",
              file=sys.stderr)
        return 2
    print("\n".join(table(rows, args.base)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
