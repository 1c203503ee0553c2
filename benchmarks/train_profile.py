"""Where a training step's time goes (benchmark, not a test): a few real steps of ``bevdeploy
train`` under torch.profiler, then the top ops by self CUDA time and by self CPU time, and the
step rate the loop itself logged. Written to find the bottleneck of the GPU training rate.

    python3 benchmarks/train_profile.py --data DIR --out $OUT/profile.txt --steps 12
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bevfusion")
    p.add_argument("--variant", default="tiny")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--version", default="v1.0-synth")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--device", default="cuda")
    p.add_argument("--init-from", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()

    import torch
    from bevdeploy.train import TrainConfig, train
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(args.threads)
    cfg = TrainConfig(model=args.model, variant=args.variant, dataroot=args.data, version=args.version, epochs=1,
                      batch_size=args.batch_size, device=args.device, workers=args.workers,
                      out=Path("/tmp/bevdeploy-profile"), init_from=args.init_from, val_split="",
                      max_steps=args.steps, log_every=2)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    t = time.perf_counter()
    with profile(activities=activities) as prof:
        train(cfg)
    wall = time.perf_counter() - t
    lines = [f"{args.steps} steps of batch {args.batch_size} ({args.model} {args.variant}) in {wall:.1f} s "
             f"wall, setup included; {args.workers} loader workers, {args.threads} threads"]
    for key in ("self_cuda_time_total", "self_cpu_time_total"):
        if key == "self_cuda_time_total" and ProfilerActivity.CUDA not in activities:
            continue
        lines += ["", f"== top ops by {key}", prof.key_averages().table(sort_by=key, row_limit=25)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[:1] + lines[1:4]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
