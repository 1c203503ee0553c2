"""Benchmark (not a test): time to generate the default built-in synthetic dataset and its size.

    python benchmarks/data_synth.py [--scenes 10 --samples-per-scene 20 --workers 2]

Writes benchmarks/results/data_synth.json. The budget is < 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from bevdeploy.data.builtin import DEFAULT_SAMPLES, DEFAULT_SCENES, DEFAULT_SEED
from bevdeploy.data.synth import GENERATOR_VERSION, generate

RESULTS = Path(__file__).parent / "results" / "data_synth.json"


def _sizes(root: Path) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, float]] = {}
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(root).parts
        key = "/".join(rel[:2]) if rel[0] in ("samples", "sweeps") else rel[0]
        g = groups.setdefault(key, {"files": 0, "mb": 0.0})
        g["files"] += 1
        g["mb"] += p.stat().st_size / 1e6
    return {k: {"files": int(v["files"]), "mb": round(v["mb"], 1)} for k, v in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=DEFAULT_SCENES)
    parser.add_argument("--samples-per-scene", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bevdeploy-synth-bench-"))
    try:
        cpu0 = os.times()
        t0 = time.perf_counter()
        root = generate(tmp / "ds", args.scenes, args.samples_per_scene, args.seed, workers=args.workers)
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        groups = _sizes(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "generator_version": GENERATOR_VERSION,
        "scenes": args.scenes,
        "samples_per_scene": args.samples_per_scene,
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "cpu_s_children": round((cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system), 1),
        "cpu_s_main": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1),
        "total_mb": round(sum(g["mb"] for g in groups.values()), 1),
        "total_files": sum(g["files"] for g in groups.values()),
        "by_folder": groups,
        "machine": {"cpus": os.cpu_count(), "load_avg_1min_before_end": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
