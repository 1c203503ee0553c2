"""Train the demo weights on a GPU machine in one self-contained command.

Generates a larger synthetic nuScenes-format set (deterministic seed; the built-in demo set uses
seed 0, so none of its validation scenes is trained on), trains with ``bevdeploy.train`` for what
is left of the time budget (``fit_schedule``: the one-cycle schedule is shortened, from the rate
measured early in the run, to anneal by the limit; ``--nproc N`` runs it under torchrun),
evaluates FP32 on the generated validation split, and copies ``<variant>.safetensors`` (FP16) +
``<variant>.json`` (manifest) into ``--out``.

    python3 benchmarks/train_gpu.py --model bevfusion --out $OUT --budget-s 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="bevfusion")
    p.add_argument("--variant", default="tiny")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/bevdeploy-train"))
    p.add_argument("--data", type=Path, help="An existing dataroot (skips generation).")
    p.add_argument("--scenes", type=int, default=40)
    p.add_argument("--samples-per-scene", type=int, default=20)
    p.add_argument("--data-seed", type=int, default=1)
    p.add_argument("--gen-workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 3))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--budget-s", type=float, default=480.0, help="Wall time for the whole script.")
    p.add_argument("--eval-reserve-s", type=float, default=100.0, help="Kept for evaluation and export.")
    p.add_argument("--epochs", type=int, default=40,
                   help="Most epochs to run; the schedule is shortened to end within the budget (bevdeploy train "
                   "--fit-schedule), from the rate measured early in the run.")
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=4, help="torch intra-op threads of the training process.")
    p.add_argument("--init-from", type=Path, help="Continue training from these weights (fresh schedule).")
    p.add_argument("--gen-only", action="store_true", help="Only generate the dataset (for concurrent runs).")
    p.add_argument("--nproc", type=int, default=1,
                   help="Processes (GPUs) of the main run: > 1 launches `torchrun -m bevdeploy.cli train` (DDP).")
    p.add_argument("--eval-max-samples", type=int, help="Evaluate on the first N validation samples only.")
    p.add_argument("--port", type=int, default=29500, help="torchrun rendezvous port (one per concurrent run).")
    return p.parse_args()


def _log(msg: str) -> None:
    print(f"train_gpu: {msg}", file=sys.stderr, flush=True)


def _dataroot(args: argparse.Namespace) -> tuple[Path, str]:
    from bevdeploy.data.synth import DEFAULT_VERSION, generate

    if args.data is not None:
        return args.data, DEFAULT_VERSION
    root = args.work / f"synth-{args.scenes}x{args.samples_per_scene}-seed{args.data_seed}"
    if not root.exists():
        t = time.time()
        generate(root, args.scenes, args.samples_per_scene, args.data_seed, DEFAULT_VERSION, workers=args.gen_workers)
        _log(f"generated {args.scenes}x{args.samples_per_scene} samples in {time.time() - t:.0f} s into {root}")
    return root, DEFAULT_VERSION


def _config(args: argparse.Namespace, root: Path, version: str, out: Path, epochs: int, **kw):
    from bevdeploy.train import TrainConfig

    return TrainConfig(
        model=args.model, variant=args.variant, dataroot=root, version=version, epochs=epochs,
        batch_size=args.batch_size, lr=args.lr, device=args.device, workers=args.workers, out=out,
        init_from=args.init_from, eval_max_samples=args.eval_max_samples, **kw,
    )


def _torchrun(args: argparse.Namespace, root: Path, version: str, out: Path, epochs: int, limit: float, cmd: str) -> dict:
    """The main run as ``bevdeploy train`` under torchrun (one process per GPU, DDP); -> its manifest."""
    import subprocess

    argv = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc), "--master-port", str(args.port),
        "-m", "bevdeploy.cli", "train", "--model", args.model, "--variant", args.variant, "--data", str(root),
        "--version", version, "--epochs", str(epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
        "--device", args.device, "--workers", str(args.workers), "--out", str(out), "--time-limit", f"{limit:.0f}",
        "--fit-schedule", "--log-every", "25",
    ]
    if args.init_from is not None:
        argv += ["--init-from", str(args.init_from)]
    if args.eval_max_samples is not None:
        argv += ["--eval-max-samples", str(args.eval_max_samples)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    _log("main run: " + " ".join(argv[2:]))
    subprocess.run(argv, check=True, env=env)
    meta = out / f"{args.variant}.json"
    manifest = json.loads(meta.read_text())
    manifest["driver_command"] = cmd  # what generated the data and sized the schedule around this run
    meta.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> int:
    args = _args()
    start = time.time()
    import torch
    from bevdeploy.train import train

    torch.set_num_threads(args.threads)  # the DataLoader workers take the other cores
    root, version = _dataroot(args)
    if args.gen_only:
        return 0
    epochs = args.epochs
    run_out = args.work / "run"
    shutil.rmtree(run_out, ignore_errors=True)
    cmd = "python3 benchmarks/train_gpu.py " + " ".join(sys.argv[1:])
    startup = 30.0 if args.nproc > 1 else 10.0  # model, dataset index and workers before the first step
    limit = args.budget_s - (time.time() - start) - args.eval_reserve_s - startup  # the schedule is fitted to end by then
    if args.nproc > 1:
        manifest = _torchrun(args, root, version, run_out, epochs, limit, cmd)
    else:
        cfg = _config(args, root, version, run_out, epochs, log_every=25, time_limit_s=limit, fit_schedule=True)
        manifest = train(cfg, command=cmd)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (f"{args.variant}.safetensors", f"{args.variant}.json"):
        shutil.copy(run_out / name, args.out / name)
    m = manifest.get("metrics_fp32", {})
    _log(f"done in {time.time() - start:.0f} s: mAP {m.get('mAP')} NDS {m.get('NDS')}")
    print(json.dumps({"mAP": m.get("mAP"), "NDS": m.get("NDS"), "epochs": epochs, "steps": manifest["step"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
