"""The MSDA x-pair path (value_pairs + _ms_deform_attn_pairs_kernel) in Triton's interpreter (TRITON_INTERPRET=1).

Checks the pairs layout exactly, and the kernel with pairs on and off against ms_deform_attn_reference on the same
fp16-rounded / dequantised inputs (ops_cases.variant_inputs, tolerance ops_cases.TOLERANCE), including points off
the map and points exactly on the left / right / top / bottom edges (x0 = -1, x0 = W - 1, y0 = -1, y0 = H - 1).
A spy on the two main kernels makes sure each test runs the path it names.
"""

import pytest
import torch
from triton_interpreter import enter

ops_cases = enter()  # before anything imports Triton

from bevdeploy.plugins.trt_ops.ms_deform_attn import kernels  # noqa: E402
from bevdeploy.plugins.trt_ops.ms_deform_attn.reference import ms_deform_attn_reference  # noqa: E402

PAIR_PRECISIONS = ("int8", "fp16", "fp16x2")


class _Spy:
    """Counts launches of a Triton kernel and forwards them."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __getitem__(self, grid):
        self.calls += 1
        return self.fn[grid]


@pytest.fixture
def spies(monkeypatch):
    pairs, corners = _Spy(kernels._ms_deform_attn_pairs_kernel), _Spy(kernels._ms_deform_attn_kernel)
    monkeypatch.setattr(kernels, "_ms_deform_attn_pairs_kernel", pairs)
    monkeypatch.setattr(kernels, "_ms_deform_attn_kernel", corners)
    return pairs, corners


def _tuning(monkeypatch, pairs, **extra):
    monkeypatch.setitem(kernels.TUNING, "pairs", pairs)
    monkeypatch.setitem(kernels.TUNING, "per_precision", {})
    for key, val in extra.items():
        monkeypatch.setitem(kernels.TUNING, key, val)


def _case(shapes, bs, nq, nh, c, npts, seed=1) -> ops_cases.Case:
    """Like ops_cases.ms_deform_attn_case, at other small sizes."""
    g = torch.Generator().manual_seed(seed)
    spatial = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    value = torch.randn((bs, int(sizes.sum()), nh, c), generator=g)
    locs = torch.rand((bs, nq, nh, len(shapes), npts, 2), generator=g) * 1.1 - 0.05
    weights = torch.rand((bs, nq, nh, len(shapes) * npts), generator=g).softmax(-1).view(bs, nq, nh, len(shapes), npts)
    return ops_cases.Case(
        name=f"ms_deform_attn[c{c}]", args=(value, spatial, starts, locs, weights),
        scales={"value": float(value.abs().max()) / 127, "attention_weights": float(weights.abs().max()) / 127},
        half_args=(0, 3, 4), int8_args={0: "value", 4: "attention_weights"},
    )


def _edge_case() -> ops_cases.Case:
    """Level 0 (H=4, W=8) sampled only at edge coordinates (exact in fp16): x in {-1 (outside), -0.5, -0.25
    (x0 = -1), 0, 7 (fx = 0), 7.5 (x0 = W - 1), 8 (outside)}, y likewise with H = 4."""
    case = _case([[4, 8], [3, 2]], bs=2, nq=6, nh=2, c=8, npts=4, seed=3)
    locs = case.args[3].clone()
    xs = torch.tensor([-0.5, 0.0, 0.25, 0.5, 7.5, 8.0, 8.5]) / 8  # loc = (x + 0.5) / W
    ys = torch.tensor([-0.5, 0.0, 0.5, 3.5, 4.0, 4.5]) / 4
    g = torch.Generator().manual_seed(4)
    shape = locs[:, :, :, 0, :, 0].shape
    locs[:, :, :, 0, :, 0] = xs[torch.randint(len(xs), shape, generator=g)]
    locs[:, :, :, 0, :, 1] = ys[torch.randint(len(ys), shape, generator=g)]
    x = locs[:, :, :, 0, :, 0] * 8 - 0.5
    y = locs[:, :, :, 0, :, 1] * 4 - 0.5
    inside = (x > -1) & (x < 8) & (y > -1) & (y < 4)
    for floor, want in ((x.floor(), -1), (x.floor(), 7), (y.floor(), -1), (y.floor(), 3)):
        assert (inside & (floor == want)).any(), "the edge case must sample every edge"
    case.args = (*case.args[:3], locs, case.args[4])
    return case


def _check(case, precision):
    kargs, rargs = ops_cases.variant_inputs(case, precision)
    out = kernels.ms_deform_attn_cuda(*kargs, precision=precision, scales=case.scales)
    ref = ms_deform_attn_reference(*rargs)
    assert out.shape == ref.shape and ref.abs().max() > 0
    err = ops_cases.rel_error(out, ref)
    assert err <= ops_cases.TOLERANCE[precision], f"{case.name} {precision}: relative error {err:.2e}"


CASES = {
    "tiny_c8": lambda: ops_cases.ms_deform_attn_case("tiny_c8"),
    "c32": lambda: _case([[3, 5], [2, 3]], bs=1, nq=5, nh=2, c=32, npts=2),  # the anchor's row: 64-B int8 pairs
    "edges": _edge_case,
}


@pytest.mark.parametrize("pairs", [True, False])
@pytest.mark.parametrize("precision", PAIR_PRECISIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_pairs_on_and_off_match_reference(name, precision, pairs, spies, monkeypatch):
    _tuning(monkeypatch, pairs)
    _check(CASES[name](), precision)
    assert (spies[0].calls, spies[1].calls) == ((1, 0) if pairs else (0, 1))


@pytest.mark.parametrize("lane_bytes,num_warps", [(4, 1), (16, 4), (128, 2)])
def test_pairs_lane_splits(lane_bytes, num_warps, spies, monkeypatch):
    """1 word per lane (8 lanes per 32-B int8 pair), 16 B per lane, and lane_bytes above a row (capped at one)."""
    _tuning(monkeypatch, True, lane_bytes=lane_bytes, num_warps=num_warps)
    _check(_edge_case(), "int8")
    assert spies[0].calls == 1


def test_int8_default_reads_four_corners(spies):
    """Pairs are off by default (measured no faster on the H200, see kernels.TUNING)."""
    _check(ops_cases.ms_deform_attn_case("tiny_c8"), "int8")
    assert spies[0].calls == 0 and spies[1].calls == 1


@pytest.mark.parametrize("variant,precision", [("tiny", "int8"), ("tiny", "fp16"), ("tiny_c8", "fp32")])
def test_pairs_fall_back_where_they_do_not_apply(variant, precision, spies, monkeypatch):
    """C = 5 (int8 unpacked, fp16 rows not whole words) and fp32 run the four-corner kernel, still correct."""
    _tuning(monkeypatch, True)
    _check(ops_cases.ms_deform_attn_case(variant), precision)
    assert spies[0].calls == 0 and spies[1].calls == 1


@pytest.mark.parametrize("dtype", [torch.int8, torch.float16])
def test_value_pairs_layout(dtype):
    shapes = torch.tensor([[3, 4], [2, 1], [1, 3]])
    starts = torch.tensor([0, 12, 14])
    value = (torch.arange(2 * 17 * 3 * 8) % 97 + 1).reshape(2, 17, 3, 8).to(dtype)
    pairs = kernels.value_pairs(value, shapes, starts)
    assert pairs.shape == (2, 17, 3, 2, 8) and pairs.dtype == dtype
    last_col = torch.zeros(17, dtype=torch.bool)
    for (h, w), s0 in zip(shapes.tolist(), starts.tolist(), strict=True):
        last_col[s0 + w - 1 : s0 + h * w : w] = True
    nxt = torch.cat([value[:, 1:], torch.zeros_like(value[:, :1])], 1)
    nxt[:, last_col] = 0
    assert torch.equal(pairs[:, :, :, 0], value)
    assert torch.equal(pairs[:, :, :, 1], nxt)
