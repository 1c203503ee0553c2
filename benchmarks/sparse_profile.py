"""Profile (not a test): where BEVFusion's sparse LiDAR backbone spends its time on a CUDA GPU, with the
sparse implementation found there (bevdeploy.sparse's torch one where spconv is not installed). Prints the mean
forward time over 10 calls on one built-in frame, then torch.profiler's top ops by GPU and by CPU time over 3 calls,
for tiny and r50 (random weights). Session 30's profile (sort-based rulebooks, gather + GEMM convs) is
results/sparse-profile-h100-s30.txt; session 31's (hashed rulebooks, fused convs) results/sparse-profile-h100-s31.txt.

    python3 benchmarks/sparse_profile.py > benchmarks/results/sparse-profile-h100-s31.txt
"""
import torch
from bevdeploy.data import open_dataset
from bevdeploy.plugins.bevfusion.model import build
from bevdeploy.plugins.bevfusion.prepare import prepare
from bevdeploy.specs.run import DataSpec
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    ds = open_dataset(DataSpec(max_samples=2))
    for variant in ("tiny", "r50"):
        m = build(variant).cuda()
        inp = {k: v.cuda() for k, v in prepare(m, ds[0]).items()}
        with torch.inference_mode():
            voxels, coords = m.voxelize(inp["points"])
            enc = m.encoders["lidar"]["backbone"]
            for _ in range(3):
                enc(voxels, coords)
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(10):
                enc(voxels, coords)
            end.record()
            torch.cuda.synchronize()
            print(variant, "voxels", voxels.shape[0], "backbone ms", start.elapsed_time(end) / 10)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(3):
                    enc(voxels, coords)
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=50))
            print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=50))


if __name__ == "__main__":
    main()
