"""The built-in synthetic dataset: generated on first use into a cache folder keyed by the
generator version and its parameters, then reused.

Concurrent callers (two runs, pytest-xdist workers) serialise on a lock file; generation
itself writes to a temporary folder and renames it into place, so a crash never leaves a
half dataset under the final name.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .synth import DEFAULT_VERSION, GENERATOR_VERSION, MARKER, generate

DEFAULT_SCENES, DEFAULT_SAMPLES, DEFAULT_SEED = 10, 20, 0


def cache_root() -> Path:
    """``$BEVDEPLOY_CACHE`` if set, else ``~/.cache/bevdeploy``."""
    env = os.environ.get("BEVDEPLOY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bevdeploy"


def builtin_dataroot(
    cache_dir: Path | None = None,
    scenes: int = DEFAULT_SCENES,
    samples_per_scene: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    image_size: tuple[int, int] = (1600, 900),
    workers: int | None = None,
) -> tuple[Path, str]:
    """(dataroot, version) of the built-in set, generating it if it is not cached yet.

    Tests use a small one: ``builtin_dataroot(cache_dir=tmp_path, scenes=2, samples_per_scene=3)``.
    ``workers`` only sets how many processes generate it (default: up to 2); the bytes are the same."""
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    name = f"synth-g{GENERATOR_VERSION}-{scenes}x{samples_per_scene}-seed{seed}-{image_size[0]}x{image_size[1]}"
    root = base / name
    if _complete(root, scenes, samples_per_scene, seed):
        return root, DEFAULT_VERSION
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not _complete(root, scenes, samples_per_scene, seed):
            if root.exists():  # a damaged or foreign tree under our name: set it aside, then drop it
                stale = Path(tempfile.mkdtemp(prefix=f".{name}.stale-", dir=base))
                root.rename(stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            print(f"bevdeploy: generating the built-in synthetic dataset ({scenes} scenes x "
                  f"{samples_per_scene} samples) into {root}", file=sys.stderr, flush=True)
            generate(root, scenes, samples_per_scene, seed, DEFAULT_VERSION, image_size, workers=workers,
                     progress=print_progress)
    return root, DEFAULT_VERSION


def print_progress(done: int, total: int) -> None:
    """One line per finished scene on stderr (stdout may carry a JSON report), overwritten in
    place on a terminal."""
    end = "\n" if done == total or not sys.stderr.isatty() else "\r"
    print(f"bevdeploy: synthetic scenes {done}/{total}", end=end, file=sys.stderr, flush=True)


def _complete(root: Path, scenes: int, samples: int, seed: int) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (
        marker.get("generator_version") == GENERATOR_VERSION
        and marker.get("scenes") == scenes
        and marker.get("samples_per_scene") == samples
        and marker.get("seed") == seed
    )
