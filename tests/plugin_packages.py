"""Writes throwaway installed-package layouts for plugin tests (no pip needed)."""

from __future__ import annotations

from pathlib import Path


def make_plugin_package(root: Path, dist: str, module: str, source: str, entry: str) -> Path:
    """Write ``module.py`` and ``<dist>-0.1.dist-info`` (METADATA, entry_points.txt) under ``root``,
    the layout pip leaves, so ``importlib.metadata`` finds the entry point once ``root`` is on sys.path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bevdeploy]\n{entry} = {module}\n")
    return root
