"""``bevdeploy data synth`` and ``bevdeploy data show``: the data layer's commands. The main
CLI creates the ``data`` parser and calls :func:`add_subcommands` with its subparsers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import BevDeployError
from .builtin import DEFAULT_SAMPLES, DEFAULT_SCENES, DEFAULT_SEED, print_progress


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` and ``show``; each sets ``func(args) -> exit code``."""
    p = subparsers.add_parser("synth", help="Generate a synthetic nuScenes-format dataroot.")
    p.add_argument("--out", type=Path, required=True, help="Dataroot to create (must not exist).")
    p.add_argument("--scenes", type=int, default=DEFAULT_SCENES, help="Number of scenes (default %(default)s).")
    p.add_argument("--samples-per-scene", type=int, default=DEFAULT_SAMPLES,
                   help="Key frames per scene, 2 Hz (default %(default)s).")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed (default %(default)s).")
    p.add_argument("--image-size", type=_size, default=(1600, 900), help="WIDTHxHEIGHT (default 1600x900).")
    p.add_argument("--workers", type=int, default=None, help="Processes (default: up to 2).")
    p.set_defaults(func=cmd_synth)

    p = subparsers.add_parser("show", help="Render a sample's six cameras and a bird's-eye view to a PNG.")
    p.add_argument("--sample", default=None, help="Sample token (default: the split's first sample).")
    p.add_argument("--data", type=Path, default=None, help="nuScenes dataroot (default: the built-in set).")
    p.add_argument("--version", dest="data_version", default=None, help="Table folder, e.g. v1.0-trainval.")
    p.add_argument("--split", default=None, help="Split (default: the dataset's validation split).")
    p.add_argument("--out", type=Path, default=Path("sample.png"), help="PNG to write (default %(default)s).")
    p.set_defaults(func=cmd_show)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1600x900, got {text!r}") from e
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"image size {text} is too small; use at least 32x32")
    return w, h


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import DEFAULT_VERSION, generate

    started = time.perf_counter()
    root = generate(args.out, args.scenes, args.samples_per_scene, args.seed, DEFAULT_VERSION,
                    args.image_size, workers=args.workers, progress=print_progress)
    print(f"wrote {args.scenes} scenes x {args.samples_per_scene} samples to {root} "
          f"(version {DEFAULT_VERSION}) in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..specs.run import DataSpec
    from . import open_dataset

    spec = {"dataroot": args.data, "split": args.split}
    if args.data_version:
        spec["version"] = args.data_version
    dataset = open_dataset(DataSpec(**spec), "eval", sweeps=0)
    sample = dataset.get(args.sample) if args.sample else dataset[0]
    try:
        from ..eval.viz import render_sample
    except ImportError as e:
        raise BevDeployError(f"the visualisation module cannot be imported ({e}); reinstall bevdeploy") from e
    out = render_sample(sample, Path(args.out))
    print(f"wrote {out} (sample {sample.token}, scene {sample.scene_name})")
    return 0
