"""The ``bevdeploy`` command: run, compare, and what is installed (plugins, models, ops, backends, data).

A :class:`~bevdeploy.errors.BevDeployError` prints as one line on stderr and exits with code 2;
``--debug`` shows its traceback. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import BevDeployError

# torch's OpenMP workers spin after each op and starve ONNX Runtime's threads (and vice versa)
# when the two alternate, as ops and engines do in a DeployGraph: measured 15 ms -> 0.3 ms for a
# small op between ORT engines. Must be set before torch is imported, so torch is imported lazily.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXIT_USER_ERROR = 2
PRECISIONS = ("fp32", "fp16", "int8", "int8-fp32")  # = bevdeploy.graph.PRECISIONS, without importing torch


def _add_run_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("--models", required=True, help="Comma-separated model names, e.g. bevfusion,bevdet.")
        p.add_argument("--precisions", default="fp32,fp16,int8", help="Comma-separated precisions.")
    else:
        p.add_argument("--model", required=True, help="Registered model name (see `bevdeploy models`).")
        p.add_argument("--precision", default="fp32", help=f"One of {', '.join(PRECISIONS)}.")
        p.add_argument("--checkpoint", type=Path, help="Weights: .safetensors or a torch state dict.")
    p.add_argument("--variant", help="Model variant; default: the model's demo variant.")
    p.add_argument("--data", type=Path, help="nuScenes dataroot; default: the built-in synthetic set.")
    p.add_argument("--version", dest="data_version", help="Table folder in the dataroot, e.g. v1.0-mini.")
    p.add_argument("--split", help="Split evaluated; default: the dataset's validation split.")
    p.add_argument("--max-samples", type=int, help="Evaluate only the first N samples of the split.")
    p.add_argument("--backend", default="onnxruntime", help="Inference backend (see `bevdeploy backends`).")
    p.add_argument("--calib-method", choices=("max", "entropy", "percentile", "mse"), help="Activation amax.")
    p.add_argument("--calib-batches", type=int, help="Calibration samples (batch 1).")
    p.add_argument("--calib-split", help="Split calibration samples come from; default: the calibration split.")
    p.add_argument("--keep-fp", action="append", metavar="GLOB",
                   help="Module-name glob kept in floating point under int8, on top of the model's own rules "
                   "(repeatable; `bevdeploy sensitivity` prints a list that meets a budget).")
    p.add_argument("--out", type=Path, help="Workspace folder; default: ./bevdeploy-runs/<model>-...-<spec hash>.")
    p.add_argument("--force", action="store_true", help="Rebuild every artifact instead of reusing valid ones.")
    p.add_argument("--json", action="store_true", help="Print report.json instead of the table.")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="Show tracebacks of user errors too.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bevdeploy", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="Show tracebacks of user errors too.")
    parser.add_argument("-V", "--version", action="version", version=f"bevdeploy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("run", help="Quantize, partition, export, build, infer, evaluate and report one model.")
    _add_run_args(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("compare", help="Run (or reuse) models x precisions and print one side-by-side table.")
    _add_run_args(p, many=True)
    p.set_defaults(func=cmd_compare)
    for name, func, text in (
        ("plugins", cmd_plugins, "Plugins with version and hooks; plugins that failed to load, with why."),
        ("models", cmd_models, "Registered model families and their variants."),
        ("ops", cmd_ops, "Registered custom operators."),
        ("backends", cmd_backends, "Registered backends and whether they can run here."),
    ):
        sub.add_parser(name, help=text).set_defaults(func=func)
    _add_data(sub)
    _add_train(sub)
    _add_sensitivity(sub)
    return parser


def _add_sensitivity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sensitivity", help="Quantize, then one quantized layer at a time vs FP32; layers to keep in FP.")
    _add_run_args(p)
    p.add_argument("--metric", choices=("fidelity", "nds"), default="fidelity", help="What ranks the layers.")
    p.add_argument("--min-cosine", type=float, help="Budget: final-output cosine vs FP32 (default 0.999 for fidelity).")
    p.add_argument("--max-nds-drop", type=float, help="Budget: NDS drop vs FP32 (default 0.005 for nds).")
    p.add_argument("--samples", type=int, default=4, help="Evaluation samples measured per layer.")
    p.add_argument("--group-depth", type=int, help="Profile groups of layers by their first N name components.")
    p.add_argument("--seed", type=int, default=0, help="Seed for everything random.")
    p.set_defaults(func=cmd_sensitivity)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="Train a model on a nuScenes-format dataroot (default: the built-in set).")
    p.add_argument("--model", required=True, help="Registered model name with a training loss.")
    p.add_argument("--variant", help="Model variant; default: the model's demo variant.")
    p.add_argument("--data", type=Path, help="nuScenes dataroot; default: the built-in synthetic set.")
    p.add_argument("--version", dest="data_version", help="Table folder in the dataroot, e.g. v1.0-trainval.")
    p.add_argument("--split", help="Training split; default: synth_train (synthetic) or train.")
    p.add_argument("--val-split", help="Split evaluated at the end; default: the dataset's validation split; '' skips.")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2, help="Samples per step and process.")
    p.add_argument("--lr", type=float, default=1e-3, help="Peak learning rate of the one-cycle schedule.")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA.")
    p.add_argument("--max-samples", type=int, help="Train on the first N samples only.")
    p.add_argument("--eval-max-samples", type=int, help="Evaluate on the first N validation samples only.")
    p.add_argument("--save-every", type=int, default=0, help="Steps between resumable checkpoints (0: per epoch).")
    p.add_argument("--out", type=Path, required=True, help="Folder for checkpoints, weights and manifest.")
    p.add_argument("--resume", action="store_true", help="Continue from the state in --out.")
    p.add_argument("--init-from", type=Path, help="Start from these weights (fine-tuning) with a fresh schedule.")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: each rank its local GPU).")
    p.add_argument("--time-limit", type=float, help="Stop training after this many seconds, then export and evaluate.")
    p.add_argument("--fit-schedule", action="store_true",
                   help="With --time-limit: shorten the schedule so that it ends at the limit, from the rate measured "
                   "over 5-10%% of it (--epochs is then the most it may run).")
    p.add_argument("--stop-after", type=float,
                   help="Pause after this many seconds of this invocation: save the resumable state and exit "
                   "(no evaluation); --resume continues, with --time-limit counting the time already trained.")
    p.add_argument("--log-every", type=int, default=10, help="Steps between progress lines.")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        model=args.model, variant=args.variant, dataroot=args.data, version=args.data_version, split=args.split,
        val_split=args.val_split, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, workers=args.workers,
        seed=args.seed, amp=args.amp, max_samples=args.max_samples, eval_max_samples=args.eval_max_samples,
        save_every=args.save_every, out=args.out, device=args.device, init_from=args.init_from,
        time_limit_s=args.time_limit, fit_schedule=args.fit_schedule, log_every=args.log_every,
        stop_after_s=args.stop_after,
    )
    manifest = train(cfg, resume=args.resume, command=" ".join(["bevdeploy", *sys.argv[1:]]))
    if manifest.get("metrics_fp32"):
        m = manifest["metrics_fp32"]
        print(f"mAP {m['mAP']:.4f} NDS {m['NDS']:.4f}")
    if manifest.get("weights"):
        print(f"weights: {args.out / manifest['weights']}")
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    try:
        data_cli = importlib.import_module("bevdeploy.data.cli")
    except ImportError:
        return
    p = sub.add_parser("data", help="Built-in dataset: generate, show samples.")
    data_cli.add_subcommands(p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True))


def _spec(args: argparse.Namespace, model: str, precision: str):
    from .specs.run import DataSpec, QuantSpec, RunSpec

    data = {"dataroot": args.data, "split": args.split, "max_samples": args.max_samples}
    if args.data_version:
        data["version"] = args.data_version
    quant = {k: v for k, v in (("method", args.calib_method), ("num_batches", args.calib_batches),
                               ("calib_split", args.calib_split), ("keep_fp", args.keep_fp)) if v is not None}
    if precision not in PRECISIONS:
        raise BevDeployError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    try:
        return RunSpec(model=model, variant=args.variant, checkpoint=getattr(args, "checkpoint", None),
                       precision=precision, backend=args.backend, data=DataSpec(**data), quant=QuantSpec(**quant))
    except Exception as exc:  # pydantic ValidationError: a bad value the user typed
        first = str(exc).splitlines()
        raise BevDeployError(f"invalid option: {' '.join(first[1:3]).strip() or first[0]}") from exc


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run
    from .report import format_markdown

    result = run(_spec(args, args.model, args.precision), out=args.out, force=args.force)
    if args.json:
        print((result.workspace / "report.json").read_text(), end="")
    else:
        print(format_markdown(result.report), end="")
        print(f"report: {result.workspace / 'report.json'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .pipeline import run
    from .report import compare_table
    from .workspace import atomic_write_json, atomic_write_text, text_sha256

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    specs = [_spec(args, m, p) for m in models for p in precisions]  # validate every name before running
    reports = []
    for spec in specs:
        out = args.out / f"{spec.model}-{spec.precision}" if args.out else None
        print(f"== {spec.model} {spec.precision} on {spec.backend}", file=sys.stderr)
        reports.append(run(spec, out=out, force=args.force).report)
    table = compare_table(reports)
    root = args.out or Path("bevdeploy-runs") / f"compare-{text_sha256(repr([s.model_dump_json() for s in specs]))[:10]}"
    atomic_write_text(Path(root) / "compare.md", table)
    atomic_write_json(Path(root) / "compare.json", [json.loads(r.model_dump_json()) for r in reports])
    if args.json:
        print(json.dumps([json.loads(r.model_dump_json()) for r in reports], indent=2))
    else:
        print(table, end="")
        print(f"compare: {Path(root) / 'compare.md'}")
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from .quant.sensitivity import Budget, format_table, run_sensitivity
    from .workspace import atomic_write_json

    spec = _spec(args, args.model, "int8").model_copy(update={"seed": args.seed})
    budget = None
    if args.min_cosine is not None or args.max_nds_drop is not None:
        budget = Budget(min_cosine=args.min_cosine, max_nds_drop=args.max_nds_drop)
    result = run_sensitivity(spec, args.metric, budget, args.samples, args.group_depth)
    folder = args.out or Path("bevdeploy-runs") / f"sensitivity-{spec.model}-{result['variant']}-seed{args.seed}"
    out = atomic_write_json(Path(folder) / "sensitivity.json", result)
    print(json.dumps(result, indent=2) if args.json else format_table(result), end="\n" if args.json else "")
    print(f"sensitivity: {out}", file=sys.stderr)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .manager import get_plugin_manager, plugin_version

    pm = get_plugin_manager()
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda x: x[0]):
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        print(f"{name} {plugin_version(pm, plugin)}: {', '.join(hooks) or '(no hooks)'}")
    for failure in pm.failures:
        print(f"{failure.name} FAILED ({failure.source}): {failure.reason}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .manager import registered_models

    for name, spec in sorted(registered_models().items()):
        print(f"{name} [{spec.plugin}]: {spec.description}")
        for variant, text in spec.variants.items():
            demo = " (demo)" if variant == spec.demo_variant else ""
            print(f"  {variant}{demo}: {text}")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from .manager import registered_ops

    for name, op in sorted(registered_ops().items()):
        names = ", ".join(f"{k}={v}" for k, v in op.onnx_names.items())
        print(f"{name} [{op.plugin}] {'/'.join(op.precisions)}: {op.description}" + (f" ({names})" if names else ""))
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    from .manager import registered_backends

    for name, b in sorted(registered_backends().items()):
        ok, reason = b.is_available()
        state = "available" if ok else f"unavailable: {reason}"
        print(f"{name} [{b.plugin}] {b.device}, int8 as {b.qdq_flavour!r}, runs {'/'.join(b.native_precisions)}: {state}")
    return 0


def _quiet_third_party_logs() -> None:
    """pytorch-quantization logs a warning through absl for every quantizer it switches (hundreds
    per calibration), and the ONNX exporter and spconv warn about their own internals; the user sees
    our progress lines and report instead, and all of it again with --debug."""
    import logging
    import warnings

    for module in (r"torch\.onnx", r"spconv", r"pytorch_quantization"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
    # the tracer's notes on static shapes: every exported piece is static by design
    warnings.filterwarnings("ignore", message=r"Converting a tensor to a Python")
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    if not getattr(args, "debug", False):
        _quiet_third_party_logs()
    try:
        return int(args.func(args) or 0)
    except BevDeployError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"bevdeploy: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("bevdeploy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
