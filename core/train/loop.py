"""The training loop: AdamW + one-cycle LR, gradient clipping, optional bf16 autocast on CUDA,
resumable safetensors checkpoints, and data parallelism when launched by ``torchrun`` (the
environment says so; the code path is the same: each rank takes its stride of one seeded
permutation, DDP averages gradients, rank 0 writes)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import BevDeployError
from ..graph import to_device
from .config import TrainConfig
from .data import TrainSamples, batches, epoch_order, limit_threads, loader
from .state import STATE_FILE, export_weights, load_state, save_state

WARMUP = 4


class _LossModule(torch.nn.Module):
    """model + the plugin's loss as one module, so DDP sees its forward and syncs gradients."""

    def __init__(self, model: torch.nn.Module, loss) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, inputs: list[dict[str, Any]], samples: list[Any]) -> dict[str, torch.Tensor]:
        return self.loss(self.model, inputs, samples)


def _dist() -> tuple[int, int, int, bool]:
    """(rank, world size, local rank, whether we created the process group); initialises the
    process group under torchrun (NCCL with CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0, False
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")), created


def train(cfg: TrainConfig, resume: bool = False, command: str = "") -> dict[str, Any]:
    """Train ``cfg.model`` and write resumable state plus the shipped weights and manifest into
    ``cfg.out``; returns the manifest (rank 0; other ranks get an empty dict)."""
    rank, world, local, created = _dist()
    try:
        return _train(cfg, resume, command, rank, world, local)
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    dev = torch.device(cfg.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BevDeployError("--device cuda: no CUDA device here; use --device cpu")
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def _resolve(cfg: TrainConfig):
    from ..data import default_split
    from ..data.builtin import builtin_dataroot
    from ..data.nuscenes import NuScenesDataset, custom_splits
    from ..manager import registered_models

    models = registered_models()
    if cfg.model not in models:
        raise BevDeployError(f"unknown model {cfg.model!r}; choose one of {', '.join(sorted(models))}")
    spec = models[cfg.model]
    if spec.loss is None:
        raise BevDeployError(f"model {cfg.model!r} has no training loss (its plugin sets no ModelSpec.loss)")
    variant = cfg.variant or spec.demo_variant
    if variant not in spec.variants:
        raise BevDeployError(f"unknown {cfg.model} variant {variant!r}; choose one of {', '.join(spec.variants)}")
    if cfg.dataroot is None:
        root, version = builtin_dataroot()
    else:
        root, version = Path(cfg.dataroot), cfg.version or "v1.0-trainval"
    custom = custom_splits(Path(root), version)
    split = cfg.split or ("synth_train" if "synth_train" in custom else "train")
    sweeps = cfg.sweeps if "lidar" in spec.modalities else 0  # a camera-only model never reads the points
    train_ds = NuScenesDataset(root, version, split, sweeps=sweeps, max_samples=cfg.max_samples)
    val_ds = None
    if cfg.val_split != "":
        val = cfg.val_split or default_split(version, "eval", custom=custom)
        val_ds = NuScenesDataset(root, version, val, sweeps=sweeps, max_samples=cfg.eval_max_samples)
    return spec, variant, train_ds, val_ds, version


def _log(msg: str) -> None:
    print(f"bevdeploy train: {msg}", file=sys.stderr, flush=True)


@dataclass
class _Run:
    """What the step loop needs (one rank's view of the run)."""

    cfg: TrainConfig
    model: torch.nn.Module
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    data: TrainSamples
    n: int
    per_epoch: int
    total: int
    rank: int
    world: int
    device: torch.device
    out: Path
    elapsed_s: float = 0.0  # training time of earlier invocations (resumed runs)
    fitted: bool = False  # the schedule was already fitted to the time limit (resumed runs)
    paused: bool = False  # stopped by stop_after_s, to be resumed
    # what the weights descend from, kept across resumes: the first invocation's init_from and
    # every invocation's command, commit and step range (the manifest's "init_from", "slices")
    lineage: dict[str, Any] | None = None
    slices: list[dict[str, Any]] = field(default_factory=list)


def _train(cfg: TrainConfig, resume: bool, command: str, rank: int, world: int, local: int) -> dict[str, Any]:
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise BevDeployError("--epochs and --batch-size must be >= 1 and --lr > 0")
    if cfg.fit_schedule and cfg.time_limit_s is None:
        raise BevDeployError("--fit-schedule fits the schedule to --time-limit; give --time-limit SECONDS too")
    if cfg.stop_after_s is not None and cfg.stop_after_s <= 0:
        raise BevDeployError("--stop-after must be a positive number of seconds")
    device = _device(cfg, local)
    limit_threads(torch.get_num_threads())  # numpy's BLAS too, so its idle threads do not spin against the workers
    spec, variant, train_ds, val_ds, version = _resolve(cfg)
    torch.manual_seed(cfg.seed)
    model = spec.build(variant).to(device).train()
    # prepare() runs in CPU workers: give it a CPU model of its own (only its config/buffers are read)
    data = TrainSamples(train_ds, spec.prepare, spec.build(variant), cfg.augment, cfg.seed, spec.targets)
    per_epoch = -(-len(epoch_order(len(train_ds), 0, cfg.seed, rank, world)) // cfg.batch_size)
    total = per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total, pct_start=cfg.pct_start, div_factor=10.0, final_div_factor=1e3
    )
    out = Path(cfg.out)
    step, meta = _initialise(cfg, model, opt, sched, out, resume, total)
    total = sched.total_steps  # a resumed schedule may have been fitted to the time limit
    net: torch.nn.Module = _LossModule(model, spec.loss)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _log(f"{cfg.model}-{variant}: {len(train_ds)} samples, {world} process(es), batch {cfg.batch_size}/process, "
             f"{per_epoch} steps/epoch, {total} steps on {device}")
    lineage = meta["init_from"] if resume and "init_from" in meta else _lineage(cfg.init_from)
    this = {"command": command, "git_commit": _git_commit(), "steps": [step, step]}
    run = _Run(cfg, model, net, opt, sched, data, len(train_ds), per_epoch, total, rank, world, device, out,
               float(meta.get("elapsed_s", 0.0)), bool(meta.get("schedule_fitted", False)),
               lineage=lineage, slices=[*meta.get("slices", []), this])
    step, last, rate = _loop(run, step)
    if rank != 0:
        return {}
    total = run.total  # shortened by fit_schedule
    manifest = _manifest(cfg, variant, version, step, total, last, command, world, run)
    manifest["data"]["splits"] = {role: {"split": ds.split, "samples": len(ds), "scenes": list(ds.scene_names)}
                                  for role, ds in (("train", train_ds), ("val", val_ds)) if ds is not None}
    if rate is not None:
        manifest["steady_steps_per_s"] = rate
    if run.paused or (step < total and cfg.time_limit_s is None):
        why = f"paused after {cfg.stop_after_s:.0f} s" if run.paused else "max_steps"
        _log(f"stopped at step {step}/{total} ({why}); continue with --resume")
        return manifest
    return finish(model, spec, variant, val_ds, out, manifest, workers=cfg.workers)


def _initialise(cfg: TrainConfig, model, opt, sched, out: Path, resume: bool, total: int) -> tuple[int, dict]:
    """(step to start from, saved state's JSON): the saved state's (--resume), else 0 after loading
    --init-from weights or the model's own start-of-training init (e.g. a heatmap prior)."""
    if resume:
        meta = load_state(out, model, opt, sched)
        step = int(meta["step"])
        _log(f"resumed at step {step}/{sched.total_steps} from {out / STATE_FILE}")
        return step, meta
    if cfg.init_from is not None:
        from ..checkpoint import load_checkpoint

        load_checkpoint(model, cfg.init_from, getattr(model, "convert_checkpoint", None))
        _log(f"initialised from {cfg.init_from}")
    elif hasattr(model, "init_training"):
        model.init_training()
    return 0, {}


def _run_batches(run: _Run, step: int, stop: int) -> list[list[tuple[int, int]]]:
    """This rank's batches of ``(epoch, index)`` keys from global step ``step`` to ``stop``, over
    as many epochs as that spans, so one DataLoader (one set of workers) serves the whole run."""
    out: list[list[tuple[int, int]]] = []
    while step + len(out) < stop:
        epoch, first = divmod(step + len(out), run.per_epoch)
        order = epoch_order(run.n, epoch, run.cfg.seed, run.rank, run.world)
        out += batches(order, epoch, run.cfg.batch_size)[first:]
    return out[: stop - step]


def _loop(run: _Run, step: int) -> tuple[int, dict[str, float], float | None]:
    """Steps until the schedule's end, ``max_steps`` or the time limit; saves resumable state at
    epoch ends (and every ``save_every`` steps). -> (step, last loss terms, steady steps/s)."""
    cfg = run.cfg
    stop = min(run.total, cfg.max_steps) if cfg.max_steps is not None else run.total
    last: dict[str, float] = {}
    start = _now()
    t0, done0, t_warm = start - run.elapsed_s, step, None  # steady rate: timed from the WARMUP-th step on
    t_log, step_log = start, step
    keys = _run_batches(run, step, stop)
    pin = run.device.type == "cuda"
    fitting = cfg.fit_schedule and cfg.time_limit_s is not None and not run.fitted
    fit = _ScheduleFit(cfg.time_limit_s, run.elapsed_s) if fitting else None
    for inputs, samples in loader(run.data, keys, cfg.workers, cfg.seed + step // run.per_epoch, pin):
        last = _step(run.net, run.opt, run.sched, cfg, [to_device(i, run.device) for i in inputs], samples, run.device)
        step += 1
        t_warm = _now() if step - done0 == WARMUP else t_warm
        if fit is not None and fit.pending:
            stop = min(stop, fit.update(run, step, _now() - t0))
        if cfg.time_limit_s is not None and _over_time(_now() - t0 > cfg.time_limit_s, run) and step < stop:
            if run.rank == 0:
                _log(f"time limit {cfg.time_limit_s:.0f} s reached at step {step}/{run.total}; finishing early")
            stop = step
        if cfg.stop_after_s is not None and _over_time(_now() - start > cfg.stop_after_s, run) and step < stop:
            run.paused, stop = True, step
        if run.rank == 0 and (step % cfg.log_every == 0 or step == stop):
            now = _now()
            rate = (step - step_log) * cfg.batch_size * run.world / max(now - t_log, 1e-9)
            t_log, step_log = now, step
            terms = " ".join(f"{k} {v:.4f}" for k, v in last.items())
            _log(f"step {step}/{run.total} epoch {(step - 1) // run.per_epoch + 1} lr {run.sched.get_last_lr()[0]:.2e} "
                 f"{terms} ({rate:.1f} samples/s, {now - t0:.0f} s)")
        boundary = step % run.per_epoch == 0 or step == stop
        if run.rank == 0 and (boundary or (cfg.save_every and step % cfg.save_every == 0)):
            run.slices[-1]["steps"][1] = step
            save_state(run.out, run.model, run.opt, run.sched, step, {
                "config": cfg.to_json(), "world_size": run.world, "elapsed_s": _now() - t0,
                "schedule_fitted": run.fitted or (fit is not None and not fit.pending),
                "init_from": run.lineage, "slices": run.slices,
            })
        if step >= stop:
            break
    steady = (step - done0 - WARMUP) / max(_now() - t_warm, 1e-9) if t_warm and step - done0 > WARMUP else None
    return step, last, steady


def _now() -> float:
    """Seconds on a monotonic clock; the loop only takes differences of it (time limits, rates). The tests
    replace it with a clock that advances per step, so that fitted schedules are deterministic."""
    return time.monotonic()


class _ScheduleFit:
    """Shortens the one-cycle schedule so that it ends at the time limit (``fit_schedule``): the
    steady rate is measured between 5% and 10% of the limit (start-up and the batches prefetched
    during it are behind by then), and the schedule's length becomes the steps that fit in the
    time left at that rate (3% margin), never more than planned. Rank 0 measures; the length is
    broadcast, so every rank shortens it at the same step."""

    MARK, FIT, MARGIN = 0.05, 0.10, 0.97

    def __init__(self, limit_s: float, start_s: float = 0.0) -> None:
        """``start_s``: time already trained (a resumed run measures over 5-10% of what is left)."""
        self.limit, self.mark, self.pending = limit_s, None, True
        self.at = lambda frac: start_s + frac * max(limit_s - start_s, 0.0)

    def update(self, run: _Run, step: int, elapsed: float) -> int:
        """The (possibly shortened) total after ``step``; a no-op until 10% of the limit."""
        if self.mark is None and elapsed >= self.at(self.MARK):
            self.mark = (step, elapsed)
        new_total, rate = 0, float("nan")  # 0: not yet
        if self.mark is not None and elapsed >= self.at(self.FIT) and step > self.mark[0]:
            rate = (step - self.mark[0]) / max(elapsed - self.mark[1], 1e-9)
            new_total = min(run.total, max(step + 1, step + int(self.MARGIN * rate * (self.limit - elapsed))))
        new_total = _from_rank0(new_total, run)
        if not new_total:
            return run.total
        self.pending = False
        if new_total < run.total:
            _shorten(run.sched, new_total)
            if run.rank == 0:
                _log(f"schedule fitted to the time limit: {new_total} steps instead of {run.total} ({rate:.2f} steps/s)")
            run.total = new_total
        return run.total


def _shorten(sched, total: int) -> None:
    """Re-time a OneCycleLR (two-phase) in place to ``total`` steps: the warm-up keeps its share
    of the schedule and the annealing ends at the new last step (the state dict carries both)."""
    pct = (sched._schedule_phases[0]["end_step"] + 1) / sched.total_steps
    sched.total_steps = total
    sched._schedule_phases[0]["end_step"] = float(pct * total) - 1
    sched._schedule_phases[-1]["end_step"] = total - 1


def _from_rank0(value: int, run: _Run) -> int:
    if run.world == 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], device=run.device)
    dist.broadcast(t, src=0)
    return int(t.item())


def _over_time(mine: bool, run: _Run) -> bool:
    """Whether the run is over its time limit: rank 0's clock decides for every rank (broadcast),
    so that all ranks stop after the same step and none waits in an all-reduce forever."""
    if run.world == 1:
        return mine
    import torch.distributed as dist

    flag = torch.tensor([1 if mine else 0], device=run.device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def _step(net, opt, sched, cfg: TrainConfig, inputs, samples, device: torch.device) -> dict[str, float]:
    use_amp = cfg.amp and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        terms = net(inputs, samples)
    loss = sum(terms.values())
    if not torch.isfinite(loss):
        raise RuntimeError(f"non-finite training loss {[(k, float(v)) for k, v in terms.items()]}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    opt.step()
    sched.step()
    return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}


def _manifest(cfg: TrainConfig, variant: str, version: str, step: int, total: int, last: dict[str, float],
              command: str, world: int, run: _Run) -> dict[str, Any]:
    return {
        "model": cfg.model,
        "variant": variant,
        "step": step,
        "total_steps": total,
        "final_loss": last,
        "config": cfg.to_json(),
        "data": _data_record(cfg, version),
        "command": command,
        "git_commit": _git_commit(),
        "world_size": world,
        "torch": torch.__version__,
        "init_from": run.lineage,
        "slices": run.slices,  # one per invocation (more than one when paused and resumed)
    }


def _lineage(path: Path | None) -> dict[str, Any] | None:
    """The weights a run started from: path, sha256 and their own manifest (without metrics)."""
    if path is None:
        return None
    import json

    from ..workspace import file_sha256

    rec: dict[str, Any] = {"path": str(path), "sha256": file_sha256(path)}
    meta = Path(path).with_suffix(".json")
    if meta.is_file():
        parent = json.loads(meta.read_text())
        rec["manifest"] = {k: v for k, v in parent.items() if not k.startswith("metrics")}
    return rec


def _data_record(cfg: TrainConfig, version: str) -> dict[str, Any]:
    """Where the training data came from: the synthetic generator's marker when it made it."""
    import json

    from ..data.builtin import builtin_dataroot
    from ..data.synth import MARKER

    root = Path(cfg.dataroot) if cfg.dataroot is not None else builtin_dataroot()[0]
    rec: dict[str, Any] = {"dataroot": str(root), "version": version}
    try:
        rec["generator"] = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        rec["generator"] = None  # a real nuScenes dataroot
    return rec


def _git_commit() -> str | None:
    """HEAD of the checkout the code runs from (``$BEVDEPLOY_GIT_COMMIT`` where the copy has no .git)."""
    import subprocess

    if os.environ.get("BEVDEPLOY_GIT_COMMIT"):
        return os.environ["BEVDEPLOY_GIT_COMMIT"]

    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def finish(
    model: torch.nn.Module, spec, variant: str, val_ds, out: Path, manifest: dict[str, Any], workers: int = 0
) -> dict[str, Any]:
    """Round the weights to FP16 as shipped, evaluate that FP32 model on the validation split,
    and write ``<variant>.safetensors`` + ``<variant>.json``."""
    from .evaluate import evaluate_model
    from .state import shipped_tensors

    shipped = spec.build(variant)
    shipped.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in shipped_tensors(model).items()})
    if val_ds is not None:
        _log(f"evaluating FP32 (FP16-stored weights) on {val_ds.split} ({len(val_ds)} samples)")
        manifest["metrics_fp32"] = evaluate_model(shipped.eval(), spec, variant, val_ds, workers=workers)
        manifest["metrics_split"] = val_ds.split
        m = manifest["metrics_fp32"]
        _log(f"FP32 mAP {m['mAP']:.4f} NDS {m['NDS']:.4f}")
    path = export_weights(shipped, out, variant, manifest)
    _log(f"wrote {path} and {path.with_suffix('.json').name}")
    manifest.update(weights=path.name)
    return manifest
