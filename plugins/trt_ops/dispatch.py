"""Route a CUDA call of a custom op to its Triton kernel when one exists, else to the reference.

Contract with the GPU kernels: ``<op folder>/kernels.py`` exposes ``<op>_cuda(*reference_args,
precision=...)`` with the reference's positional arguments; the precision follows the floating
inputs' dtype ('fp32' for float32, 'fp16' for float16). The kernels module is looked up at the
first call (cached) so that a missing Triton never breaks importing the op library; the reason
is kept for :func:`kernel_status`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import torch

_REASONS: dict[str, str] = {}


@functools.cache
def _load(package: str, name: str) -> Callable | None:
    try:
        module = importlib.import_module(f"{package}.kernels")
    except Exception as exc:  # noqa: BLE001 - any import failure means "no kernel here"; the reason is kept
        _REASONS[f"{package}.{name}"] = f"{type(exc).__name__}: {exc}"
        return None
    fn = getattr(module, name, None)
    if fn is None:
        _REASONS[f"{package}.{name}"] = f"{package}.kernels has no {name}"
    return fn


def precision_of(*tensors: torch.Tensor) -> str:
    """'fp16' when the first floating tensor is float16, else 'fp32'."""
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return "fp16" if t.dtype == torch.float16 else "fp32"
    return "fp32"


def run_cuda(package: str, op: str, reference: Callable, *args, **kwargs):
    """``package.kernels.<op>_cuda(*args, precision=...)`` when available, else ``reference(*args)``."""
    kernel = _load(package, f"{op}_cuda")
    if kernel is None:
        return reference(*args, **kwargs)
    return kernel(*args, precision=precision_of(*args), **kwargs)


def kernel_status(package: str, op: str) -> tuple[bool, str]:
    """(kernel available, reason if not), for reports and ``bevdeploy ops``."""
    found = _load(package, f"{op}_cuda") is not None
    return found, "" if found else _REASONS.get(f"{package}.{op}_cuda", "not looked up")
