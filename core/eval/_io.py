"""Small file helpers for the evaluation layer: atomic writes and JSON-safe numbers."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename, so that an
    interrupted write never leaves a half file that a later run would trust."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN/inf must already be replaced)."""
    return atomic_write_bytes(path, json.dumps(obj, indent=2, allow_nan=False).encode())


def finite_or_none(x: Any) -> float | None:
    """A float for JSON: NaN and infinities become None (strict JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
