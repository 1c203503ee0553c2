"""Generation is deterministic, atomic, cached, and reachable from the command line."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bevdeploy import BevDeployError
from bevdeploy.data import builtin, synth
from bevdeploy.data.cli import add_subcommands
from bevdeploy.data.synth import MARKER, generate

SMALL = (320, 180)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    """Same seed: identical trees, whether scenes are simulated in one process or two."""
    a = generate(tmp_path / "a", 2, 2, seed=7, image_size=SMALL, workers=1)
    b = generate(tmp_path / "b", 2, 2, seed=7, image_size=SMALL, workers=2)
    c = generate(tmp_path / "c", 2, 2, seed=8, image_size=SMALL, workers=1)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert len(da) > 40 and da == db
    assert da[f"{synth.DEFAULT_VERSION}/sample_annotation.json"] != dc[f"{synth.DEFAULT_VERSION}/sample_annotation.json"]


def test_interrupted_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = synth.simulate_scene
    calls = []

    def interrupted(job):
        calls.append(job.index)
        if job.index == 1:  # scene 0's files are on disk by now
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(synth, "simulate_scene", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "out", 2, 2, seed=0, image_size=SMALL, workers=1)
    assert calls == [0, 1]
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary folder


def test_existing_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(BevDeployError, match="already exists"):
        generate(tmp_path / "out", 1, 2, seed=0, image_size=SMALL)
    with pytest.raises(BevDeployError, match="samples per scene >= 2"):
        generate(tmp_path / "other", 1, 1, seed=0)


def test_builtin_cache_reused_and_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEVDEPLOY_CACHE", str(tmp_path / "env-cache"))
    assert builtin.cache_root() == tmp_path / "env-cache"
    root, version = builtin.builtin_dataroot(scenes=1, samples_per_scene=2, image_size=SMALL)
    assert root.parent == tmp_path / "env-cache" and version == synth.DEFAULT_VERSION
    marker = json.loads((root / MARKER).read_text())
    assert marker["generator_version"] == synth.GENERATOR_VERSION and marker["seed"] == 0
    generated = []
    monkeypatch.setattr(builtin, "generate", lambda *a, **k: generated.append(a) or generate(*a, **k))
    assert builtin.builtin_dataroot(scenes=1, samples_per_scene=2, image_size=SMALL)[0] == root
    assert generated == []  # reused
    (root / MARKER).unlink()  # a tree without its completion marker is not trusted
    assert builtin.builtin_dataroot(scenes=1, samples_per_scene=2, image_size=SMALL)[0] == root
    assert len(generated) == 1 and (root / MARKER).is_file()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="cmd", required=True))
    return parser.parse_args(argv)


def test_cli_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    args = _parse(["synth", "--out", str(out), "--scenes", "1", "--samples-per-scene", "2", "--seed", "3",
                   "--image-size", "320x180", "--workers", "1"])
    assert args.func(args) == 0
    assert "wrote 1 scenes x 2 samples" in capsys.readouterr().out
    marker = json.loads((out / MARKER).read_text())
    assert marker["seed"] == 3 and marker["image_size"] == [320, 180]
    with pytest.raises(BevDeployError, match="already exists"):
        args.func(args)
    with pytest.raises(SystemExit):
        _parse(["synth", "--out", str(out), "--image-size", "big"])


def test_cli_show(synth: tuple[Path, str], tmp_path: Path) -> None:
    pytest.importorskip("bevdeploy.eval.viz", reason="the visualisation (core/eval/viz.py) is not installed")
    root, version = synth
    out = tmp_path / "show.png"
    args = _parse(["show", "--data", str(root), "--version", version, "--split", "synth_val", "--out", str(out)])
    assert args.func(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_concurrent_first_use_generates_once(tmp_path: Path) -> None:
    """Two processes asking for the same uncached set: one generates, the other waits and reuses."""
    code = (
        "from bevdeploy.data.builtin import builtin_dataroot\n"
        "root, _ = builtin_dataroot(scenes=1, samples_per_scene=2, image_size=(320, 180), workers=1)\n"
        "print('ROOT', root)\n"
    )
    env = {**os.environ, "BEVDEPLOY_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    roots = {line.split(" ", 1)[1] for out in outs for line in out.splitlines() if line.startswith("ROOT ")}
    assert len(roots) == 1 and (Path(roots.pop()) / MARKER).is_file()
    assert sum(out.count("generating the built-in") for out in outs) == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".stale-" in p.name]
