"""Atomic ONNX writes and the facts recorded about a graph (checker, Q/DQ counts)."""

from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from ..errors import BevDeployError


def save_atomic(model: onnx.ModelProto, path: str | Path) -> Path:
    """Check the graph fully, then write it through a temp file + rename, so a reader never
    trusts half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:  # an exporter/lowering bug, not a user error
        raise RuntimeError(f"exported graph for {path.name} fails onnx.checker: {e}") from e
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise BevDeployError(f"cannot write {path}: {e.strerror}; check the output folder") from e
    return path


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Node count per op type (domain-qualified for custom domains)."""
    counts: collections.Counter[str] = collections.Counter()
    for node in model.graph.node:
        counts[f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type] += 1
    return dict(sorted(counts.items()))


def graph_meta(model: onnx.ModelProto) -> dict[str, Any]:
    """Opset, I/O element types and the Q/DQ node counts the report and tests look at."""
    counts = op_counts(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)

    def dtype(vi: onnx.ValueInfoProto) -> str:
        return onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name

    return {
        "opset": opset,
        "inputs": {vi.name: dtype(vi) for vi in model.graph.input},
        "outputs": {vi.name: dtype(vi) for vi in model.graph.output},
        "quantize_linear": counts.get("QuantizeLinear", 0),
        "dequantize_linear": counts.get("DequantizeLinear", 0),
        "nodes": sum(counts.values()),
        "op_counts": counts,
    }
