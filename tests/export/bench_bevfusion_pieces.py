"""ORT CPU latency of BEVFusion's dense pieces, FP32 vs our ORT INT8 lowering (a benchmark, not a test).

    python3 tests/export/bench_bevfusion_pieces.py [--variant tiny] [--threads 2] [--runs 10]

Quantizes with the BEVFusion rules on one synthetic sample (speed does not depend on the
calibration's quality), exports camera.backbone and fuser for fp32 and int8 (ort flavour),
times them alternately and prints the medians, the ratio and each piece's output cosine.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ort_int8 import interleaved_medians, session  # noqa: E402
from bevdeploy.export import export_subgraph  # noqa: E402
from bevdeploy.plugins.bevfusion.model import build  # noqa: E402
from bevdeploy.plugins.bevfusion.partition import partition, run_graph  # noqa: E402
from bevdeploy.plugins.bevfusion.prepare import prepare  # noqa: E402
from bevdeploy.plugins.bevfusion.quant import quantize_bevfusion  # noqa: E402
from bevdeploy.specs.run import QuantSpec  # noqa: E402

PIECES = ("camera.backbone", "fuser")


def _sample():
    path = Path(__file__).resolve().parents[1] / "plugins" / "bevfusion" / "conftest.py"
    spec = importlib.util.spec_from_file_location("bevfusion_test_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_sample()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    fp32 = build(args.variant)
    inputs = prepare(fp32, _sample())
    qmodel = quantize_bevfusion(copy.deepcopy(fp32), [inputs], QuantSpec(num_batches=1, method="percentile"))
    values = run_graph(partition(fp32, args.variant), inputs)
    graphs = {"fp32": partition(fp32, args.variant), "int8": partition(qmodel, args.variant)}
    with tempfile.TemporaryDirectory() as tmp:
        for piece in PIECES:
            example = {n: values[n] for n in graphs["fp32"].node(piece).inputs}
            arts = {p: export_subgraph(g.node(piece), example, p, "ort", Path(tmp)) for p, g in graphs.items()}
            feed = {n: t.numpy().astype(np.float32) for n, t in example.items()}
            sessions = [session(arts[p].path, args.threads) for p in ("fp32", "int8")]
            t32, t8 = interleaved_medians(sessions, feed, args.runs)
            a, b = (s.run(None, feed)[0].ravel() for s in sessions)
            cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
            shapes = {n: tuple(t.shape) for n, t in example.items()}
            print(f"{args.variant} {piece} {shapes} threads {args.threads}: fp32 {t32:.1f} ms, int8 {t8:.1f} ms, "
                  f"speedup {t32 / t8:.2f}x, output cosine {cos:.4f}")
    print(f"onnxruntime {ort.__version__}")


if __name__ == "__main__":
    main()
