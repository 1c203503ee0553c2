"""bev_pool_v2: reference vs a dense scatter, custom op, autograd, ONNX round trips."""

import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops.bev_pool_v2 import bev_pool_v2_prepare, bev_pool_v2_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _case(b=1, n=2, d=3, h=4, w=5, c=6, z=1, y=7, x=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shape = (b, n, d, h, w)
    # some coordinates fall outside the grid on purpose (dropped by prepare)
    coords = torch.stack(
        [torch.randint(-1, x + 1, shape, generator=g), torch.randint(-1, y + 1, shape, generator=g),
         torch.randint(-1, z + 1, shape, generator=g)], -1)
    depth = torch.rand(shape, generator=g, dtype=dtype) + 0.1
    feat = torch.randn(b, n, h, w, c, generator=g, dtype=dtype)
    out_shape = [b, z, y, x, c]
    return coords, depth, feat, out_shape


def _dense(coords, depth, feat, out_shape):
    """Independent formulation: materialise every frustum point's feature, scatter-add by voxel."""
    b, z, y, x, c = out_shape
    pts = depth.unsqueeze(-1) * feat.unsqueeze(2)  # B,N,D,H,W,C
    out = torch.zeros(b, z, y, x, c, dtype=feat.dtype)
    for idx in torch.cartesian_prod(*[torch.arange(s) for s in depth.shape]):
        cx, cy, cz = coords[tuple(idx)].tolist()
        if 0 <= cx < x and 0 <= cy < y and 0 <= cz < z:
            out[idx[0], cz, cy, cx] += pts[tuple(idx)]
    return out.permute(0, 4, 1, 2, 3)


@pytest.mark.parametrize("b,z,c", [(1, 1, 6), (2, 2, 5)])
def test_reference_matches_dense_scatter(b, z, c):
    coords, depth, feat, out_shape = _case(b=b, z=z, c=c, seed=b + z)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    out = bev_pool_v2_reference(depth, feat, *ranks, out_shape)
    assert out.abs().sum() > 0
    torch.testing.assert_close(out, _dense(coords, depth, feat, out_shape), rtol=1e-5, atol=1e-5)


def test_prepare_sorted_runs_and_dtypes():
    coords, *_, out_shape = _case(seed=3)
    rd, rf, rb, starts, lengths = bev_pool_v2_prepare(coords, out_shape)
    assert all(t.dtype == torch.int32 for t in (rd, rf, rb, starts, lengths))
    assert torch.all(rb[1:] >= rb[:-1])
    assert int(lengths.sum()) == rb.numel() and torch.all(lengths > 0)
    cells = rb[starts.long()]
    assert torch.unique(cells).numel() == cells.numel()


def test_prepare_lists_long_intervals_first():
    """Intervals of more than LONG_INTERVAL points come first (the GPU kernel starts its multi-step programs
    before the rest), each group in cell order; the points stay sorted by cell and the result is unchanged."""
    from bevdeploy.plugins.trt_ops.bev_pool_v2.reference import LONG_INTERVAL

    g = torch.Generator().manual_seed(5)
    shape, out_shape = (1, 2, 10, 4, 5), [1, 1, 4, 4, 3]  # 400 points into 16 cells: runs of ~25, some > 32
    cells = torch.randint(0, 16, shape, generator=g)
    cells[0, 0, :, :, 0] = 3  # a run of 40+ points
    coords = torch.stack([cells % 4, cells // 4, torch.zeros_like(cells)], -1)
    rd, rf, rb, starts, lengths = bev_pool_v2_prepare(coords, out_shape)
    long = lengths > LONG_INTERVAL
    assert long.any() and (~long).any()
    assert not long[long.long().argmin():].any()  # no long interval after the first short one
    cells_listed = rb[starts.long()]
    for group in (long, ~long):
        assert torch.all(cells_listed[group][1:] > cells_listed[group][:-1])
    assert torch.all(rb[1:] >= rb[:-1]) and int(lengths.sum()) == rb.numel()
    depth, feat = torch.rand(shape, generator=g), torch.randn((1, 2, 4, 5, 3), generator=g)
    torch.testing.assert_close(bev_pool_v2_reference(depth, feat, rd, rf, rb, starts, lengths, out_shape),
                               _dense(coords, depth, feat, out_shape), rtol=1e-5, atol=1e-5)


def test_custom_op_matches_reference_and_empty_cells_are_zero():
    coords, depth, feat, out_shape = _case(seed=4, y=9, x=11)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    out = torch.ops.bevdeploy.bev_pool_v2(depth, feat, *ranks, out_shape)
    torch.testing.assert_close(out, bev_pool_v2_reference(depth, feat, *ranks, out_shape))
    hit = torch.zeros(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3], dtype=torch.bool)
    hit[ranks[2].long()] = True
    assert torch.all(out.permute(0, 2, 3, 4, 1).reshape(hit.numel(), -1)[~hit] == 0)


def test_empty_intervals_and_no_points():
    _, depth, feat, out_shape = _case(seed=5)
    empty = torch.zeros(0, dtype=torch.int32)
    out = torch.ops.bevdeploy.bev_pool_v2(depth, feat, empty, empty, empty, empty, empty, out_shape)
    assert out.shape == (1, 6, 1, 7, 8) and torch.all(out == 0)
    coords = torch.full((1, 2, 3, 4, 5, 3), -1)
    assert all(t.numel() == 0 for t in bev_pool_v2_prepare(coords, out_shape))


def test_zero_length_interval_contributes_nothing():
    coords, depth, feat, out_shape = _case(seed=6)
    rd, rf, rb, starts, lengths = bev_pool_v2_prepare(coords, out_shape)
    lengths = lengths.clone()
    lengths[0] = 0
    out = torch.ops.bevdeploy.bev_pool_v2(depth, feat, rd, rf, rb, starts, lengths, out_shape)
    cell = int(rb[starts[0]])
    assert torch.all(out.permute(0, 2, 3, 4, 1).reshape(-1, out.shape[1])[cell] == 0)


def test_non_contiguous_inputs():
    coords, depth, feat, out_shape = _case(seed=7)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    feat_nc = feat.transpose(1, 2).contiguous().transpose(1, 2)
    assert not feat_nc.is_contiguous()
    out = torch.ops.bevdeploy.bev_pool_v2(depth, feat_nc, *ranks, out_shape)
    torch.testing.assert_close(out, bev_pool_v2_reference(depth, feat, *ranks, out_shape))


def test_gradcheck_float64():
    coords, depth, feat, out_shape = _case(n=1, d=2, h=3, w=3, c=3, y=4, x=4, seed=8, dtype=torch.float64)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    depth.requires_grad_(True)
    feat.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda d, f: torch.ops.bevdeploy.bev_pool_v2(d, f, *ranks, out_shape), (depth, feat)
    )


@pytest.mark.parametrize("scheme,half2,op_type", [
    ("bevdeploy", False, "BEVPoolV2"), ("bevformer_tensorrt", False, "BEVPoolV2TRT"),
    ("bevformer_tensorrt", True, "BEVPoolV2TRT2"),
])
def test_onnx_round_trip(scheme, half2, op_type):
    coords, depth, feat, out_shape = _case(seed=9)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    inputs = (depth, feat, *ranks)
    model = export_one_op(lambda d, f, *r: torch.ops.bevdeploy.bev_pool_v2(d, f, *r, out_shape), inputs, scheme, half2)
    nodes = custom_nodes(model)
    assert [n.op_type for n in nodes] == [op_type]
    attrs = {a.name for a in nodes[0].attribute}
    assert {"out_height", "out_width"} <= attrs
    (out,) = run_onnx(model, inputs)
    torch.testing.assert_close(torch.from_numpy(out), bev_pool_v2_reference(*inputs, out_shape), rtol=1e-5, atol=1e-5)


def test_bevformer_scheme_refuses_batch_or_z_above_one_and_mmdeploy_has_no_counterpart():
    coords, depth, feat, out_shape = _case(b=2, seed=10)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    fn = lambda d, f, *r: torch.ops.bevdeploy.bev_pool_v2(d, f, *r, out_shape)  # noqa: E731
    with pytest.raises(BevDeployError, match="batch 1"):
        export_one_op(fn, (depth, feat, *ranks), "bevformer_tensorrt")
    with pytest.raises(BevDeployError, match="no mmdeploy counterpart"):
        export_one_op(fn, (depth, feat, *ranks), "mmdeploy")


def test_benchmark_anchors_are_the_models_ranks_on_nuscenes_rig():
    """benchmarks/ops.py times bev_pool_v2 on the ranks the model plugins compute for nuScenes' rig: BEVDet's within
    0.5% of the 179,520 ranks / 11,398 intervals of its TensorRT deployment at 256x704 (REFERENCE.md)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import ops_cases

    (rd, rf, rb, starts, lengths), out_shape, depth_shape = ops_cases.nuscenes_ranks("bevdet")
    assert out_shape == [1, 1, 128, 128, 64] and depth_shape == (1, 6, 59, 16, 44)
    assert abs(rd.numel() / 179520 - 1) < 0.005 and abs(starts.numel() / 11398 - 1) < 0.005
    assert int(lengths.sum()) == rd.numel() and rb.unique().numel() == starts.numel()
    (rd, _rf, _rb, starts, _lengths), out_shape, depth_shape = ops_cases.nuscenes_ranks("bevfusion")
    assert out_shape == [1, 1, 360, 360, 80] and depth_shape == (1, 6, 118, 32, 88)
    # 1,833,766 / 96,821 here; fp32 rounding on another CPU may move a few points across a cell edge
    assert abs(rd.numel() / 1833766 - 1) < 0.001 and abs(starts.numel() / 96821 - 1) < 0.001
