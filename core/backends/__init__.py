"""Inference backends, one module each (heavy imports stay inside them until used).

Every backend is registered whether or not it can run here; ``is_available()`` says why not and
:func:`resolve_backend` refuses it with that reason only when a run asks for it.
"""

from __future__ import annotations

from typing import Any

from .. import hookimpl
from ..errors import BackendUnavailable, BevDeployError
from ..specs.registry import BackendSpec


def _lazy_build(module: str) -> Any:
    """A build callable that imports the backend module on first call."""

    def build(artifact: Any, precision: str) -> Any:
        import importlib

        return importlib.import_module(f"{__name__}.{module}").build(artifact, precision)

    return build


def _lazy_available(module: str) -> Any:
    def is_available() -> tuple[bool, str]:
        import importlib

        return importlib.import_module(f"{__name__}.{module}").is_available()

    return is_available


@hookimpl
def bevdeploy_register_backends() -> list[BackendSpec]:
    return [
        BackendSpec(
            name="onnxruntime",
            description="ONNX Runtime on the CPU (the default); INT8 as ORT-style QDQ fused into integer kernels.",
            device="cpu",
            qdq_flavour="ort",
            native_precisions=("fp32", "int8", "int8-fp32"),
            is_available=_lazy_available("onnxruntime"),
            build=_lazy_build("onnxruntime"),
        ),
        BackendSpec(
            name="torch",
            description="PyTorch eager reference (CUDA when present); INT8 simulated with fake-quant.",
            device=_torch_device(),
            qdq_flavour="torch",
            native_precisions=("fp32", "fp16") if _torch_device() == "cuda" else ("fp32",),
            is_available=_lazy_available("torch"),
            build=_lazy_build("torch"),
        ),
        BackendSpec(
            name="tensorrt",
            description="TensorRT 10: explicit Q/DQ (strongly typed), custom-op plugins, CUDA-event timing.",
            device="cuda",
            qdq_flavour="trt",
            native_precisions=("fp32", "fp16", "int8", "int8-fp32"),
            is_available=_lazy_available("tensorrt"),
            build=_lazy_build("tensorrt"),
        ),
    ]


def _torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_backend(name: str, backends: dict[str, BackendSpec]) -> BackendSpec:
    """The registered backend called ``name``, refused with one line if unknown or unusable here."""
    if name not in backends:
        known = ", ".join(sorted(backends)) or "none"
        raise BevDeployError(f"unknown backend {name!r}; known backends: {known} (see `bevdeploy backends`)")
    spec = backends[name]
    ok, reason = spec.is_available()
    if not ok:
        raise BackendUnavailable(
            f"backend {name!r} is not usable here: {reason}; pick another with --backend "
            f"(see `bevdeploy backends`)"
        )
    return spec
