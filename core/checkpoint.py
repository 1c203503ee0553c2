"""Loading weights safely: safetensors, or a torch checkpoint through ``weights_only=True``
(never unpickling arbitrary objects), strictly matched against the model's parameter names."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import BevDeployError

SHOW_KEYS = 5


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The tensors stored in ``path`` (training-checkpoint wrappers opened: :func:`unwrap_state_dict`)."""
    path = Path(path)
    if not path.is_file():
        raise BevDeployError(f"checkpoint {path} does not exist; pass an existing file with --checkpoint")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise BevDeployError(f"{path} is not a readable safetensors file ({exc}); pass a valid checkpoint") from exc
    with open(path, "rb") as f:
        magic = f.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):  # torch's zip, or a legacy pickle
        raise BevDeployError(f"{path} is not a checkpoint (neither safetensors nor torch.save output); pass a valid one")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL [\w.]+", str(exc))
        why = found.group(0) if found else str(exc).strip().splitlines()[0][:120]
        raise BevDeployError(
            f"{path} is not a plain checkpoint (torch.load with weights_only=True refused it: {why}); "
            f"save a state dict of tensors (torch.save(model.state_dict())) or safetensors"
        ) from exc
    except Exception as exc:  # a damaged archive
        raise BevDeployError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}); pass a .safetensors or torch state-dict file"
        ) from exc
    obj = unwrap_state_dict(obj)
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BevDeployError(
            f"{path} does not hold a dict of tensors (a state dict); pass a checkpoint saved from model.state_dict()"
        )
    return dict(obj)


WRAPPERS = ("state_dict", "model", "module")  # mmdet/mmengine, many trainers, DDP-pickled wrappers
DDP_PREFIX = "module."


def unwrap_state_dict(obj: Any) -> Any:
    """The state dict inside a training checkpoint: nested ``{"state_dict"|"model"|"module": ...}``
    wrappers (beside metadata such as ``meta`` or ``optimizer``) are opened, and a ``module.``
    prefix that every key carries (a DDP-wrapped model's) is dropped. Anything else passes as is."""
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            break
        obj = obj[key]
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and k.startswith(DDP_PREFIX) for k in obj):
        obj = {k[len(DDP_PREFIX) :]: v for k, v in obj.items()}
    return obj


def shipped_weights(plugin_file: str | Path, variant: str) -> Path | None:
    """A plugin's shipped weights of ``variant``: ``weights/<variant>.safetensors`` beside the
    plugin's module ``plugin_file`` (trained by ``bevdeploy train``, manifest in the ``.json``
    beside it), or None where the plugin ships none."""
    path = Path(plugin_file).parent / "weights" / f"{variant}.safetensors"
    return path if path.is_file() else None


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW_KEYS])
    return shown + (f" (+{len(keys) - SHOW_KEYS} more)" if len(keys) > SHOW_KEYS else "")


def load_checkpoint(
    model: torch.nn.Module,
    path: Path | str,
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> torch.nn.Module:
    """Load ``path`` into ``model`` with ``strict=True``; ``convert`` maps a foreign layout (e.g.
    an upstream checkpoint) to the model's names first. Mismatches name the first keys."""
    state = read_state_dict(path)
    if convert is not None:
        state = convert(state)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_listing(unexpected)}")
        raise BevDeployError(
            f"checkpoint {path} does not match the model's keys ({'; '.join(parts)}); "
            f"check --model/--variant match the checkpoint"
        )
    wrong = [k for k in expected if tuple(state[k].shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise BevDeployError(
            f"checkpoint {path} has {len(wrong)} tensors of the wrong shape, e.g. {k}: "
            f"{tuple(state[k].shape)} vs the model's {tuple(expected[k].shape)}; check --variant"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return model
