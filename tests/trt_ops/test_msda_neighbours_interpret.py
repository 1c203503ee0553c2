"""The MSDA neighbour-entry paths (value_neighbours + _ms_deform_attn_neighbours_kernel: x-pairs and quads) in
Triton's interpreter (TRITON_INTERPRET=1).

Checks the entry layout exactly, and the kernel with 1, 2 and 4 corners per entry against ms_deform_attn_reference on the same
fp16-rounded / dequantised inputs (ops_cases.variant_inputs, tolerance ops_cases.TOLERANCE), including points off
the map and points exactly on the left / right / top / bottom edges (x0 = -1, x0 = W - 1, y0 = -1, y0 = H - 1).
A spy on the two main kernels makes sure each test runs the path it names.
"""

import pytest
import torch
from triton_interpreter import enter

ops_cases = enter()  # before anything imports Triton

import dot_pairs_case  # noqa: E402
from bevdeploy.plugins.trt_ops.ms_deform_attn import kernels  # noqa: E402
from bevdeploy.plugins.trt_ops.ms_deform_attn.reference import ms_deform_attn_reference  # noqa: E402

ENTRY_PRECISIONS = ("int8", "fp16", "fp16x2")


class _Spy:
    """Counts launches of a Triton kernel, keeps the constexprs of the last, and forwards them."""

    def __init__(self, fn):
        self.fn, self.calls, self.kwargs = fn, 0, {}

    def __getitem__(self, grid):
        self.calls += 1

        def launch(*args, **kwargs):
            self.kwargs = kwargs
            return self.fn[grid](*args, **kwargs)

        return launch


@pytest.fixture
def spies(monkeypatch):
    entries, corners = _Spy(kernels._ms_deform_attn_neighbours_kernel), _Spy(kernels._ms_deform_attn_kernel)
    monkeypatch.setattr(kernels, "_ms_deform_attn_neighbours_kernel", entries)
    monkeypatch.setattr(kernels, "_ms_deform_attn_kernel", corners)
    return entries, corners


def _tuning(monkeypatch, corners, **extra):
    monkeypatch.setitem(kernels.TUNING, "corners", corners)
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
    "c32": lambda: _case([[3, 5], [2, 3]], bs=1, nq=5, nh=2, c=32, npts=2),  # the anchor's row: 128-B int8 quads
    "edges": _edge_case,
}


ORDERS = [{"head_major": True}, {"l1_bytes": 400}, {"head_major": True, "l1_bytes": 400}]  # 400: some levels stream
# int8 x-pairs summed by integer dot products (ignored by fp16 / fp16x2 and by quads)
INT_DOT = [(2, {"int_dot": True}), (2, {"int_dot": True, "level_loads": True, "head_major": True}),
           (2, {"int_dot": True, "level_loads": True, "l1_bytes": 400}), (4, {"int_dot": True})]


@pytest.mark.parametrize("corners,steps", [(1, {}), (2, {}), (4, {}), (2, {"level_loads": True}),
                                           (4, {"level_loads": True}),
                                           *((k, {"level_loads": True, **o}) for k in (1, 2, 4) for o in ORDERS),
                                           *INT_DOT])
@pytest.mark.parametrize("precision", ENTRY_PRECISIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_entries_match_reference(name, precision, corners, steps, spies, monkeypatch):
    _tuning(monkeypatch, corners, **steps)
    case = CASES[name]()
    _check(case, precision)
    assert (spies[0].calls, spies[1].calls) == ((0, 1) if corners == 1 else (1, 0))
    spy = spies[1] if corners == 1 else spies[0]
    assert spy.kwargs["HEAD_MAJOR"] == steps.get("head_major", False)
    assert spy.kwargs["L1_BYTES"] == steps.get("l1_bytes", 0)
    if corners > 1:  # the path the test names ran: entries of that many corners, level loads where asked
        assert spies[0].kwargs["IDOT"] == (steps.get("int_dot", False) and precision == "int8" and corners == 2)
        npts = case.args[3].shape[4]
        assert spies[0].kwargs["KY"] == corners // 2
        assert spies[0].kwargs["LVL"] == bool(steps.get("level_loads"))
        if spies[0].kwargs["LVL"]:  # the int8 cases quantise the weights too
            assert spies[0].kwargs["NP"] == npts and spies[0].kwargs["ATTN_F16"] == (precision != "int8")


@pytest.mark.parametrize("corners,int_dot", [(2, False), (4, False), (2, True)])
@pytest.mark.parametrize("lane_bytes,num_warps", [(4, 1), (16, 4), (32, 2), (64, 1), (256, 2)])
def test_entry_lane_splits(corners, int_dot, lane_bytes, num_warps, spies, monkeypatch):
    """1 word per lane, 16 / 32 / 64 B per lane (a lane inside one corner row, or spanning two or four), and
    lane_bytes above an entry (capped at one)."""
    _tuning(monkeypatch, corners, lane_bytes=lane_bytes, num_warps=num_warps, int_dot=int_dot)
    _check(_edge_case(), "int8")
    _check(CASES["c32"](), "int8")
    assert spies[0].calls == 2


@pytest.mark.parametrize("corners,int_dot", [(4, False), (2, True)])
def test_entry_tail_rows(corners, int_dot, spies, monkeypatch):
    """A row count that leaves spare lanes in the last program: their clamped addresses and zero weights must
    not disturb the stored rows."""
    _tuning(monkeypatch, corners, lane_bytes=32, num_warps=4, int_dot=int_dot)
    _check(_case([[3, 5], [2, 3]], bs=1, nq=7, nh=3, c=32, npts=3, seed=5), "int8")
    assert spies[0].calls == 1 and spies[0].kwargs["IDOT"] == int_dot


@pytest.mark.parametrize("level_loads", [False, True])
def test_int_dot_scales_each_row_by_its_largest_weight(level_loads, spies, monkeypatch):
    """Integer dot products: every row's weights are scaled to its own largest |weight|, so rows whose weights
    differ by 10^4 (and signed weights) keep the same relative accuracy; a row of zero weights gives zeros."""
    _tuning(monkeypatch, 2, int_dot=True, level_loads=level_loads)
    case = _case([[3, 5], [2, 3]], bs=1, nq=5, nh=2, c=32, npts=2, seed=7)
    weights = case.args[4].clone()
    weights[0, 0] *= 1e4
    weights[0, 1] *= -1
    weights[0, 2, 1] = 0
    case.args = (*case.args[:4], weights)
    case.scales = {"value": case.scales["value"]}  # fp16 weights: a per-tensor int8 scale would flush the small rows
    case.int8_args = {0: "value"}
    kargs, rargs = ops_cases.variant_inputs(case, "int8")
    out = kernels.ms_deform_attn_cuda(*kargs, precision="int8", scales=case.scales)
    ref = ms_deform_attn_reference(*rargs)
    assert spies[0].kwargs["IDOT"] and spies[0].kwargs["LVL"] == level_loads and spies[0].kwargs["ATTN_F16"]
    for q in range(5):  # per query: its own scale, its own error
        got, want = out[0, q].view(2, 32)[1 if q == 2 else 0], ref[0, q].view(2, 32)[1 if q == 2 else 0]
        if q == 2:
            assert torch.equal(got.float(), torch.zeros(32))
        else:
            assert ops_cases.rel_error(got, want) <= ops_cases.TOLERANCE["int8"], q


def test_int_dot_weight_bound_keeps_int32_sums():
    """The fixed-point bound: 32767 for the anchor's 4 x 8 points; smaller where L * P points of that weight could
    overflow an int32 sum of int8 values."""
    value = torch.zeros(1, 4, 1, 32, dtype=torch.int8)
    cfg = {**kernels._ENTRIES, "int_dot": True, "num_warps": 4}
    assert kernels._neighbour_launch(cfg, "int8", value, 4, 8)["FIXED"] == 32767.0
    fixed = kernels._neighbour_launch(cfg, "int8", value, 8, 128)["FIXED"]
    assert 8 * 128 * (fixed + 2) * 128 < 2**31 and fixed > 16000


@pytest.mark.parametrize("precision", ENTRY_PRECISIONS)
def test_default_reads_head_major_x_pairs_with_level_loads(precision, spies):
    """fp16 / fp16x2 / int8 defaults (kernels.TUNING): x-pair entries in head-major order, a level's points loaded
    at once, no level streamed past L1; int8 sums a point's two rows by integer dot products, 16 bytes per lane."""
    _check(CASES["c32"](), precision)
    assert spies[0].calls == 1 and spies[1].calls == 0
    kw = spies[0].kwargs
    assert kw["KY"] == 1 and kw["LVL"] and kw["HEAD_MAJOR"] and kw["L1_BYTES"] == 0
    assert kw["IDOT"] == (precision == "int8")
    assert kw["NCH"] * kw["VW"] * (4 if precision == "int8" else 2) == (16 if precision == "int8" else 32)


def test_fp32_default_reads_four_corners_head_major(spies):
    """fp32's default: the four-corner kernel on the value transposed to (batch, head, key), levels above 256 KiB
    per head gathered through L2 only."""
    _check(CASES["c32"](), "fp32")
    assert spies[0].calls == 0 and spies[1].calls == 1
    assert spies[1].kwargs["HEAD_MAJOR"] and spies[1].kwargs["L1_BYTES"] == 262144


def test_level_loads_fall_back_for_other_point_counts(spies, monkeypatch):
    """P = 3 is no power of two: the entry kernel loads point by point, still correct."""
    _tuning(monkeypatch, 2, level_loads=True)
    _check(_case([[3, 5], [2, 3]], bs=1, nq=5, nh=2, c=32, npts=3), "int8")
    assert spies[0].calls == 1 and not spies[0].kwargs["LVL"]


@pytest.mark.parametrize("variant,precision", [("tiny", "int8"), ("tiny", "fp16"), ("tiny_c8", "fp32")])
def test_entries_fall_back_where_they_do_not_apply(variant, precision, spies, monkeypatch):
    """C = 5 (int8 unpacked, fp16 rows not whole words) and fp32 run the four-corner kernel, still correct; the
    head-major order and L1 limit asked of the entries do not carry over to it."""
    _tuning(monkeypatch, 4, head_major=True, l1_bytes=64)
    _check(ops_cases.ms_deform_attn_case(variant), precision)
    assert spies[0].calls == 0 and spies[1].calls == 1
    assert not spies[1].kwargs["HEAD_MAJOR"] and spies[1].kwargs["L1_BYTES"] == 0


@pytest.mark.parametrize("head_major", [False, True])
@pytest.mark.parametrize("corners", [2, 4])
@pytest.mark.parametrize("dtype,bias", [(torch.int8, False), (torch.int8, True), (torch.float16, False)])
def test_value_neighbours_layout(dtype, bias, corners, head_major):
    shapes = torch.tensor([[3, 4], [2, 1], [1, 3]])
    starts = torch.tensor([0, 12, 14])
    value = (torch.arange(2 * 17 * 3 * 8) % 97 - 40).reshape(2, 17, 3, 8).to(dtype)
    nb = kernels.value_neighbours(value, shapes, starts, corners, bias=bias, head_major=head_major)
    if head_major:  # (bs, heads, S, corners, C): the same entries, heads before keys
        assert nb.shape == (2, 3, 17, corners, 8)
        nb = nb.transpose(1, 2)
    assert nb.shape == (2, 17, 3, corners, 8) and nb.dtype == dtype
    want = torch.zeros_like(nb)
    for (h, w), s0 in zip(shapes.tolist(), starts.tolist(), strict=True):
        for y in range(h):
            for x in range(w):
                s = s0 + y * w + x
                for k in range(corners):
                    dx, dy = k % 2, k // 2
                    if x + dx < w and y + dy < h:
                        want[:, s, :, k] = value[:, s + dx + dy * w]
    if bias:  # q ^ 0x80, the off-map zeros too
        want = (want.view(torch.uint8) ^ 0x80).view(torch.int8)
    assert torch.equal(nb, want)


def test_value_neighbours_rejects_other_corner_counts():
    with pytest.raises(ValueError, match="corners must be 2 or 4"):
        kernels.value_neighbours(torch.zeros(1, 2, 1, 4, dtype=torch.int8), torch.tensor([[1, 2]]), torch.tensor([0]), 3)


@pytest.mark.parametrize("fq", [False, True])
@pytest.mark.parametrize("head_major", [False, True])
def test_program_order_of_rows(head_major, fq):
    """_memory_row: the k-th row in program order is row k, or, head-major, the k-th of (batch, head, query), so
    that consecutive programs share a (batch, head). A permutation of the rows either way, with each row's key base
    (where its (batch, head) keys start in the value); the same through integer divisions and through fp32
    reciprocals (FQ, triton_util.quotient)."""
    triton, tl = kernels.triton, kernels.tl
    bs, nq, nh, s = 3, 7, 5, 11

    @triton.jit
    def rows_kernel(out_ptr, S, NH, NQ, INV_NH, INV_NQ, N: tl.constexpr, HEAD_MAJOR: tl.constexpr,
                    FQ: tl.constexpr):
        k = tl.arange(0, N)
        r, kbase = kernels._memory_row(k, S, NH, NQ, INV_NH, INV_NQ, HEAD_MAJOR, FQ)
        tl.store(out_ptr + k, r)
        tl.store(out_ptr + N + k, kbase)

    n = bs * nq * nh
    out = torch.empty(2 * 128, dtype=torch.int32)
    rows_kernel[(1,)](out, s, nh, nq, 1.0 / nh, 1.0 / nq, N=128, HEAD_MAJOR=head_major, FQ=fq)
    got, kbase = out[:n], out[128: 128 + n]
    rows = torch.arange(n).view(bs, nq, nh)  # the (batch, query, head) row numbers
    want = (rows.transpose(1, 2) if head_major else rows).flatten()
    assert got.tolist() == want.tolist()
    head, batch = want % nh, want // (nh * nq)
    # the value (batch, head, key) head-major, else (batch, key, head): key 0 of the row's (batch, head)
    first_key = (batch * nh + head) * s if head_major else batch * s * nh + head
    assert kbase.tolist() == first_key.tolist()


def test_dot_byte_pairs_integer_form():
    """triton_util.fixed_pair + dot_byte_pairs as the interpreter runs them (ASM off): acc_k + round(w_a) * byte_k(a)
    + round(w_b) * byte_k(b) with signed bytes, ties to even; tests/gpu checks the dp2a form against this one."""
    words, weights, acc = dot_pairs_case.inputs(64)
    got = dot_pairs_case.run(words, weights, acc, asm=False)
    assert torch.equal(got.long(), dot_pairs_case.expected(words, weights, acc))
