"""BEVFusion's quantization rules applied to the tiny variant (H3a's model tree)."""

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from bevdeploy.quant import calib_table
from bevdeploy.specs.run import QuantSpec, RunSpec
from pytorch_quantization.nn import TensorQuantizer

bevfusion = pytest.importorskip("bevdeploy.plugins.bevfusion.model")
from bevdeploy.plugins.bevfusion import quant as rules  # noqa: E402
from bevdeploy.plugins.bevfusion.prepare import prepare  # noqa: E402


def _make_sample():
    """The plugin tests' synthetic sample (six cameras, LiDAR ring and two clusters)."""
    path = Path(__file__).resolve().parents[1] / "plugins" / "bevfusion" / "conftest.py"
    spec = importlib.util.spec_from_file_location("bevfusion_test_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_sample()


@pytest.fixture(scope="module")
def fp32_and_inputs():
    model = bevfusion.build("tiny")
    return model, prepare(model, _make_sample())


def _quantizers(module: torch.nn.Module) -> list[TensorQuantizer]:
    return [m for m in module.modules() if isinstance(m, TensorQuantizer)]


def test_rules_before_calibration(fp32_and_inputs):
    model = copy.deepcopy(fp32_and_inputs[0])
    counts = rules.apply_rules(model, QuantSpec())
    assert counts["folded"] > 0 and counts["shared"] > 0 and counts["residual_adds"] > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d) for m in model.modules())
    assert _quantizers(model.heads) == []
    assert _quantizers(model.encoders["camera"]["vtransform"].downsample) == []
    modules = dict(model.named_modules())
    assert hasattr(modules["encoders.lidar.backbone.conv_input.0"], "_input_quantizer")  # sparse conv
    assert hasattr(modules["decoder.neck.deblocks.1.0"], "_weight_quantizer")  # ConvTranspose2d
    block = modules["encoders.camera.backbone.layer1.0"]
    assert block.downsample[0]._input_quantizer is block.conv1._input_quantizer


@pytest.mark.slow
def test_quantize_hook_calibrates_and_disables(fp32_and_inputs):
    fp32, inputs = fp32_and_inputs
    other = RunSpec(model="bevformer")
    assert rules.bevdeploy_quantize(model=fp32, spec=other, calib_data=[inputs], qconfig=QuantSpec()) is None
    model = copy.deepcopy(fp32)
    qspec = QuantSpec(num_batches=1, method="percentile")
    out = rules.bevdeploy_quantize(model=model, spec=RunSpec(model="bevfusion"), calib_data=[inputs], qconfig=qspec)
    assert out is model
    table = calib_table(model)
    assert table["encoders.lidar.backbone.conv_input.0._input_quantizer"]["enabled"] is False
    assert table["decoder.neck.deblocks.0.0._weight_quantizer"]["enabled"] is False
    assert table["decoder.neck.deblocks.1.0._input_quantizer"]["enabled"] is True
    adds = [k for k in table if k.endswith("add_quantizer")]
    assert adds and all(table[k]["enabled"] and table[k]["amax"][0] > 0 for k in adds)
    with torch.no_grad():
        ref, got = fp32(**inputs), model(**inputs)
    # the dense heatmap (before top-k proposal selection, which INT8 noise can reorder) stays close:
    # measured cosine 0.993 (percentile) on the random-weight tiny model with one calibration sample
    cos = torch.nn.functional.cosine_similarity(ref["heatmap"].flatten(), got["heatmap"].flatten(), dim=0)
    assert cos > 0.98, float(cos)
