"""Switch the test session's Triton to its CPU interpreter (TRITON_INTERPRET=1), for the kernel checks.

Triton decides interpreter mode when it is imported (its own standard library is jitted then), so the variable
must be set before the first `import triton` of the session; on a CPU machine nothing else imports it. Call
:func:`enter` at the top of a test module, before importing anything that imports Triton: it skips the module
where interpreter mode cannot be had, and returns benchmarks/ops_cases (the cases the GPU benchmark times).
"""

import os
import sys
from pathlib import Path

import pytest
import torch


def enter():
    """Set interpreter mode (or skip the calling module) and return the ops_cases module."""
    if torch.cuda.is_available():  # interpreter mode would also capture the compiled kernels of tests/gpu
        pytest.skip("a CUDA device is present: tests/gpu checks the compiled kernels instead", allow_module_level=True)
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("Triton was imported before interpreter mode could be set", allow_module_level=True)
    os.environ["TRITON_INTERPRET"] = "1"
    pytest.importorskip("triton", reason="Triton is not installed (optional extra `gpu`); interpreter checks skipped")
    benchmarks = str(Path(__file__).resolve().parents[2] / "benchmarks")
    if benchmarks not in sys.path:
        sys.path.insert(0, benchmarks)
    import ops_cases

    return ops_cases
