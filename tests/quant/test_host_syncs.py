"""bevdeploy.quant.without_host_syncs: fake-quant quantizers that a CUDA graph can capture compute exactly what
pytorch-quantization's do (the GPU side, the capture itself, is tests/gpu/test_torch_graphs_gpu.py)."""

import copy

import pytest
import torch
from bevdeploy.quant import calibrate, disable, fold_bn, insert_quantizers, without_host_syncs
from bevdeploy.quant.modules import set_amax
from bevdeploy.specs.run import QuantSpec
from pytorch_quantization.nn import TensorQuantizer
from pytorch_quantization.tensor_quant import QuantDescriptor
from quantnets import calib_batches, tiny_resnet


def _quantizer(axis, amax: torch.Tensor, **descriptor) -> TensorQuantizer:
    q = TensorQuantizer(QuantDescriptor(num_bits=8, axis=axis, calib_method="max", **descriptor))
    set_amax(q, amax)
    return q


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("axis", [None, (0,)], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("narrow", [True, False])
def test_same_bits_as_pytorch_quantization(axis, dtype, narrow):
    g = torch.Generator().manual_seed(0)
    amax = torch.tensor(1.3) if axis is None else torch.rand(6, 1, 1, 1, generator=g) * 2
    if axis is not None:
        amax[2] = 0.0  # an all-zero channel: quantized to zeros
    ref = _quantizer(axis, amax, narrow_range=narrow)
    new = copy.deepcopy(ref)
    assert without_host_syncs(torch.nn.Sequential(new)) == 1
    x = (torch.randn(6, 4, 5, 5, generator=g) * 2).to(dtype)  # beyond amax too: clamped
    got, want = new(x), ref(x)
    assert got.dtype == want.dtype == dtype and torch.equal(got, want)
    assert not torch.equal(got, x)  # it did quantize
    if axis is not None:
        assert torch.equal(got[2], torch.zeros_like(got[2]))


def test_a_quantized_network_gives_the_same_output():
    model = tiny_resnet()
    fold_bn(model)
    insert_quantizers(model, QuantSpec())
    calibrate(model, lambda m: [m(**b) for b in calib_batches(2)], QuantSpec())
    disable(model, ["head"])
    model.eval()
    fast = copy.deepcopy(model)
    quantizers = sum(isinstance(m, TensorQuantizer) for m in model.modules())
    assert without_host_syncs(fast) == quantizers  # disabled ones too: their forward is the identity either way
    batch = calib_batches(1, seed=7)[0]
    with torch.inference_mode():
        got, want = fast(**batch), model(**batch)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,), strict=True):
        assert torch.equal(a, b)


def test_quantizers_in_another_state_keep_their_forward():
    calibrating = _quantizer(None, torch.tensor(1.0))
    calibrating.enable_calib()
    uncalibrated = TensorQuantizer(QuantDescriptor(num_bits=8, calib_method="max"))  # no amax yet
    holder = torch.nn.ModuleList([calibrating, uncalibrated])
    assert without_host_syncs(holder) == 0
    assert "forward" not in vars(calibrating) and "forward" not in vars(uncalibrated)
