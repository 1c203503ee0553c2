"""The calibration table: amax per quantizer as JSON, so a later run reuses a calibration.

Format: ``{quantizer_name: {"amax": [floats], "axis": int | None, "num_bits": 8, "enabled": bool}}``
with names from ``named_modules()`` (a shared quantizer appears once, under its first name).
Per-channel amaxes are flattened; their shape is rebuilt from the quantizer's axis and the size.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import BevDeployError
from .calibrate import weight_quantizers
from .modules import named_quantizers, set_amax


def _axis(q) -> int | None:
    if q.axis is None:
        return None
    axes = q.axis if isinstance(q.axis, (list, tuple)) else [q.axis]
    return int(axes[0])


def calib_table(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every quantizer's amax, axis, bit width and whether it is enabled."""
    table: dict[str, dict[str, Any]] = {}
    for name, q in named_quantizers(model):
        amax = q.amax
        table[name] = {
            "amax": [] if amax is None else [float(v) for v in amax.detach().reshape(-1).tolist()],
            "axis": _axis(q),
            "num_bits": int(q.num_bits),
            "enabled": not q._disabled,
        }
    return table


def save_calib_table(table: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Write the table atomically (temp file + rename): a crash never leaves half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(table, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise BevDeployError(f"calibration table {path} does not exist; calibrate first or pass another path") from e
    except json.JSONDecodeError as e:
        raise BevDeployError(f"calibration table {path} is not valid JSON ({e}); delete it to recalibrate") from e
    if not isinstance(table, dict):
        raise BevDeployError(f"calibration table {path} is not a JSON object; delete it to recalibrate")
    return table


def load_calib_table(model: nn.Module, path: str | Path) -> int:
    """Restore amaxes (and enabled flags) from ``path`` into a model with quantizers inserted.

    The table must name exactly the model's quantizers with matching axis and size; otherwise
    the model changed since calibration and the table is refused. Returns the count restored.
    """
    path = Path(path)
    table = _read(path)
    quantizers = dict(named_quantizers(model))
    weights = weight_quantizers(model)
    missing = sorted(set(quantizers) - set(table))
    extra = sorted(set(table) - set(quantizers))
    if missing or extra:
        raise BevDeployError(
            f"calibration table {path} does not fit the model (missing {missing[:3]}, unexpected {extra[:3]});"
            " delete it to recalibrate"
        )
    for name, q in quantizers.items():
        entry = table[name]
        values = torch.tensor(entry.get("amax", []), dtype=torch.float32)
        if entry.get("axis") != _axis(q) or int(entry.get("num_bits", 8)) != q.num_bits:
            raise BevDeployError(f"calibration table {path}: {name} has another axis or bit width; delete it to recalibrate")
        if values.numel() == 0:
            q.disable()
            continue
        set_amax(q, _shaped(q, values, name, path, weights.get(id(q))))
        if entry.get("enabled", True):
            q.enable()
            q.disable_calib()
            q.enable_quant()
        else:
            q.disable()
    return len(quantizers)


def _shaped(q, values: torch.Tensor, name: str, path: Path, weight: torch.Tensor | None) -> torch.Tensor:
    """Per-tensor amax as a scalar; per-channel as the full-rank broadcast shape calibration makes."""
    if q.axis is None:
        if values.numel() != 1:
            raise BevDeployError(f"calibration table {path}: {name} should hold one amax; delete it to recalibrate")
        return values.reshape(())
    axis = _axis(q)
    rank = weight.dim() if weight is not None else axis + 1
    if weight is not None and weight.shape[axis] != values.numel():
        raise BevDeployError(
            f"calibration table {path}: {name} has {values.numel()} channels, the model {weight.shape[axis]};"
            " delete it to recalibrate"
        )
    shape = [1] * rank
    shape[axis] = values.numel()
    return values.reshape(shape)
