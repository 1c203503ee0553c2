"""Inputs for the custom-op kernels at the anchors' shapes ("anchor") and at interpreter sizes ("tiny").

Shared by benchmarks/ops.py, tests/gpu/test_ops_gpu.py and tests/trt_ops/test_kernels_interpret.py so that
the benchmark checks and times exactly what the tests check. Every case holds random non-zero data.
Each builder returns a Case: the reference's positional arguments, the int8 scales, the indices of the
arguments that each float variant stores in fp16 (and int8 quantises), and the minimal bytes an fp32 run
must move (each input read once, the output written once) for the bandwidth figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class Case:
    name: str
    args: tuple
    scales: dict = field(default_factory=dict)
    half_args: tuple[int, ...] = ()  # float inputs the fp16 variants read in fp16
    int8_args: dict[int, str] = field(default_factory=dict)  # arg index -> scales key for the int8 variant
    info: dict = field(default_factory=dict)


def _amax_scale(x: torch.Tensor) -> float:
    return float(x.abs().max()) / 127.0


def _tensor_bytes(*ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts if isinstance(t, torch.Tensor))


# --------------------------------------------------------------------------- bev_pool_v2
def frustum_coords(n_cam, depth_bins, feat_hw, img_hw, fx, cy, xy_range, xy_res, z_range, nz, device):
    """Voxel coordinates (1, N, D, H, W, 3) of a ring of cameras' frustum points (nuScenes-like rig)."""
    d = torch.arange(*depth_bins, device=device, dtype=torch.float32)
    fh, fw = feat_hw
    ih, iw = img_hw
    v = (torch.arange(fh, device=device) + 0.5) * ih / fh
    u = (torch.arange(fw, device=device) + 0.5) * iw / fw
    dd, vv, uu = torch.meshgrid(d, v, u, indexing="ij")
    right, down = (uu - iw / 2) / fx * dd, (vv - cy) / fx * dd
    coords = []
    for yaw_deg in (0.0, -55.0, 55.0, 180.0, 110.0, -110.0)[:n_cam]:
        yaw = math.radians(yaw_deg)
        fwd, left = dd + 1.0, -right
        x = fwd * math.cos(yaw) - left * math.sin(yaw)
        y = fwd * math.sin(yaw) + left * math.cos(yaw)
        z = 1.6 - down
        ix = torch.floor((x + xy_range) / xy_res)
        iy = torch.floor((y + xy_range) / xy_res)
        iz = torch.floor((z - z_range[0]) / ((z_range[1] - z_range[0]) / nz))
        coords.append(torch.stack([ix, iy, iz], -1))
    return torch.stack(coords).unsqueeze(0).long()


def bev_pool_case(variant: str, device="cpu", seed=0) -> Case:
    """BEVDet 256x704 (C=64, 128x128), BEVFusion (118x32x88, C=80, 360x360) or a tiny rig."""
    from bevdeploy.plugins.trt_ops.bev_pool_v2.reference import bev_pool_v2_prepare

    g = torch.Generator(device="cpu").manual_seed(seed)
    if variant == "bevdet":
        geo = dict(n_cam=6, depth_bins=(1.0, 60.0, 1.0), feat_hw=(16, 44), img_hw=(256, 704), fx=557.0, cy=58.0,
                   xy_range=51.2, xy_res=0.8, z_range=(-5.0, 3.0), nz=1)
        c, grid = 64, 128
    elif variant == "bevfusion":
        geo = dict(n_cam=6, depth_bins=(1.0, 60.0, 0.5), feat_hw=(32, 88), img_hw=(256, 704), fx=608.0, cy=40.0,
                   xy_range=54.0, xy_res=0.3, z_range=(-10.0, 10.0), nz=1)
        c, grid = 80, 360
    else:
        geo = dict(n_cam=2, depth_bins=(1.0, 9.0, 1.0), feat_hw=(3, 5), img_hw=(24, 40), fx=30.0, cy=8.0,
                   xy_range=8.0, xy_res=1.0, z_range=(-5.0, 3.0), nz=1)
        c, grid = 5, 16
    coords = frustum_coords(device="cpu", **geo)
    out_shape = [1, 1, grid, grid, c]
    ranks = bev_pool_v2_prepare(coords, out_shape)
    _, n, dd, h, w, _ = coords.shape
    depth = torch.rand((1, n, dd, h, w), generator=g).softmax(2)
    feat = torch.randn((1, n, h, w, c), generator=g)
    args = tuple(t.to(device) for t in (depth, feat, *ranks)) + (out_shape,)
    out_bytes = grid * grid * c * 4
    return Case(
        name=f"bev_pool_v2[{variant}]", args=args,
        scales={"depth": _amax_scale(depth), "feat": _amax_scale(feat)},
        half_args=(0, 1), int8_args={0: "depth", 1: "feat"},
        info=dict(ranks=int(ranks[0].numel()), intervals=int(ranks[3].numel()), channels=c,
                  bytes_fp32=_tensor_bytes(depth, feat, *ranks) + out_bytes),
    )


# --------------------------------------------------------------------------- ms_deform_attn
def ms_deform_attn_case(variant: str, device="cpu", seed=0) -> Case:
    """BEVFormer encoder spatial cross-attention (value 6x30825x8x32, 40000 queries, 4 levels x 8 points) or tiny."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    if variant == "anchor":
        shapes, bs, nq, nh, c, npts = [[116, 200], [58, 100], [29, 50], [15, 25]], 6, 40000, 8, 32, 8
    else:
        shapes, bs, nq, nh, c, npts = [[6, 8], [3, 4], [2, 2]], 2, 7, 3, 5, 3
    spatial = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    nl, s = len(shapes), int(sizes.sum())
    value = torch.randn((bs, s, nh, c), generator=g)
    locs = torch.rand((bs, nq, nh, nl, npts, 2), generator=g) * 1.1 - 0.05  # some points off the map
    weights = torch.rand((bs, nq, nh, nl * npts), generator=g).softmax(-1).view(bs, nq, nh, nl, npts)
    args = tuple(t.to(device) for t in (value, spatial, starts, locs, weights))
    return Case(
        name=f"ms_deform_attn[{variant}]", args=args,
        scales={"value": _amax_scale(value), "attention_weights": _amax_scale(weights)},
        half_args=(0, 3, 4), int8_args={0: "value", 4: "attention_weights"},
        info=dict(bytes_fp32=_tensor_bytes(value, locs, weights) + bs * nq * nh * c * 4),
    )
