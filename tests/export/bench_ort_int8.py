"""ORT CPU speed of the ORT-lowered INT8 graph vs FP32 on a ResNet-style net (a benchmark, not a test).

    python3 tests/export/bench_ort_int8.py [--width 16] [--threads 2] [--runs 30]

Prints the median latency of each and the FP32/INT8 ratio, and the integer kernels ORT fused.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quant"))
from bevdeploy.export import export_onnx  # noqa: E402
from bevdeploy.quant import generic_quantize  # noqa: E402
from bevdeploy.specs.run import QuantSpec  # noqa: E402
from quantnets import tiny_resnet  # noqa: E402


def session(path: Path, threads: int, optimized: Path | None = None) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if optimized is not None:
        so.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def interleaved_medians(sessions: list[ort.InferenceSession], feed: dict, runs: int) -> list[float]:
    """Median ms per session, runs alternating between sessions so load changes hit both alike."""
    for s in sessions:
        for _ in range(3):
            s.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for i, s in enumerate(sessions):
            t = time.perf_counter()
            s.run(None, feed)
            times[i].append((time.perf_counter() - t) * 1e3)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--shape", default="1,3,256,704")
    ap.add_argument("--no-deblock", action="store_true", help="ResNet stages only (no ConvTranspose)")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    g = torch.Generator().manual_seed(0)
    calib = [{"img": torch.randn(*shape, generator=g)} for _ in range(2)]
    fp32_model = tiny_resnet(args.width, deblock=not args.no_deblock)
    qmodel = generic_quantize(tiny_resnet(args.width, deblock=not args.no_deblock), calib, QuantSpec(num_batches=2, method="percentile"))
    x = calib[0]["img"]
    with tempfile.TemporaryDirectory() as tmp:
        p32, p8, opt = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx"), Path(tmp, "int8.opt.onnx")
        export_onnx(fp32_model, (x,), ["img"], ["out"], p32, "fp32", "ort")
        export_onnx(qmodel, (x,), ["img"], ["out"], p8, "int8-fp32", "ort")
        feed = {"img": x.numpy().astype(np.float32)}
        s32, s8 = session(p32, args.threads), session(p8, args.threads, optimized=opt)
        t32, t8 = interleaved_medians([s32, s8], feed, args.runs)
        fused = sorted({n.op_type for n in onnx.load(opt).graph.node if n.op_type.startswith("QLinear")})
    print(f"net TinyResNet(width={args.width}, deblock={not args.no_deblock}) input {shape} threads {args.threads} runs {args.runs}")
    print(f"fp32 {t32:.1f} ms  int8(ort qdq) {t8:.1f} ms  speedup {t32 / t8:.2f}x  fused {fused}")


if __name__ == "__main__":
    main()
