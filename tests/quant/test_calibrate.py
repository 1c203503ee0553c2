import pytest
import torch
from bevdeploy.quant import calibrate, insert_quantizers
from bevdeploy.specs.run import QuantSpec
from quantnets import MLP


def _amax(method: str, data: torch.Tensor, **kw) -> float:
    torch.manual_seed(0)
    model = MLP()
    qspec = QuantSpec(method=method, **kw)
    insert_quantizers(model, qspec)
    calibrate(model, lambda m: m(data), qspec)
    return float(model.fc1._input_quantizer.amax)


def test_methods_give_different_sane_amaxes():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4096, 16, generator=g)
    data[0, 0] = 40.0  # one outlier: max follows it, the histogram methods clip it
    top = float(data.abs().max())
    amax = {m: _amax(m, data) for m in ("max", "entropy", "percentile", "mse")}
    assert amax["max"] == pytest.approx(top)
    for m in ("entropy", "percentile"):
        assert 1.0 < amax[m] < 0.5 * top, (m, amax)
    # mse weighs the outlier's clipping error against rounding error of everything else
    assert 1.0 < amax["mse"] < top
    assert len({round(v, 4) for v in amax.values()}) == 4, amax
    assert _amax("percentile", data, percentile=99.0) < amax["percentile"]


def test_quantizers_that_see_no_data_are_disabled():
    model = MLP()
    insert_quantizers(model, QuantSpec())
    unseen = calibrate(model, lambda m: None, QuantSpec())
    assert set(unseen) == {"fc1._input_quantizer", "fc2._input_quantizer"}
    assert model.fc1._input_quantizer._disabled
    assert model.fc1._weight_quantizer.amax is not None  # weights need no data
