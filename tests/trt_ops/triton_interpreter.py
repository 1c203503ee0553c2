"""Switch the test session's Triton to its CPU interpreter (TRITON_INTERPRET=1), for the kernel checks.

Triton decides interpreter mode when it is imported (its own standard library is jitted then), so the variable
must be set before the first `import triton` of the session: tests/conftest.py calls :func:`reason` when pytest
starts, before any test module is collected (tests/trt_ops/test_interpreter_mode.py checks that it held). Call
:func:`enter` at the top of a test module, before importing anything that imports Triton: it skips the module
where interpreter mode cannot be had, and returns benchmarks/ops_cases (the cases the GPU benchmark times);
:func:`reason` does the same for a module that skips only some of its tests.
"""

import os
import sys
from pathlib import Path

import pytest
import torch


def reason() -> str:
    """Set interpreter mode and return '', or return why it cannot be had here (for a per-test skip)."""
    if torch.cuda.is_available():  # interpreter mode would also capture the compiled kernels of tests/gpu
        return "a CUDA device is present: tests/gpu checks the compiled kernels instead"
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        return "Triton was imported before interpreter mode could be set"
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton  # noqa: F401
    except ImportError as exc:
        return f"Triton is not installed (optional extra `gpu`); interpreter checks skipped: {exc}"
    return ""


def enter():
    """Set interpreter mode (or skip the calling module) and return the ops_cases module."""
    why = reason()
    if why:
        pytest.skip(why, allow_module_level=True)
    benchmarks = str(Path(__file__).resolve().parents[2] / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    import ops_cases

    return ops_cases
