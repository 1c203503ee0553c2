"""Benchmark (not a test), on the CPU: BEVFusion's sparse LiDAR backbone on one built-in frame (random weights).

    python3 benchmarks/sparse_cpu.py [--variant tiny] [--calls 5]

1. Tensor ops of one forward by part, on the code path CUDA took before the Triton kernels (sort-based rulebooks,
   gather + GEMM convs): the rulebook builders' ops, the convs', the rest. On a GPU each op is about one kernel
   launch, which is what bound the backbone there once its convs were fused (benchmarks/NOTES-sparse.md).
2. Time per forward of spconv 2.x (where it imports) and of bevdeploy.sparse, same weights, calls alternating,
   median of ``--calls`` each, and the largest difference between their outputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter

import torch
from bevdeploy.data import open_dataset
from bevdeploy.plugins.bevfusion.config import get_config, with_sparse_impl
from bevdeploy.plugins.bevfusion.model import BEVFusion
from bevdeploy.plugins.bevfusion.prepare import prepare
from bevdeploy.sparse import conv as sparse_conv
from bevdeploy.sparse import resolve_impl
from bevdeploy.specs.run import DataSpec
from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched, under the tag of the part that is running."""

    def __init__(self):
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.part = "other"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[self.part] += 1
        return func(*args, **(kwargs or {}))

    def tagged(self, fn, part):
        def run(*args, **kwargs):
            outer, self.part = self.part, part
            try:
                return fn(*args, **kwargs)
            finally:
                self.part = outer

        return run


def count_ops(encoder, voxels, coords) -> dict[str, int]:
    counter = OpCounter()
    saved = (sparse_conv.submanifold_rulebook, sparse_conv.regular_rulebook, sparse_conv.gather_gemm_scatter)
    sparse_conv.submanifold_rulebook = counter.tagged(saved[0], "submanifold rulebooks")
    sparse_conv.regular_rulebook = counter.tagged(saved[1], "strided rulebooks")
    sparse_conv.gather_gemm_scatter = counter.tagged(sparse_conv.gather_gemm, "convs")  # the CUDA path's convs
    try:
        with torch.inference_mode(), counter:
            encoder(voxels, coords)
    finally:
        sparse_conv.submanifold_rulebook, sparse_conv.regular_rulebook, sparse_conv.gather_gemm_scatter = saved
    return {**counter.counts, "total": sum(counter.counts.values())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="tiny")
    p.add_argument("--calls", type=int, default=5)
    args = p.parse_args()
    ds = open_dataset(DataSpec(max_samples=1))
    impls = ["torch"] + (["spconv"] if resolve_impl("auto") == "spconv" else [])
    encoders, model = {}, None
    for impl in impls:
        torch.manual_seed(0)
        model = BEVFusion(with_sparse_impl(get_config(args.variant), impl)).eval()
        encoders[impl] = model.encoders["lidar"]["backbone"]
    for impl in impls[1:]:
        encoders[impl].load_state_dict(encoders["torch"].state_dict())
    with torch.inference_mode():
        voxels, coords = model.voxelize(prepare(model, ds[0])["points"])
    result = {"variant": args.variant, "voxels": int(voxels.shape[0]), "ops": count_ops(encoders["torch"], voxels, coords)}
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    with torch.inference_mode():
        outs = {impl: e(voxels, coords) for impl, e in encoders.items()}
        for _ in range(args.calls):
            for impl, e in encoders.items():
                t = time.perf_counter()
                e(voxels, coords)
                times[impl].append((time.perf_counter() - t) * 1e3)
    result["ms"] = {impl: [round(t, 1) for t in ts] for impl, ts in times.items()}
    result["median_ms"] = {impl: round(statistics.median(ts), 1) for impl, ts in times.items()}
    if "spconv" in outs:
        result["max_abs_difference"] = float((outs["spconv"] - outs["torch"]).abs().max())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
