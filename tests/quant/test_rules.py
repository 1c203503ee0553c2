import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.quant import (
    calibrate,
    disable,
    fold_bn,
    insert_quantizers,
    named_quantizers,
    share_input_quantizer,
)
from bevdeploy.specs.run import QuantSpec
from pytorch_quantization.nn import TensorQuantizer
from quantnets import calib_batches, tiny_resnet


def test_disable_globs_are_respected():
    model = tiny_resnet()
    insert_quantizers(model, QuantSpec())
    hit = disable(model, ["layer2.*.conv2", "head"])
    assert hit == ["layer2.0.conv2", "layer2.1.conv2", "head"]
    for name, q in named_quantizers(model):
        off = name.startswith(("layer2.0.conv2.", "layer2.1.conv2.", "head."))
        assert q._disabled == off, name


def test_shared_quantizer_is_one_object_and_sees_both_inputs():
    model = tiny_resnet()
    fold_bn(model)
    insert_quantizers(model, QuantSpec(method="max"))
    block = model.layer1[0]
    share_input_quantizer(block.downsample[0], block.conv1)
    assert block.downsample[0]._input_quantizer is block.conv1._input_quantizer
    names = [n for n, _ in named_quantizers(model)]
    assert "layer1.0.conv1._input_quantizer" in names
    assert "layer1.0.downsample.0._input_quantizer" not in names  # one object, listed once
    calibrate(model, lambda m: [m(**b) for b in calib_batches(2)], QuantSpec(method="max"))
    assert isinstance(block.downsample[0]._input_quantizer, TensorQuantizer)
    assert block.downsample[0]._input_quantizer.amax is not None


def test_share_needs_quantized_modules():
    with pytest.raises(BevDeployError, match="no input quantizer"):
        share_input_quantizer(torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1))
