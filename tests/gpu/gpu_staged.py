"""What the staged-kernel GPU tests share: their marks and tolerances, a recorder of a Triton kernel's launches, and inputs
in a precision's storage (fp16, or int8 with its scale) beside the fp32 values the reference samples."""

import pytest
import torch

TOL = {"fp16": 3e-3, "fp16x2": 1e-2, "int8": 3e-3}
MARKS = [pytest.mark.gpu,
         pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (Triton kernels with inline PTX)")]


def record_launches(monkeypatch, module, name: str) -> list:
    """Replace ``module.<name>`` (a Triton kernel) by one that still launches it and appends each launch's keyword
    arguments (its constexprs) to the returned list; monkeypatch puts the kernel back."""
    launches = []
    kernel = getattr(module, name)

    class Recorder:
        def __getitem__(self, grid):
            def launch(*args, **kwargs):
                launches.append(kwargs)
                return kernel[grid](*args, **kwargs)

            return launch

    monkeypatch.setattr(module, name, Recorder())
    return launches


def stored(shape, precision: str, scale_name: str, seed: int = 0):
    """(input in the precision's storage on the GPU, its fp32 values, scales or None) for a standard-normal tensor."""
    from bevdeploy.plugins.trt_ops.triton_util import quantize_per_tensor, scale_for

    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).cuda()
    if precision == "int8":
        scale = scale_for(x)
        q = quantize_per_tensor(x, scale)
        return q, q.float() * scale, {scale_name: scale}
    h = x.half()
    return h, h.float(), None
