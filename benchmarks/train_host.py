"""Host-side costs of a training step, the numbers that decide whether training is bound by the
DataLoader or by the training process (run it first on a GPU machine, before a long run).

    python3 benchmarks/train_host.py --model bevdet --workers 14 --batch-size 16

Reports, on the built-in set (or --data): the time one worker spends per sample in augmentation
+ ``prepare`` and in the spec's ``targets``; the DataLoader's delivered samples/s with
``--workers`` processes (no model step: the ceiling the loader puts on training); and the number
of top-level torch ops of one training step (forward + backward; the sparse conv on its CUDA code
path), which times the per-op launch cost is the training process's own host time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bevdet")
    p.add_argument("--variant", default="tiny")
    p.add_argument("--data", help="nuScenes-format dataroot (default: the built-in set)")
    p.add_argument("--version", default="v1.0-synth")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=12, help="Batches timed through the DataLoader.")
    return p.parse_args()


def main() -> int:
    args = _args()

    import bevdeploy.sparse.conv as sparse_conv
    from bevdeploy.data.augment import AugmentConfig
    from bevdeploy.data.builtin import builtin_dataroot
    from bevdeploy.data.nuscenes import NuScenesDataset
    from bevdeploy.manager import registered_models
    from bevdeploy.train.data import TrainSamples, batches, epoch_order, limit_threads, loader

    limit_threads(1)
    spec = registered_models()[args.model]
    root = args.data or builtin_dataroot()[0]
    ds = NuScenesDataset(root, args.version, "synth_train", sweeps=9 if "lidar" in spec.modalities else 0)
    model = spec.build(args.variant).train()
    if hasattr(model.cfg, "lidar"):  # the pure-PyTorch sparse conv, as on a GPU machine without spconv
        from bevdeploy.plugins.bevfusion.config import with_sparse_impl
        from bevdeploy.plugins.bevfusion.model import BEVFusion

        model = BEVFusion(with_sparse_impl(model.cfg, "torch")).train()
    plain = TrainSamples(ds, spec.prepare, model, AugmentConfig(), 0)
    plain[(0, 0)]  # warm caches
    n = min(8, len(ds))
    t = time.perf_counter()
    items = [plain[(0, i)] for i in range(n)]
    prepare_s = (time.perf_counter() - t) / n
    targets_s = None
    if spec.targets is not None:
        t = time.perf_counter()
        for _, sample in items:
            spec.targets(model, sample)
        targets_s = (time.perf_counter() - t) / n
    data = TrainSamples(ds, spec.prepare, model, AugmentConfig(), 0, spec.targets)
    keys = batches(epoch_order(len(ds), 0, 0), 0, args.batch_size)
    keys = (keys * (1 + args.batches // max(len(keys), 1)))[: args.batches + 1]
    count, t1 = 0, None
    for i, (inputs, _) in enumerate(loader(data, keys, args.workers)):
        if i == 0:
            t1 = time.perf_counter()  # after start-up and the first batch
        else:
            count += len(inputs)
    loader_rate = count / (time.perf_counter() - t1)
    sparse_conv.gather_gemm_scatter = sparse_conv.gather_gemm  # count the CUDA code path's ops
    batch = [data[(0, i % len(ds))] for i in range(args.batch_size)]
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss = sum(spec.loss(model, [b[0] for b in batch], [b[1] for b in batch]).values())
        loss.backward()
    top = [e for e in prof.events() if e.cpu_parent is None]
    out = {
        "model": f"{args.model}-{args.variant}", "workers": args.workers, "batch_size": args.batch_size,
        "prepare_ms_per_sample": round(prepare_s * 1e3, 1),
        "targets_ms_per_sample": None if targets_s is None else round(targets_s * 1e3, 2),
        "loader_samples_per_s": round(loader_rate, 1),
        "step_top_level_ops": len(top), "step_most_common_ops": Counter(e.name for e in top).most_common(5),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
