"""Inputs for the custom-op kernels at the anchors' shapes ("anchor") and at interpreter sizes ("tiny").

Shared by benchmarks/ops.py, tests/gpu/test_ops_gpu.py and tests/trt_ops/test_kernels_interpret.py so that
the benchmark checks and times exactly what the tests check. Every case holds random non-zero data.
Each builder returns a Case: the reference's positional arguments, the int8 scales, the indices of the
arguments that each float variant stores in fp16 (and int8 quantises), and the minimal bytes an fp32 run
must move (each input read once, the output written once) for the bandwidth figures.
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _bare_package(name: str, path: Path) -> None:
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module


def ensure_package() -> None:
    """Map core/ -> bevdeploy and plugins/ -> bevdeploy.plugins without running the heavy package inits
    (the GPU machine lacks pydantic & co.; the kernels and references need only torch and triton)."""
    try:
        importlib.import_module("bevdeploy.plugins.trt_ops")
        return
    except Exception:  # noqa: BLE001 - any failure: fall back to the bare mapping below
        for key in [k for k in sys.modules if k == "bevdeploy" or k.startswith("bevdeploy.")]:
            del sys.modules[key]
    _bare_package("bevdeploy", ROOT / "core")
    errors = importlib.import_module("bevdeploy.errors")
    sys.modules["bevdeploy"].BevDeployError = errors.BevDeployError
    sys.modules["bevdeploy"].BackendUnavailable = errors.BackendUnavailable  # plugins/trt_ops/trt.py names it
    _bare_package("bevdeploy.plugins", ROOT / "plugins")
    _bare_package("bevdeploy.plugins.trt_ops", ROOT / "plugins" / "trt_ops")
    for folder in (ROOT / "plugins" / "trt_ops").iterdir():
        if folder.is_dir() and (folder / "kernels.py").exists():
            _bare_package(f"bevdeploy.plugins.trt_ops.{folder.name}", folder)


@dataclass
class Case:
    name: str
    args: tuple
    scales: dict = field(default_factory=dict)
    half_args: tuple[int, ...] = ()  # float inputs the fp16 variants read in fp16
    int8_args: dict[int, str] = field(default_factory=dict)  # arg index -> scales key for the int8 variant
    info: dict = field(default_factory=dict)
    # channel-vectorized layouts (plugins/trt_ops/layouts.py) also run per precision, on argument 0; its
    # batch dim is implicit (rotate's (C, H, W)) when unbatched
    layouts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unbatched: bool = False


# the vectorized layouts benchmarked and tested for the sampling ops: the TensorRT formats BEVFormer_tensorrt's
# plugins take (int8 kCHW4, half2 kCHW2) and int8 kCHW32 (32 bytes per pixel); run 6 measured channels-last (hwc
# fp32, hwc8 fp16) 3x slower than linear with one pixel per lane (uncoalesced), so they are not benchmarked
SAMPLER_LAYOUTS = {"fp16": ("chw2", "chw32"), "fp16x2": ("chw2", "chw32"), "int8": ("chw4", "chw32")}


def to_case_layout(case: Case, args: tuple, layout: str) -> tuple:
    """``args`` with argument 0 converted to the physical tensor of ``layout``."""
    from bevdeploy.plugins.trt_ops.layouts import to_layout

    x = args[0]
    phys = to_layout(x[None], layout)[0] if case.unbatched else to_layout(x, layout)
    return (phys, *args[1:])


def from_case_layout(case: Case, out: torch.Tensor, layout: str, channels: int) -> torch.Tensor:
    """A kernel's output in ``layout`` back to the logical tensor the reference returns."""
    from bevdeploy.plugins.trt_ops.layouts import from_layout

    return from_layout(out[None], layout, channels)[0] if case.unbatched else from_layout(out, layout, channels)


def case_channels(case: Case) -> int:
    """Logical channel count of argument 0 (what from_case_layout strips the vector padding down to)."""
    return int(case.args[0].shape[0 if case.unbatched else 1])


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


def nuscenes_ranks(model: str) -> tuple[tuple[torch.Tensor, ...], list[int], tuple[int, ...]]:
    """bev_pool_v2's ranks, out_shape and depth shape (1, N, D, H, W) as a model plugin's r50 view transform
    computes them for nuScenes' camera rig (the built-in dataset's calibration without its per-scene jitter) at
    test-time image augmentation: BEVDet in the ego frame, BEVFusion in the LiDAR frame, each with its own
    resize, crop, frustum (pixel positions linspace(0, size - 1)) and voxel truncation. BEVDet's come to 179,324
    ranks / 11,431 intervals, within 0.3% of the 179,520 / 11,398 its TensorRT deployment reports at 256x704
    (REFERENCE.md); BEVFusion's to 1,833,766 / 96,821."""
    import numpy as np
    from bevdeploy.data.images import scaled_size
    from bevdeploy.data.synth_sensors import LIDAR, rig_calibration
    from bevdeploy.data.types import CAMERAS

    rig = rig_calibration(None)
    cam2ego = np.stack([rig[c].sensor2ego for c in CAMERAS])
    intrinsics = np.tile(np.eye(4), (len(CAMERAS), 1, 1))
    intrinsics[:, :3, :3] = np.stack([rig[c].intrinsic for c in CAMERAS])
    if model == "bevdet":
        from bevdeploy.plugins.bevdet.config import get_config
        from bevdeploy.plugins.bevdet.necks import LSSViewTransformer
        from bevdeploy.plugins.bevdet.prepare import crop_box, image_aug_matrix

        cfg = get_config("r50")
        vt, frame = LSSViewTransformer(cfg), cam2ego
        out_shape = vt.out_shape
    else:
        from bevdeploy.plugins.bevfusion.camera import DepthLSSTransform
        from bevdeploy.plugins.bevfusion.config import get_config
        from bevdeploy.plugins.bevfusion.prepare import crop_box, image_aug_matrix

        cfg = get_config("r50").camera
        vt, frame = DepthLSSTransform(cfg), np.linalg.inv(rig[LIDAR].sensor2ego) @ cam2ego
        z, x, y = vt.bev_shape
        out_shape = [1, z, x, y, vt.C]
    aug = image_aug_matrix(cfg.resize, crop_box(scaled_size((900, 1600), cfg.resize), cfg.image_size))
    ranks = vt.bev_pool_ranks(*(torch.as_tensor(m, dtype=torch.float32) for m in
                                (frame, intrinsics, np.tile(aug, (len(CAMERAS), 1, 1)))))
    d, fh, fw, _ = vt.frustum.shape
    return ranks, out_shape, (1, len(CAMERAS), d, fh, fw)


def bev_pool_case(variant: str, device="cpu", seed=0) -> Case:
    """BEVDet r50 (256x704, C=64, 128x128) or BEVFusion r50 (118x32x88, C=80, 360x360) on nuScenes' rig
    (nuscenes_ranks), or a tiny rig of evenly spaced cameras (frustum_coords)."""
    from bevdeploy.plugins.trt_ops.bev_pool_v2.reference import bev_pool_v2_prepare

    g = torch.Generator(device="cpu").manual_seed(seed)
    if variant in ("bevdet", "bevfusion"):
        ranks, out_shape, depth_shape = nuscenes_ranks(variant)
    else:
        geo = dict(n_cam=2, depth_bins=(1.0, 9.0, 1.0), feat_hw=(3, 5), img_hw=(24, 40), fx=30.0, cy=8.0,
                   xy_range=8.0, xy_res=1.0, z_range=(-5.0, 3.0), nz=1)
        if variant == "tiny_tall":  # 40 pixel rows: two 32-row column slices in bev_pool_columns
            geo.update(feat_hw=(40, 3), img_hw=(80, 24), cy=40.0)
        coords = frustum_coords(device="cpu", **geo)
        out_shape = [1, 1, 16, 16, 5]
        ranks = bev_pool_v2_prepare(coords, out_shape)
        depth_shape = coords.shape[:5]
    _, n, dd, h, w = depth_shape
    c = out_shape[-1]
    depth = torch.rand((1, n, dd, h, w), generator=g).softmax(2)
    feat = torch.randn((1, n, h, w, c), generator=g)
    args = tuple(t.to(device) for t in (depth, feat, *ranks)) + (out_shape,)
    out_bytes = math.prod(out_shape) * 4
    return Case(
        name=f"bev_pool_v2[{variant}]", args=args,
        scales={"depth": _amax_scale(depth), "feat": _amax_scale(feat)},
        half_args=(0, 1), int8_args={0: "depth", 1: "feat"},
        info=dict(ranks=int(ranks[0].numel()), intervals=int(ranks[3].numel()), channels=c,
                  bytes_fp32=_tensor_bytes(depth, feat, *ranks) + out_bytes),
    )


def bev_pool_columns_case(variant: str, device="cpu", seed=0) -> Case:
    """bev_pool_v2's case with its ranks turned into a column plan (bev_pool_columns_prepare); bytes count
    what this op reads and writes (depth, feat, plan, output), not the ranks it replaces."""
    from bevdeploy.plugins.trt_ops.bev_pool_columns.reference import bev_pool_columns_prepare

    base = bev_pool_case(variant, device="cpu", seed=seed)
    depth, feat, rd, rf, rb, _starts, _lengths, out_shape = base.args
    runs, fill = bev_pool_columns_prepare(rd, rf, rb, depth.shape, out_shape)
    b, z, y, x, c = out_shape
    args = tuple(t.to(device) for t in (depth, feat, runs, fill)) + (out_shape,)
    return Case(
        name=f"bev_pool_columns[{variant}]", args=args, scales=base.scales, half_args=(0, 1),
        int8_args={0: "depth", 1: "feat"},
        info=dict(runs=int(runs.shape[1]), fill=int(fill.numel()), channels=c,
                  bytes_fp32=_tensor_bytes(depth, feat, runs, fill) + b * z * y * x * c * 4),
    )


# --------------------------------------------------------------------------- ms_deform_attn
def _sca_locations(bs, nq, nh, shapes, npts, anchors, g) -> torch.Tensor:
    """Sampling locations as BEVFormer's spatial cross-attention forms them and as BEVFormer_tensorrt's plugin test
    draws them: ``anchors`` reference points per query (uniform on the map, shared by every head and level),
    point p offset from reference point p % anchors by a standard-normal number of pixels of its level."""
    ref = torch.rand((bs, nq, 1, 1, anchors, 2), generator=g)
    off = torch.randn((bs, nq, nh, len(shapes), npts // anchors, anchors, 2), generator=g)
    norm = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float32).view(1, 1, 1, -1, 1, 1, 2)
    return (ref[:, :, :, :, None] + off / norm).view(bs, nq, nh, len(shapes), npts, 2)


def ms_deform_attn_case(variant: str, device="cpu", seed=0) -> Case:
    """BEVFormer encoder spatial cross-attention (value 6x30825x8x32, 40000 queries, 4 levels x 8 points) with
    uniformly random sampling locations ("anchor": every gathered corner its own cache line, the worst case) or
    with those of the anchor's own plugin test ("sca": 4 reference points per query, offsets of about a pixel, see
    _sca_locations), or tiny."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    if variant in ("anchor", "sca"):
        shapes, bs, nq, nh, c, npts = [[116, 200], [58, 100], [29, 50], [15, 25]], 6, 40000, 8, 32, 8
    elif variant == "tiny_c8":  # a channel count that the int8 kernel reads as packed int32 words
        shapes, bs, nq, nh, c, npts = [[5, 7], [3, 3]], 2, 9, 2, 8, 2
    else:
        shapes, bs, nq, nh, c, npts = [[6, 8], [3, 4], [2, 2]], 2, 7, 3, 5, 3
    spatial = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    nl, s = len(shapes), int(sizes.sum())
    value = torch.randn((bs, s, nh, c), generator=g)
    if variant == "sca":
        locs = _sca_locations(bs, nq, nh, shapes, npts, 4, g)  # some points off the map too
    else:
        locs = torch.rand((bs, nq, nh, nl, npts, 2), generator=g) * 1.1 - 0.05  # some points off the map
    weights = torch.rand((bs, nq, nh, nl * npts), generator=g).softmax(-1).view(bs, nq, nh, nl, npts)
    args = tuple(t.to(device) for t in (value, spatial, starts, locs, weights))
    return Case(
        name=f"ms_deform_attn[{variant}]", args=args,
        scales={"value": _amax_scale(value), "attention_weights": _amax_scale(weights)},
        half_args=(0, 3, 4), int8_args={0: "value", 4: "attention_weights"},
        info=dict(bytes_fp32=_tensor_bytes(value, locs, weights) + bs * nq * nh * c * 4),
    )


# --------------------------------------------------------------------------- grid sampler, rotate
def _smooth_warp(grid_shape, g) -> torch.Tensor:
    """A BEV alignment warp (3 degree yaw, a small shift and jitter) as temporal fusion applies it: neighbouring
    output pixels read neighbouring input pixels, unlike uniformly random grids."""
    import torch.nn.functional as F

    n, *spatial, dims = grid_shape
    yaw = math.radians(3.0)
    theta = torch.eye(dims, dims + 1).repeat(n, 1, 1)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = math.cos(yaw), -math.sin(yaw), math.sin(yaw), math.cos(yaw)
    theta[:, 0, dims], theta[:, 1, dims] = 0.04, -0.03
    grid = F.affine_grid(theta, [n, 1, *spatial], align_corners=False)
    return grid + torch.randn(grid.shape, generator=g) * 0.002


def grid_sampler_case(variant: str, device="cpu", seed=0, mode=0, padding=0, align=False) -> Case:
    """2D: a BEV map 1x256x200x200 warped by a smooth 200x200 grid; 3D: a 1x64x8x128x128 volume; or tiny random."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    shapes = {"2d": ((1, 256, 200, 200), (1, 200, 200, 2)), "3d": ((1, 64, 8, 128, 128), (1, 8, 128, 128, 3)),
              "tiny2d": ((2, 3, 5, 6), (2, 4, 7, 2)), "tiny3d": ((2, 3, 4, 5, 6), (2, 3, 4, 5, 3))}[variant]
    x = torch.randn(shapes[0], generator=g)
    if variant.startswith("tiny"):
        grid = torch.rand(shapes[1], generator=g) * 2.2 - 1.1  # random points, a margin of them off the map
    else:
        grid = _smooth_warp(shapes[1], g)
    args = (x.to(device), grid.to(device), mode, padding, align)
    return Case(name=f"grid_sampler[{variant}]", args=args, scales={"input": _amax_scale(x)}, half_args=(0, 1),
                int8_args={0: "input"}, layouts=SAMPLER_LAYOUTS, info=dict(bytes_fp32=_tensor_bytes(x, grid) + x.shape[0] * x.shape[1] * grid[..., 0].numel() // x.shape[0] * 4))


def rotate_case(variant: str, device="cpu", seed=0, interpolation=0) -> Case:
    """BEVFormer prev_bev 256x200x200 turned by the ego yaw change, or tiny (angles avoid rounding ties)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    shape = (256, 200, 200) if variant == "anchor" else (3, 9, 11)
    img = torch.randn(shape, generator=g)
    center = [shape[-1] * 0.5, shape[-2] * 0.5] if variant == "anchor" else [3.3, 4.6]
    args = (img.to(device), torch.tensor([7.3], device=device), torch.tensor(center, device=device), interpolation)
    return Case(name=f"rotate[{variant},{'bilinear' if interpolation == 0 else 'nearest'}]", args=args,
                scales={"img": _amax_scale(img)}, half_args=(0,), int8_args={0: "img"}, layouts=SAMPLER_LAYOUTS,
                unbatched=True,
                info=dict(bytes_fp32=2 * _tensor_bytes(img)))


# --------------------------------------------------------------------------- inverse, attention, deform conv
def inverse_case(variant: str, device="cpu", seed=0) -> Case:
    """lidar2img-like well-conditioned 4x4 transforms: 6 cameras (anchor) or 65536 (throughput) or tiny."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = {"anchor": 6, "batch": 65536}.get(variant, 14)
    a = torch.randn((n, 4, 4), generator=g) * 0.3 + torch.eye(4) * 2.0
    return Case(name=f"inverse[{variant}]", args=(a.to(device),), info=dict(bytes_fp32=2 * _tensor_bytes(a)))


def mha_case(variant: str, device="cpu", seed=0) -> Case:
    """BEVFormer decoder self-attention (1x8x900x32), a 2500-query BEV-tiny attention, or tiny (odd sizes)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    b, h, lq, lk, d = {"decoder": (1, 8, 900, 900, 32), "bev2500": (1, 8, 2500, 2500, 32)}.get(
        variant, (2, 3, 70, 90, 20))
    q, k, v = (torch.randn(s, generator=g) for s in ((b, h, lq, d), (b, h, lk, d), (b, h, lk, d)))
    return Case(name=f"multi_head_attention[{variant}]", args=tuple(t.to(device) for t in (q, k, v)),
                scales={"q": _amax_scale(q), "k": _amax_scale(k), "v": _amax_scale(v)}, half_args=(0, 1, 2),
                int8_args={0: "q", 1: "k", 2: "v"}, info=dict(bytes_fp32=_tensor_bytes(q, k, v) + _tensor_bytes(q)))


def mdcn_case(variant: str, device="cpu", seed=0) -> Case:
    """DCNv2 3x3 256->256 at stride 16 of a 928x1600 image (6x256x58x100, BEVFormer R101-DCN) or tiny."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n, cin, h, w, cout, k, stride, pad, dil, groups, dg = (
        (6, 256, 58, 100, 256, 3, 1, 1, 1, 1, 1) if variant == "anchor" else (2, 6, 7, 9, 8, 3, 1, 1, 1, 2, 3))
    ho = (h + 2 * pad - dil * (k - 1) - 1) // stride + 1
    wo = (w + 2 * pad - dil * (k - 1) - 1) // stride + 1
    x = torch.randn((n, cin, h, w), generator=g)
    off = torch.randn((n, dg * 2 * k * k, ho, wo), generator=g) * 2.0
    mask = torch.rand((n, dg * k * k, ho, wo), generator=g)
    weight = torch.randn((cout, cin // groups, k, k), generator=g) / (cin * k * k) ** 0.5
    bias = torch.randn((cout,), generator=g)
    pairs = ((stride, stride), (pad, pad), (dil, dil))
    args = tuple(t.to(device) for t in (x, off, mask, weight, bias)) + (*pairs, groups, dg)
    return Case(name=f"modulated_deform_conv2d[{variant}]", args=args,
                scales={"input": _amax_scale(x), "weight": _amax_scale(weight)}, half_args=(0, 1, 2, 3),
                int8_args={0: "input", 3: "weight"},
                info=dict(bytes_fp32=_tensor_bytes(x, off, mask, weight, bias) + n * cout * ho * wo * 4))


# --------------------------------------------------------------------------- variants
# op -> (case builder, anchor variants, tiny variants, precisions)
OPS = {
    "bev_pool_v2": (bev_pool_case, ("bevdet", "bevfusion"), ("tiny",), ("fp32", "fp16", "fp16x2", "int8")),
    "bev_pool_columns": (bev_pool_columns_case, ("bevdet", "bevfusion"), ("tiny", "tiny_tall"),
                         ("fp32", "fp16", "fp16x2", "int8")),
    "ms_deform_attn": (ms_deform_attn_case, ("anchor", "sca"), ("tiny", "tiny_c8"), ("fp32", "fp16", "fp16x2", "int8")),
    "grid_sampler": (grid_sampler_case, ("2d", "3d"), ("tiny2d", "tiny3d"), ("fp32", "fp16", "fp16x2", "int8")),
    "rotate": (rotate_case, ("anchor",), ("tiny",), ("fp32", "fp16", "fp16x2", "int8")),
    "inverse": (inverse_case, ("anchor", "batch"), ("tiny",), ("fp32",)),
    "multi_head_attention": (mha_case, ("decoder", "bev2500"), ("tiny",), ("fp32", "fp16", "fp16x2", "int8")),
    "modulated_deform_conv2d": (mdcn_case, ("anchor",), ("tiny",), ("fp32", "fp16", "fp16x2", "int8")),
}


def variant_inputs(case: Case, precision: str) -> tuple[tuple, tuple]:
    """(kernel args in the variant's storage, the same values as fp32 for the reference)."""
    from bevdeploy.plugins.trt_ops.triton_util import quantize_per_tensor

    kargs, rargs = list(case.args), list(case.args)
    if precision in ("fp16", "fp16x2"):
        for i in case.half_args:
            kargs[i] = case.args[i].half()
            rargs[i] = kargs[i].float()
    elif precision == "int8":
        for i in case.half_args:  # what the int8 kernels keep in fp16 (coordinates, weights), stored as fp16
            kargs[i] = case.args[i].half()  # like the fp16 variants' inputs (before session 5 the kernels
            rargs[i] = kargs[i].float()     # converted them from fp32 inside the timed call)
        for i, key in case.int8_args.items():
            kargs[i] = quantize_per_tensor(case.args[i], case.scales[key])
            rargs[i] = kargs[i].float() * case.scales[key]
    return tuple(kargs), tuple(rargs)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; NaN anywhere counts as failure (inf)."""
    o, r = out.double(), ref.double()
    if not torch.isfinite(o).all():
        return float("inf")
    return float((o - r).norm() / r.norm().clamp_min(1e-30))


# fp32 1e-5 and fp16 3e-3 from REFERENCE.md; fp16x2 and int8 are our documented bounds (vs the reference on
# the same fp16-rounded / dequantised inputs: they bound the kernel's arithmetic, not the input rounding).
TOLERANCE = {"fp32": 1e-5, "fp16": 3e-3, "fp16x2": 1e-2, "int8": 3e-3}


# --------------------------------------------------------------------------- references
def _grid_sample_ref(x, grid, mode=0, padding=0, align=False):
    import torch.nn.functional as F

    modes, pads = ["bilinear", "nearest"], ["zeros", "border", "reflection"]
    return F.grid_sample(x, grid.to(x.dtype), mode=modes[mode], padding_mode=pads[padding], align_corners=align)


def _rotate_ref(img, angle, center, interpolation=0):
    """torchvision.transforms.functional.rotate's tensor path (inverse affine grid + grid_sample)."""
    import torch.nn.functional as F

    h, w = img.shape[-2:]
    rot = -math.radians(float(angle.reshape(-1)[0]))
    cx, cy = float(center[0]) - w * 0.5, float(center[1]) - h * 0.5
    m = [math.cos(rot), math.sin(rot), 0.0, -math.sin(rot), math.cos(rot), 0.0]
    m[2] += m[0] * -cx + m[1] * -cy + cx
    m[5] += m[3] * -cx + m[4] * -cy + cy
    theta = torch.tensor(m, dtype=torch.float32, device=img.device).reshape(1, 2, 3)
    xs = torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, w, device=img.device)
    ys = torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, h, device=img.device)
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None], torch.ones(1, 1, device=img.device)), -1)
    rt = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], device=img.device)
    grid = base.reshape(1, h * w, 3).bmm(rt).reshape(1, h, w, 2)
    planes = img.reshape(1, -1, h, w).float()
    out = F.grid_sample(planes, grid, mode=["bilinear", "nearest"][interpolation], padding_mode="zeros",
                        align_corners=False)
    return out.reshape(img.shape)


def _mha_ref(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v


def _mdcn_ref(x, off, mask, w, b, stride, pad, dil, groups, dg):
    """mmcv DCNv2 as im2col through grid_sample (zero padding, align_corners=False) and a grouped matmul."""
    import torch.nn.functional as F

    (stride, _), (pad, _), (dil, _) = stride, pad, dil

    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    taps = kh * kw
    ho = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    ys = torch.arange(ho, device=x.device).float() * stride - pad
    xs = torch.arange(wo, device=x.device).float() * stride - pad
    xg = x.reshape(n * dg, cin // dg, h, wd)
    offv, maskv = off.reshape(n, dg, taps, 2, ho, wo), mask.reshape(n, dg, taps, ho, wo)
    cols = []
    for t in range(taps):
        i, j = divmod(t, kw)
        py = ys.view(1, 1, ho, 1) + i * dil + offv[:, :, t, 0]
        px = xs.view(1, 1, 1, wo) + j * dil + offv[:, :, t, 1]
        grid = torch.stack([(px + 0.5) / wd * 2 - 1, (py + 0.5) / h * 2 - 1], -1).reshape(n * dg, ho, wo, 2)
        s = F.grid_sample(xg, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        s = s.reshape(n, dg, cin // dg, ho, wo) * maskv[:, :, t].unsqueeze(2)
        cols.append(s.reshape(n, cin, ho * wo))
    col = torch.stack(cols, 2).reshape(n, groups, cin // groups * taps, ho * wo)
    out = torch.einsum("gor,ngrp->ngop", w.reshape(groups, cout // groups, cin_g * taps), col)
    return out.reshape(n, cout, ho, wo) + (b.view(1, -1, 1, 1) if b is not None else 0)


_FALLBACK = {
    "grid_sampler": _grid_sample_ref,
    "rotate": _rotate_ref,
    "inverse": torch.linalg.inv,
    "multi_head_attention": _mha_ref,
    "modulated_deform_conv2d": _mdcn_ref,
}


def reference_for(op: str):
    """(the op's ``<op>_reference`` from its reference.py, "reference.py"), or a local torch formulation
    while that file has not landed (named so in the results)."""
    import importlib

    try:
        module = importlib.import_module(f"bevdeploy.plugins.trt_ops.{op}.reference")
        return getattr(module, f"{op}_reference"), "reference.py"
    except (ImportError, AttributeError):
        return _FALLBACK[op], "local torch formulation (reference.py not landed)"


def kernel_for(op: str):
    """The op's ``<op>_cuda`` entry point."""
    import importlib

    return getattr(importlib.import_module(f"bevdeploy.plugins.trt_ops.{op}.kernels"), f"{op}_cuda")
