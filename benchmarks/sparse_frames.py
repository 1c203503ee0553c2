"""Benchmark (not a test), on a CUDA GPU: BEVFusion's sparse backbone (bevdeploy.sparse) on six built-in frames
in one process, the first call on each frame against a repeat. Frame 0's first call compiles the Triton kernels;
on later frames a first call that takes much longer than its repeat is a compile stall (a kernel specialised on a
size that changed with the frame).

    python3 benchmarks/sparse_frames.py
"""

import time

import torch
from bevdeploy.data import open_dataset
from bevdeploy.plugins.bevfusion.config import get_config, with_sparse_impl
from bevdeploy.plugins.bevfusion.model import BEVFusion
from bevdeploy.plugins.bevfusion.prepare import prepare
from bevdeploy.specs.run import DataSpec


def main() -> None:
    ds = open_dataset(DataSpec(max_samples=6))
    for variant in ("tiny", "r50"):
        torch.manual_seed(0)
        m = BEVFusion(with_sparse_impl(get_config(variant), "torch")).eval().cuda()
        enc = m.encoders["lidar"]["backbone"]
        for i in range(6):
            with torch.inference_mode():
                v, c = m.voxelize(prepare(m, ds[i])["points"].cuda())
                torch.cuda.synchronize()
                t = time.perf_counter()
                enc(v, c)
                torch.cuda.synchronize()
                first = (time.perf_counter() - t) * 1e3
                t = time.perf_counter()
                enc(v, c)
                torch.cuda.synchronize()
                second = (time.perf_counter() - t) * 1e3
            print(variant, "frame", i, "voxels", v.shape[0], f"first call {first:.1f} ms, second {second:.1f} ms",
                  flush=True)


if __name__ == "__main__":
    main()
