"""bev_pool_columns: equal to bev_pool_v2 on the same ranks, plan checks and invariants, custom op,
autograd, ONNX round trip and the schemes that refuse it, registration."""

import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops import op_specs
from bevdeploy.plugins.trt_ops.bev_pool_columns import (
    bev_pool_columns_prepare,
    bev_pool_columns_reference,
    plan_points,
)
from bevdeploy.plugins.trt_ops.bev_pool_columns.reference import RUN_ALIGN
from bevdeploy.plugins.trt_ops.bev_pool_v2 import bev_pool_v2_prepare, bev_pool_v2_reference
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx


def _inputs(b=1, n=2, d=3, h=4, w=5, c=6, z=1, y=7, x=8, seed=0, dtype=torch.float32, level=False):
    """Random frustum voxel coordinates (some off-grid), depth, feat, out_shape and bev_pool_v2's ranks.

    ``level=True`` gives every pixel row of a (camera, depth bin, column) the same voxel, as a level
    camera does, so the column plan has runs of many rows (full 32-bit masks included).
    """
    g = torch.Generator().manual_seed(seed)
    shape = (b, n, d, h, w)
    coord_shape = (b, n, d, 1, w) if level else shape
    coords = torch.stack(
        [torch.randint(-1, x + 1, coord_shape, generator=g), torch.randint(-1, y + 1, coord_shape, generator=g),
         torch.randint(-1, z + 1, coord_shape, generator=g)], -1).expand(*shape, 3)
    depth = torch.rand(shape, generator=g, dtype=dtype) + 0.1
    feat = torch.randn(b, n, h, w, c, generator=g, dtype=dtype)
    out_shape = [b, z, y, x, c]
    return depth, feat, out_shape, bev_pool_v2_prepare(coords, out_shape)


def _plan(depth, out_shape, ranks):
    return bev_pool_columns_prepare(*ranks[:3], depth.shape, out_shape)


def _n_cells(out_shape):
    return out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]


CASES = {
    "b1z1": dict(b=1, z=1, seed=1),
    "b2z2": dict(b=2, z=2, c=5, seed=2),
    "h40_two_slices": dict(n=1, d=2, h=40, w=3, c=4, seed=3),
    "h40_level": dict(n=1, d=2, h=40, w=3, c=4, y=3, x=3, seed=4, level=True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_reference_matches_bev_pool_v2_on_same_ranks(case):
    depth, feat, out_shape, ranks = _inputs(**case)
    runs, fill = _plan(depth, out_shape, ranks)
    assert runs.dtype == fill.dtype == torch.int32 and runs.shape[0] == 4
    out = bev_pool_columns_reference(depth, feat, runs, fill, out_shape)
    expected = bev_pool_v2_reference(depth, feat, *ranks, out_shape)
    assert expected.abs().sum() > 0 and out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_plans_have_shared_and_owned_cells_second_slices_and_full_masks():
    """The cases above exercise both cell codes, the second 32-row slice and bit 31 (int32 sign)."""
    depth, _, out_shape, ranks = _inputs(**CASES["b2z2"])
    code = _plan(depth, out_shape, ranks)[0][3]
    assert (code < 0).any() and (code >= 0).any()
    depth, _, out_shape, ranks = _inputs(**CASES["h40_two_slices"])
    col = _plan(depth, out_shape, ranks)[0][0]
    assert (col % 2 == 1).any()  # S = 2 slices: odd columns are rows 32..39
    depth, _, out_shape, ranks = _inputs(**CASES["h40_level"])
    bits = _plan(depth, out_shape, ranks)[0][2]
    assert (bits == -1).any()  # all 32 rows of a slice in one run
    assert (bits == 0xFF).any()  # rows 32..39 in one run


def test_prepare_refuses_feat_ranks_that_are_not_the_depth_pixel():
    depth, _, out_shape, (rd, rf, rb, *_) = _inputs(seed=5)
    bad = rf.clone()
    bad[0] = (bad[0] + 1) % (depth.shape[0] * depth.shape[1] * depth.shape[3] * depth.shape[4])
    with pytest.raises(ValueError, match="ranks_feat is not the pixel of ranks_depth"):
        bev_pool_columns_prepare(rd, bad, rb, depth.shape, out_shape)


@pytest.mark.parametrize("where", ["above", "below"])
def test_prepare_refuses_bev_ranks_outside_the_grid(where):
    depth, _, out_shape, (rd, rf, rb, *_) = _inputs(seed=6)
    bad = rb.clone()
    bad[-1] = _n_cells(out_shape) if where == "above" else -1
    with pytest.raises(ValueError, match="ranks_bev indexes outside"):
        bev_pool_columns_prepare(rd, rf, bad, depth.shape, out_shape)


def test_prepare_refuses_depth_ranks_outside_depth():
    depth, _, out_shape, (rd, rf, rb, *_) = _inputs(seed=7)
    with pytest.raises(ValueError, match="ranks_depth indexes outside"):
        bev_pool_columns_prepare(rd, rf, rb, (1, 1, *depth.shape[2:]), out_shape)


def test_empty_ranks_give_an_empty_plan_and_zeros():
    depth, feat, out_shape, _ = _inputs(seed=8)
    ranks = bev_pool_v2_prepare(torch.full((*depth.shape, 3), -1), out_shape)
    assert ranks[0].numel() == 0
    runs, fill = _plan(depth, out_shape, ranks)
    assert runs.shape == (4, 0) and runs.dtype == torch.int32
    assert torch.equal(fill, torch.arange(_n_cells(out_shape), dtype=torch.int32))
    out = torch.ops.bevdeploy.bev_pool_columns(depth, feat, runs, fill, out_shape)
    assert out.shape == (1, 6, 1, 7, 8) and torch.all(out == 0)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan_invariants(case):
    depth, _, out_shape, ranks = _inputs(**case)
    runs, fill = _plan(depth, out_shape, ranks)
    col, _, bits, code = runs.long()
    assert torch.all(col[1:] >= col[:-1])  # sorted by column
    starts = torch.nonzero(torch.diff(col, prepend=col[:1] - 1)).reshape(-1)
    assert runs.shape[1] % RUN_ALIGN == 0 and torch.all(starts % RUN_ALIGN == 0)  # columns padded to RUN_ALIGN
    real = bits != 0  # padding runs have no row; every other run has at least one
    assert torch.all(bits[~real] == 0) and torch.all(code[~real] == 0)
    assert torch.all(real[starts])  # a column begins with a real run
    code = code[real]
    owned = code[code >= 0]
    shared = -code[code < 0] - 1
    assert torch.unique(owned).numel() == owned.numel()  # an owned cell has exactly one run
    fill_set = set(fill.tolist())
    assert fill_set.isdisjoint(owned.tolist()) and set(shared.tolist()) <= fill_set
    assert sorted(fill_set | set(owned.tolist())) == list(range(_n_cells(out_shape)))
    assert torch.all(fill[1:] > fill[:-1])
    # expanded back, the plan is exactly the ranks' points
    points = torch.stack(plan_points(runs, depth.shape), 1)
    assert points.shape[0] == ranks[0].numel()
    expected = torch.stack([r.long() for r in ranks[:3]], 1)
    assert torch.equal(torch.unique(points, dim=0), torch.unique(expected, dim=0))


def test_plan_points_refuses_a_malformed_plan():
    with pytest.raises(ValueError, match="runs must be"):
        plan_points(torch.zeros(3, 2, dtype=torch.int32), (1, 1, 1, 1, 1))


def test_custom_op_matches_reference_and_non_contiguous_feat():
    depth, feat, out_shape, ranks = _inputs(seed=9, y=9, x=11)
    runs, fill = _plan(depth, out_shape, ranks)
    expected = bev_pool_columns_reference(depth, feat, runs, fill, out_shape)
    out = torch.ops.bevdeploy.bev_pool_columns(depth, feat, runs, fill, out_shape)
    torch.testing.assert_close(out, expected)
    feat_nc = feat.transpose(1, 2).contiguous().transpose(1, 2)
    assert not feat_nc.is_contiguous()
    torch.testing.assert_close(torch.ops.bevdeploy.bev_pool_columns(depth, feat_nc, runs, fill, out_shape), expected)


def test_gradcheck_float64_and_grads_equal_bev_pool_v2():
    depth, feat, out_shape, ranks = _inputs(n=1, d=2, h=3, w=3, c=3, y=4, x=4, seed=10, dtype=torch.float64)
    runs, fill = _plan(depth, out_shape, ranks)
    depth.requires_grad_(True)
    feat.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda d, f: torch.ops.bevdeploy.bev_pool_columns(d, f, runs, fill, out_shape), (depth, feat)
    )
    weight = torch.randn(out_shape[0], out_shape[4], *out_shape[1:4], dtype=torch.float64,
                         generator=torch.Generator().manual_seed(11))
    grads_cols = torch.autograd.grad(
        (torch.ops.bevdeploy.bev_pool_columns(depth, feat, runs, fill, out_shape) * weight).sum(), (depth, feat))
    grads_v2 = torch.autograd.grad(
        (torch.ops.bevdeploy.bev_pool_v2(depth, feat, *ranks, out_shape) * weight).sum(), (depth, feat))
    assert grads_cols[0].abs().sum() > 0 and grads_cols[1].abs().sum() > 0
    for got, want in zip(grads_cols, grads_v2, strict=True):
        torch.testing.assert_close(got, want)


def test_onnx_round_trip_bevdeploy_scheme():
    depth, feat, out_shape, ranks = _inputs(b=2, z=2, c=5, seed=12)
    runs, fill = _plan(depth, out_shape, ranks)
    inputs = (depth, feat, runs, fill)
    model = export_one_op(lambda *t: torch.ops.bevdeploy.bev_pool_columns(*t, out_shape), inputs, "bevdeploy")
    nodes = custom_nodes(model)
    assert [(n.domain, n.op_type) for n in nodes] == [("bevdeploy", "BEVPoolColumns")]
    attrs = {a.name: a for a in nodes[0].attribute}
    assert (attrs["out_z"].i, attrs["out_height"].i, attrs["out_width"].i) == tuple(out_shape[1:4])
    assert attrs["plugin_namespace"].s == b"bevdeploy"
    (out,) = run_onnx(model, inputs)
    expected = bev_pool_columns_reference(*inputs, out_shape)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", ["bevformer_tensorrt", "mmdeploy"])
def test_other_schemes_refuse_the_op(scheme):
    depth, feat, out_shape, ranks = _inputs(seed=13)
    runs, fill = _plan(depth, out_shape, ranks)
    with pytest.raises(BevDeployError, match=f"no {scheme} counterpart"):
        export_one_op(lambda *t: torch.ops.bevdeploy.bev_pool_columns(*t, out_shape), (depth, feat, runs, fill),
                      scheme)


def test_op_spec_lists_the_op_with_its_onnx_name():
    specs = {s.name: s for s in op_specs()}
    spec = specs["bev_pool_columns"]
    assert spec.onnx_names == {"bevdeploy": "bevdeploy::BEVPoolColumns"}
    assert spec.reference is bev_pool_columns_reference
    assert callable(spec.ort_define) and callable(spec.trt_register)
    assert hasattr(torch.ops.bevdeploy, "bev_pool_columns")
