import json

import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.quant import (
    calib_table,
    disable,
    fold_bn,
    generic_quantize,
    insert_quantizers,
    load_calib_table,
    save_calib_table,
)
from bevdeploy.specs.run import QuantSpec
from quantnets import calib_batches, tiny_resnet


def _fresh():
    model = tiny_resnet()
    fold_bn(model)
    insert_quantizers(model, QuantSpec())
    return model


def test_round_trip_restores_identical_outputs(tmp_path):
    qspec = QuantSpec(num_batches=2, keep_fp=["head"])
    model = generic_quantize(tiny_resnet(), calib_batches(2), qspec)
    x = calib_batches(1, seed=7)[0]["img"]
    ref = model(x)
    path = save_calib_table(calib_table(model), tmp_path / "calib.json")
    table = json.loads(path.read_text())
    assert table["layer1.0.conv1._input_quantizer"]["axis"] is None
    assert table["layer1.0.conv1._weight_quantizer"]["axis"] == 0
    assert table["head._input_quantizer"]["enabled"] is False
    assert not list(tmp_path.glob(".calib.json.*"))  # no temp file left behind
    again = _fresh()
    assert load_calib_table(again, path) == len(table)
    torch.testing.assert_close(again(x), ref, rtol=0, atol=0)


def test_table_that_does_not_fit_is_refused(tmp_path):
    model = generic_quantize(tiny_resnet(), calib_batches(1), QuantSpec(num_batches=1))
    path = save_calib_table(calib_table(model), tmp_path / "calib.json")
    other = tiny_resnet(width=4)
    fold_bn(other)
    insert_quantizers(other, QuantSpec())
    with pytest.raises(BevDeployError, match="channels"):
        load_calib_table(other, path)
    fewer = _fresh()
    disable(fewer, ["head"])
    del fewer.head._input_quantizer  # a model with one quantizer less
    with pytest.raises(BevDeployError, match="does not fit the model"):
        load_calib_table(fewer, path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BevDeployError, match="not valid JSON"):
        load_calib_table(_fresh(), tmp_path / "bad.json")
