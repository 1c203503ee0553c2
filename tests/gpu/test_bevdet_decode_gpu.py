"""BEVDet's decode on CUDA maps (what the torch backend hands it on a GPU): the batched top-K and box arithmetic
run on the GPU and give the CPU's detections, up to the last bits of exp / atan2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bevdeploy.plugins.bevdet.config import R50, REG_CHANNELS, TINY
from bevdeploy.plugins.bevdet.head import decode

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("cfg", [TINY, R50], ids=["tiny", "r50"])
def test_decode_on_cuda_maps_gives_the_cpu_detections(cfg):
    g = torch.Generator().manual_seed(0)
    h, w = cfg.grid_size[1], cfg.grid_size[0]
    heat = (torch.randn(1, 10, h, w, generator=g) - 1.5).sigmoid()  # ~20% above the threshold
    reg = torch.randn(1, len(cfg.head.tasks) * REG_CHANNELS, h, w, generator=g)
    lidar2ego = torch.eye(4)
    cpu = decode(heat, reg, lidar2ego, cfg)
    gpu = decode(heat.cuda(), reg.cuda(), lidar2ego.cuda(), cfg)
    assert len(cpu) > 50
    np.testing.assert_array_equal(gpu.labels, cpu.labels)
    np.testing.assert_array_equal(gpu.scores, cpu.scores)
    np.testing.assert_allclose(gpu.boxes, cpu.boxes, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gpu.velocity, cpu.velocity, rtol=1e-6, atol=1e-6)
