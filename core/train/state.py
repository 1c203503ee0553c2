"""Checkpoints of a training run, all safetensors + JSON (nothing is unpickled):

- ``train_state.safetensors`` + ``train_state.json``: the resumable state, FP32 model weights and
  buffers (``model.*``), the optimizer's per-parameter tensors (``optim.<i>.<key>``) and the torch
  RNG; the JSON holds the step, the optimizer's param groups and the scheduler's state.
- ``<variant>.safetensors`` + ``<variant>.json``: the weights as shipped (floating tensors in FP16,
  loaded into the FP32 model) and their manifest, with the sha256 of the weights file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import BevDeployError
from ..workspace import atomic_write_json, file_sha256

STATE_FILE, STATE_JSON = "train_state.safetensors", "train_state.json"


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """save_file into a temporary name, then rename: a crash never leaves a torn checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, bool | int | float | str) or obj is None:
        return obj
    return repr(obj)


def save_state(out: Path, model: torch.nn.Module, optimizer, scheduler, step: int, extra: dict[str, Any]) -> None:
    """Write the resumable state of ``step`` (steps done so far)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{idx}.{key}"] = t
    tensors["rng.torch"] = torch.get_rng_state()
    _save_tensors(tensors, out / STATE_FILE)
    meta = {
        "step": step,
        "param_groups": _jsonable(opt["param_groups"]),
        "scheduler": _jsonable(scheduler.state_dict()),
        "state_sha256": file_sha256(out / STATE_FILE),
        **extra,
    }
    atomic_write_json(out / STATE_JSON, meta)


def load_state(out: Path, model: torch.nn.Module, optimizer, scheduler) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote into the given objects; returns its JSON."""
    path, meta_path = out / STATE_FILE, out / STATE_JSON
    if not path.is_file() or not meta_path.is_file():
        raise BevDeployError(f"--resume: no training state in {out} (expected {STATE_FILE}); train without --resume")
    meta = json.loads(meta_path.read_text())
    if meta.get("state_sha256") != file_sha256(path):
        raise BevDeployError(f"--resume: {path} does not match {STATE_JSON} (hash differs); train again without --resume")
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def shipped_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as shipped: floating tensors in FP16, integer buffers unchanged."""
    return {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}


def export_weights(model: torch.nn.Module, out_dir: Path, name: str, manifest: dict[str, Any]) -> Path:
    """Write ``<name>.safetensors`` (FP16) and ``<name>.json`` (``manifest`` + file name, size and
    sha256) into ``out_dir``; returns the weights path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    _save_tensors(shipped_tensors(model), path, metadata={"format": "pt", "dtype": "float16"})
    record = dict(manifest)
    record.update(weights=path.name, size_bytes=path.stat().st_size, sha256=file_sha256(path))
    atomic_write_json(out_dir / f"{name}.json", record)
    return path


def load_weights(model: torch.nn.Module, path: Path | str) -> torch.nn.Module:
    """Load shipped weights into ``model`` (cast to the model's dtypes) through the core's strict,
    error-reporting checkpoint loader."""
    from ..checkpoint import load_checkpoint

    return load_checkpoint(model, path)


def read_manifest(weights: Path | str) -> dict[str, Any]:
    """The manifest beside ``weights`` (same stem, .json)."""
    p = Path(weights).with_suffix(".json")
    if not p.is_file():
        raise BevDeployError(f"no manifest {p} beside {weights}; export weights with bevdeploy train")
    return json.loads(p.read_text())
