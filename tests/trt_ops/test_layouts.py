"""Channel-vectorized layouts (TensorRT's kCHW2/4/16/32, kHWC8, kHWC): the reformat helpers the kernels,
the benchmark and a TensorRT binding rely on."""

import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.layouts import (
    LAYOUTS,
    from_layout,
    physical_vector,
    to_layout,
    vector_block,
    vector_width,
)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 12, 2, 3, 4)])
def test_round_trip_and_physical_order(layout, shape):
    x = torch.randn(shape)
    phys = to_layout(x, layout)
    vec = vector_width(layout, shape[1])
    groups = -(-shape[1] // vec)
    assert phys.shape == (shape[0], groups, *shape[2:], vec) if vec > 1 else phys.shape == shape
    assert torch.equal(from_layout(phys, layout, shape[1]), x)
    if vec > 1:  # channel c of pixel s sits at [n, c // vec, s, c % vec]; the padding is zero
        n, c = 1 % shape[0], shape[1] - 1
        assert torch.equal(phys[n, c // vec, ..., c % vec], x[n, c])
        assert not phys.reshape(shape[0], -1, vec)[:, -1, :][:, (shape[1] % vec or vec):].any()
        assert physical_vector("op", phys, layout, phys.dim()) == vec


def test_vector_widths_and_blocks():
    assert [vector_width(name, 20) for name in LAYOUTS] == [1, 2, 4, 16, 32, 24, 20]
    assert vector_block(4, 1) == 4 and vector_block(32, 1) == 32 and vector_block(24, 2) == 8
    assert vector_block(256, 4) == 8  # at most 32 bytes a lane
    assert vector_block(3, 2) == 1  # no power of two divides 3 beyond 1


def test_bad_layouts_fail_with_one_line():
    with pytest.raises(BevDeployError, match="unknown channel layout 'chw3'"):
        vector_width("chw3", 8)
    with pytest.raises(BevDeployError, match="last dim of a chw4 input must be 4"):
        physical_vector("grid_sampler", torch.zeros(1, 2, 3, 3, 2), "chw4", 5)
    with pytest.raises(BevDeployError, match="contiguous 5-d"):
        physical_vector("grid_sampler", torch.zeros(1, 2, 3, 3), "chw4", 5)
    with pytest.raises(BevDeployError, match="is not layout chw4"):
        from_layout(torch.zeros(1, 1, 3, 3, 2), "chw4", 4)
