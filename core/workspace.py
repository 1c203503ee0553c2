"""The run's folder: atomic writes and a manifest that decides which artifacts can be reused.

A file is trusted only if the manifest lists it with the current run key and its content hash
still matches. The manifest is written last (atomically) after each artifact, so an interrupted
run leaves at worst a file nobody trusts, never a half-written file that is trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Workspace:
    """One run's folder (``calib.json``, ``onnx/``, ``engines/``, ``report.json``, ``report.md``)."""

    def __init__(self, root: Path, key: str, force: bool = False):
        self.root = Path(root)
        self.key = key
        self.force = force
        self._manifest: dict[str, Any] = {"key": key, "entries": {}}

    # --- layout -------------------------------------------------------------------------
    @property
    def onnx_dir(self) -> Path:
        return self.root / "onnx"

    @property
    def engines_dir(self) -> Path:
        return self.root / "engines"

    def open(self) -> Workspace:
        """Create the folder and load the manifest; a manifest for another key (or --force) is dropped."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.onnx_dir.mkdir(exist_ok=True)
        self.engines_dir.mkdir(exist_ok=True)
        path = self.root / MANIFEST
        if path.exists() and not self.force:
            try:
                loaded = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                loaded = {}
            if loaded.get("key") == self.key and isinstance(loaded.get("entries"), dict):
                self._manifest = loaded
        return self

    # --- reuse --------------------------------------------------------------------------
    def cached(self, entry: str, input_key: str = "") -> dict[str, Any] | None:
        """The manifest record for ``entry`` if its inputs key matches and every file is intact."""
        if self.force:
            return None
        record = self._manifest["entries"].get(entry)
        if not record or record.get("input_key") != input_key:
            return None
        for rel, digest in record.get("files", {}).items():
            path = self.root / rel
            if not path.is_file() or file_sha256(path) != digest:
                return None
        return record

    def record(self, entry: str, files: list[Path], input_key: str = "", **data: Any) -> None:
        """Trust ``files`` (already in place) for ``entry`` from now on; persists the manifest."""
        hashes = {str(Path(f).resolve().relative_to(self.root.resolve())): file_sha256(f) for f in files}
        self._manifest["entries"][entry] = {"input_key": input_key, "files": hashes, **data}
        atomic_write_json(self.root / MANIFEST, self._manifest)

    def forget(self, entry: str) -> None:
        if self._manifest["entries"].pop(entry, None) is not None:
            atomic_write_json(self.root / MANIFEST, self._manifest)

    # --- staging ------------------------------------------------------------------------
    def staging(self, name: str) -> Path:
        """A fresh temp folder inside the workspace for an exporter that writes files itself."""
        return Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=self.root))

    def commit_staged(self, staged: Path, dest_dir: Path) -> dict[Path, Path]:
        """Move every file of ``staged`` into ``dest_dir`` (rename, so each appears whole) and
        remove the staging folder. Returns old path -> new path."""
        moved: dict[Path, Path] = {}
        dest_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted(p for p in staged.rglob("*") if p.is_file()):
            dst = dest_dir / src.relative_to(staged)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved[src] = dst
        shutil.rmtree(staged, ignore_errors=True)
        return moved

    def discard_staging(self) -> None:
        for p in self.root.glob(".staging-*"):
            shutil.rmtree(p, ignore_errors=True)
