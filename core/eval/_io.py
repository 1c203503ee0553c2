"""Small file helpers for the evaluation layer: strict-JSON atomic writes and JSON-safe numbers (the atomic write
itself is the workspace's)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..workspace import atomic_write_bytes


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN/inf must already be replaced)."""
    return atomic_write_bytes(path, json.dumps(obj, indent=2, allow_nan=False).encode())


def finite_or_none(x: Any) -> float | None:
    """A float for JSON: NaN and infinities become None (strict JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
