"""The session's Triton is in interpreter mode on a machine without a CUDA device, whatever was imported first
(tests/conftest.py sets it before collection): otherwise every interpreter check in tests/trt_ops skips."""

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: compiled kernels run")


def test_triton_kernels_are_interpreted():
    pytest.importorskip("triton", reason="Triton is not installed (optional extra `gpu`)")
    from bevdeploy.plugins.trt_ops.grid_sampler import kernels
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(kernels._grid_sampler_kernel, InterpretedFunction), type(kernels._grid_sampler_kernel)
