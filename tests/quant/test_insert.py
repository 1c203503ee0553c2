import torch
from bevdeploy.quant import calibrate, fold_bn, insert_quantizers
from bevdeploy.specs.run import QuantSpec
from pytorch_quantization import nn as qnn
from quantnets import MLP, calib_batches, tiny_resnet


def test_names_weights_and_state_dict_keys_are_kept():
    model = tiny_resnet()
    fold_bn(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = insert_quantizers(model, QuantSpec())
    modules = dict(model.named_modules())
    assert isinstance(modules["layer1.0.conv2"], qnn.QuantConv2d)
    assert isinstance(modules["deblock.0"], qnn.QuantConvTranspose2d)
    assert len(names) == 17 and "head" in names
    calibrate(model, lambda m: [m(**b) for b in calib_batches(2)], QuantSpec())
    after = model.state_dict()
    for k, v in before.items():
        torch.testing.assert_close(after[k], v)
    new = set(after) - set(before)
    assert new and all(k.endswith("._amax") for k in new)
    assert "layer1.0.conv2._input_quantizer._amax" in new
    # per output channel: Conv2d on axis 0, ConvTranspose2d on axis 1
    assert after["layer1.0.conv2._weight_quantizer._amax"].shape == (8, 1, 1, 1)
    assert after["deblock.0._weight_quantizer._amax"].shape == (1, 32, 1, 1)


def test_skip_globs_and_callable_and_linear():
    model = tiny_resnet()
    names = insert_quantizers(model, QuantSpec(), skip=["head", "layer2.*"])
    assert "head" not in names and not any(n.startswith("layer2.") for n in names)
    assert type(dict(model.named_modules())["head"]) is torch.nn.Conv2d
    mlp = MLP()
    assert insert_quantizers(mlp, QuantSpec(), skip=lambda name, m: name == "fc2") == ["fc1"]
    assert isinstance(mlp.fc1, qnn.QuantLinear) and type(mlp.fc2) is torch.nn.Linear


def test_per_tensor_weights_when_asked():
    model = MLP()
    insert_quantizers(model, QuantSpec(per_channel_weights=False))
    calibrate(model, lambda m: m(torch.randn(4, 16)), QuantSpec())
    assert model.fc1._weight_quantizer.amax.numel() == 1
