"""Every Triton kernel variant against its reference on the CPU, in Triton's interpreter (TRITON_INTERPRET=1).

Tiny shapes with odd channel counts (fp16x2 must handle them), points off the map and empty intervals.
The comparison is against the reference on the same fp16-rounded / dequantised inputs, so it bounds the
kernel's own arithmetic (tolerances in benchmarks/ops_cases.py: fp32 1e-5, fp16 3e-3, fp16x2 1e-2, int8 3e-3).
"""

import importlib

import pytest
import torch
from triton_interpreter import enter

ops_cases = enter()  # before anything imports Triton

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from bevdeploy import BevDeployError  # noqa: E402
from bevdeploy.plugins.trt_ops.rotate.kernels import _cos_sin_degrees  # noqa: E402
from bevdeploy.plugins.trt_ops.triton_util import QUOTIENT_MAX, quotient, reciprocal  # noqa: E402


def _variants():
    for op, (build, _anchor, tiny, precisions) in ops_cases.OPS.items():
        for variant in tiny:
            for precision in precisions:
                yield pytest.param(op, build, variant, precision, id=f"{op}-{variant}-{precision}")


def _layout_variants():
    for op, (build, _anchor, tiny, _precisions) in ops_cases.OPS.items():
        for variant in tiny:
            for precision, layouts in build(variant).layouts.items():
                for layout in layouts:
                    yield pytest.param(op, build, variant, precision, layout, id=f"{op}-{variant}-{precision}-{layout}")


def _check(op, case, precision, layout="linear"):
    kernel = ops_cases.kernel_for(op)
    reference, _ = ops_cases.reference_for(op)
    kargs, rargs = ops_cases.variant_inputs(case, precision)
    if layout == "linear":
        out = kernel(*kargs, precision=precision, scales=case.scales)
    else:  # physical in, physical out; compared in the logical layout
        raw = kernel(*ops_cases.to_case_layout(case, kargs, layout), precision=precision, scales=case.scales,
                     layout=layout)
        out = ops_cases.from_case_layout(case, raw, layout, ops_cases.case_channels(case))
    ref = reference(*rargs)
    assert out.shape == ref.shape
    assert out.dtype == (torch.float32 if precision == "fp32" else torch.float16)
    assert ref.abs().max() > 0  # the case must not be trivially zero
    err = ops_cases.rel_error(out, ref)
    assert err <= ops_cases.TOLERANCE[precision], f"{case.name} {precision}: relative error {err:.2e}"


PRECISIONS = ("fp32", "fp16", "fp16x2", "int8")


def _check_every_layout(op, case):
    """_check in every precision, linear and in every vectorized layout the case offers for it."""
    for precision in PRECISIONS:
        _check(op, case, precision)
        for layout in case.layouts.get(precision, ()):
            _check(op, case, precision, layout)


@pytest.mark.parametrize("op,build,variant,precision", list(_variants()))
def test_kernel_matches_reference(op, build, variant, precision):
    _check(op, build(variant), precision)


@pytest.mark.parametrize("op,build,variant,precision,layout", list(_layout_variants()))
def test_kernel_in_vectorized_layout_matches_reference(op, build, variant, precision, layout):
    """Channel-vectorized TensorRT formats (odd channel counts, so the vectors carry padding)."""
    _check(op, build(variant), precision, layout)


@pytest.mark.parametrize("layout", ["chw4", "hwc8", "hwc"])
@pytest.mark.parametrize("mode", [1])
def test_grid_sampler_vectorized_nearest_and_border(layout, mode):
    _check("grid_sampler", ops_cases.grid_sampler_case("tiny2d", mode=mode, padding=1), "fp16", layout)


def _kernels_with(monkeypatch, op: str, **cfg):
    """The op's kernels module with the TUNING keys ``cfg`` set for every precision (over per-precision ones too)."""
    mod = importlib.import_module(f"bevdeploy.plugins.trt_ops.{op}.kernels")
    per_precision = {p: {**c, **cfg} for p, c in mod.TUNING.get("per_precision", {}).items()}
    monkeypatch.setattr(mod, "TUNING", {**mod.TUNING, **cfg, "per_precision": per_precision})
    return mod


def _spy(monkeypatch, mod, name: str) -> list:
    """What each call of the module's function ``name`` returns, in order."""
    seen, fn = [], getattr(mod, name)
    monkeypatch.setattr(mod, name, lambda *a: seen.append(fn(*a)) or seen[-1])
    return seen


def _with_channels(op: str, variant: str, channels: int) -> ops_cases.Case:
    """The op's tiny case with ``channels`` input channels (random, seeded by the count; int8 scales to match)."""
    base = ops_cases.OPS[op][0](variant)
    shape, spatial = base.args[0].shape, 3 if variant == "tiny3d" else 2
    x = torch.randn((*shape[:-spatial - 1], channels, *shape[-spatial:]), generator=torch.Generator().manual_seed(channels))
    scales = {k: float(x.abs().max()) / 127 for k in base.scales}
    return ops_cases.Case(base.name, (x, *base.args[1:]), scales, base.half_args, base.int8_args, layouts=base.layouts,
                          unbatched=base.unbatched)


@pytest.mark.parametrize("op,precision,layout", [("grid_sampler", "int8", "chw4"), ("grid_sampler", "fp16", "chw2"),
                                                  ("rotate", "fp16x2", "chw2"), ("rotate", "int8", "chw4")])
@pytest.mark.parametrize("per_program", [1, 2, 4])
def test_vectorized_layout_several_vectors(op, precision, layout, per_program, monkeypatch):
    """Several vectors per pixel (16 and 12 channels, no padding), ``per_program`` of them per program (TUNING
    "vec_vectors", set for every precision; where it does not divide the vectors, e.g. 4 of 3, one per program):
    the launch must take that many vectors and match the reference."""
    from bevdeploy.plugins.trt_ops.layouts import vector_width

    mod = _kernels_with(monkeypatch, op, vec_vectors=per_program)
    tiles = _spy(monkeypatch, mod, "vector_tile")
    vec = vector_width(layout, 0)
    for channels in (16, 12):
        tiles.clear()
        _check(op, _with_channels(op, "tiny2d" if op == "grid_sampler" else "tiny", channels), precision, layout)
        taken = per_program if (channels // vec) % per_program == 0 else 1
        assert tiles and tiles[-1][0] == vec * taken, (channels, tiles)


def test_vector_tile_warps():
    """Short vectors run on "vec_num_warps" where a TUNING sets it (rotate int8: 8 warps for the linear layout, 4
    for kCHW4), else on "num_warps"; 32-byte vectors keep their own "vec_wide_*" shape either way."""
    from bevdeploy.plugins.trt_ops.triton_util import vector_tile

    cfg = {"num_warps": 8, "vec_block_p": 256, "vec_wide_block_p": 64, "vec_wide_num_warps": 2, "vec_vectors": 1}
    assert vector_tile(cfg, 4, 1) == (4, 256, 8)
    assert vector_tile({**cfg, "vec_num_warps": 4}, 4, 1) == (4, 256, 4)
    assert vector_tile({**cfg, "vec_num_warps": 4}, 32, 1) == (32, 64, 2)


@pytest.mark.parametrize("tile", [(2, 1), (1, 2), (4, 2)])
@pytest.mark.parametrize("dims", ["tiny2d", "tiny3d"])
def test_grid_sampler_box_tiles(dims, tile, monkeypatch):
    """Programs over boxes of output pixels (tile_y rows x tile_z slices) instead of runs of them, with boxes
    that overhang the output on every side; linear in every precision, and in vectorized layouts (vec_tile_*)."""
    _kernels_with(monkeypatch, "grid_sampler", tile_y=tile[0], tile_z=tile[1], vec_tile_y=tile[0], vec_tile_z=tile[1],
                  block_p=16, vec_block_p=16, vec_wide_block_p=8)
    case = ops_cases.grid_sampler_case(dims)
    for precision in PRECISIONS:
        _check("grid_sampler", case, precision)
    _check("grid_sampler", case, "int8", "chw4")
    _check("grid_sampler", case, "fp16", "chw32")  # 32-byte loads: vec_wide_block_p


def test_grid_sampler_wide_vector_boxes(monkeypatch):
    """32-byte vector loads (kCHW32 in fp16) take their box from "vec_wide_tile_*" where set; shorter vectors
    (kCHW2, kCHW4) keep "vec_tile_*": the launch must use each and match the reference."""
    mod = _kernels_with(monkeypatch, "grid_sampler", vec_tile_y=0, vec_tile_z=1, vec_wide_tile_y=2, vec_wide_tile_z=2,
                        vec_wide_block_p=8)
    boxes = _spy(monkeypatch, mod, "vector_box")
    case = ops_cases.grid_sampler_case("tiny3d")
    for precision, layout, box in (("fp16", "chw32", (2, 2)), ("fp16x2", "chw2", (0, 1)), ("int8", "chw4", (0, 1))):
        _check("grid_sampler", case, precision, layout)
        assert boxes[-1] == box, (precision, layout, boxes)
    unset = {"vec_tile_y": 4, "vec_tile_z": 2, "vec_wide_tile_y": None, "vec_wide_tile_z": None}
    assert mod.vector_box(unset, 32, 1) == (4, 2)  # not set: the shared box
    assert mod.vector_box({**unset, "vec_wide_tile_z": 4}, 16, 2) == (4, 4)  # one key set: the other shared


@pytest.mark.parametrize("box", [(2, 2), (1, 4), (4, 1)], ids=lambda b: f"{b[0]}x{b[1]}")
def test_grid_sampler_boxes_over_many_programs(box, monkeypatch):
    """Boxes of output pixels (TUNING "tile_y" / "tile_z", and the vectorized layouts' own) over a 19 x 7 x 5 output
    that takes several boxes along every axis, the last one partial wherever the box has more than one pixel
    there (triton_util.box_tile's quotients): every precision and layout matches the reference."""
    ty, tz = box
    _kernels_with(monkeypatch, "grid_sampler", tile_y=ty, tile_z=tz, vec_tile_y=ty, vec_tile_z=tz, vec_wide_tile_y=ty,
                  vec_wide_tile_z=tz, block_p=8 * ty * tz, vec_block_p=8 * ty * tz, vec_wide_block_p=8 * ty * tz)
    g = torch.Generator().manual_seed(11)
    x = torch.randn((1, 4, 3, 6, 7), generator=g)
    grid = torch.rand((1, 5, 7, 19, 3), generator=g) * 2.2 - 1.1  # 8-pixel-wide boxes: 3 along x, the last partial
    _check_every_layout("grid_sampler", _grid_case("boxes", x, grid, 0, False))


@triton.jit
def _divide_kernel(t_ptr, q_ptr, n, inv_n, N: tl.constexpr, FQ: tl.constexpr):
    i = tl.arange(0, N)
    tl.store(q_ptr + i, quotient(tl.load(t_ptr + i), n, inv_n, FQ))


@pytest.mark.parametrize("fq", [False, True])
def test_quotient_in_a_kernel(fq):
    """triton_util.quotient, both paths: the quotients of dividends up to QUOTIENT_MAX by divisors the kernels meet
    (tests/trt_ops/test_quotient.py emulates every dividend)."""
    spread = torch.randint(0, QUOTIENT_MAX, (1024,), generator=torch.Generator().manual_seed(0))
    t = torch.cat([torch.arange(512), spread, QUOTIENT_MAX - 1 - torch.arange(512)]).to(torch.int32)
    for n in (1, 3, 8, 200, 2500, 40000, 320000):
        q = torch.empty_like(t)
        _divide_kernel[(1,)](t, q, n, reciprocal(n), N=t.numel(), FQ=fq)
        assert torch.equal(q, t // n), n


def test_vectorized_layout_rejects_a_linear_tensor():
    case = ops_cases.grid_sampler_case("tiny2d")
    kargs, _ = ops_cases.variant_inputs(case, "fp32")
    with pytest.raises(BevDeployError, match="chw4"):
        ops_cases.kernel_for("grid_sampler")(*kargs, precision="fp32", layout="chw4")


@pytest.mark.parametrize("op", ["grid_sampler", "rotate"])
@pytest.mark.parametrize("layout", ["chw4", "chw32"])
@pytest.mark.parametrize("on", [False, True])
def test_packed_int8_word_store(op, layout, on, monkeypatch):
    """TUNING "vec_word_store": int8 kCHW4 writes each word's four fp16 channels with one 8-byte store when it is
    on; kCHW32 (32-byte vectors) never does. Either way the output matches the reference."""
    mod = _kernels_with(monkeypatch, op, vec_word_store=on)
    taken = _spy(monkeypatch, mod, "word_store")
    _check(op, _with_channels(op, "tiny2d" if op == "grid_sampler" else "tiny", 16), "int8", layout)
    assert taken == [on and layout == "chw4"]


@pytest.mark.parametrize("op,precision", [("grid_sampler", "fp16"), ("grid_sampler", "fp16x2"), ("rotate", "fp16"),
                                          ("rotate", "fp16x2")])
@pytest.mark.parametrize("per_program", [1, 4])
def test_kchw2_half_words(op, precision, per_program, monkeypatch):
    """TUNING "vec_half_words": fp16 vectors under 32 bytes (kCHW2; kHWC8 at 8 channels) read and written as int32
    words (two channels each), ``per_program`` vectors per program; the output matches the reference. 3D grids
    too; 32-byte vectors (kCHW32, kHWC8 at 16 channels) keep element loads."""
    from bevdeploy.plugins.trt_ops.layouts import vector_width

    mod = _kernels_with(monkeypatch, op, vec_half_words=True, vec_vectors=per_program)
    taken = _spy(monkeypatch, mod, "packed_words")
    for variant in (("tiny2d", "tiny3d") if op == "grid_sampler" else ("tiny",)):
        for channels in (16, 8):
            case = _with_channels(op, variant, channels)
            for layout in ("chw2", "hwc8", "chw32"):
                taken.clear()
                _check(op, case, precision, layout)
                assert taken == [2 if vector_width(layout, channels) * 2 < 32 else 0], (variant, layout, taken)


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("dims", ["tiny2d", "tiny3d"])
def test_grid_sampler_modes(dims, mode, padding, align):
    _check("grid_sampler", ops_cases.grid_sampler_case(dims, mode=mode, padding=padding, align=align), "fp32")


@pytest.mark.parametrize("op", ["grid_sampler", "rotate"])
@pytest.mark.parametrize("pairs", [False, True])
def test_sampler_corner_pairs_and_masked_corners(op, pairs, monkeypatch):
    """Both ways of gathering the corners (TUNING "pairs" / "vec_pairs": in-bounds pairs without masks, or each corner
    masked) in every precision and layout, with points off the map (and the grid sampler's border padding)."""
    _kernels_with(monkeypatch, op, pairs=pairs, vec_pairs=pairs)
    build = ops_cases.OPS[op][0]
    cases = ([build(v, padding=pad) for v in ("tiny2d", "tiny3d") for pad in (0, 1)] if op == "grid_sampler"
             else [build("tiny")])
    for case in cases:
        _check_every_layout(op, case)


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("near_z", [False, True])
def test_grid_sampler_row_parity(pairs, near_z, monkeypatch):
    """TUNING "row_parity" / "vec_row_parity" (triton_util.even_row_first): each pixel's even row gathered first,
    then the odd one, in both ways of gathering and both z orders; points off the map, rows at either edge (odd and
    even y0, negative ones included), maps one row high, border padding: every precision and layout."""
    _kernels_with(monkeypatch, "grid_sampler", pairs=pairs, vec_pairs=pairs, near_z=near_z, vec_near_z=near_z,
                  row_parity=True, vec_row_parity=True)
    g = torch.Generator().manual_seed(7)
    cases = [ops_cases.grid_sampler_case(v, padding=pad) for v in ("tiny2d", "tiny3d") for pad in (0, 1)]
    for shape in ((2, 3, 1, 6), (1, 3, 2, 1, 5)):  # one row high: the second row is never read
        grid = torch.rand((shape[0], 3, 4, *([2] if len(shape) == 5 else []), len(shape) - 2), generator=g) * 2.4 - 1.2
        cases.append(_grid_case(str(shape), torch.randn(shape, generator=g), grid, 0, False))
    for case in cases:
        _check_every_layout("grid_sampler", case)


def test_grid_sampler_row_parity_by_vector_width(monkeypatch):
    """32-byte vector loads take "vec_wide_row_parity" where it is set, shorter vectors "vec_row_parity" (grid 3D
    fp16: kCHW32 on, kCHW2 off); the launches match the reference either way."""
    mod = _kernels_with(monkeypatch, "grid_sampler", vec_row_parity=False, vec_wide_row_parity=True,
                        vec_wide_block_p=8)
    taken = _spy(monkeypatch, mod, "vector_key")
    case = ops_cases.grid_sampler_case("tiny3d")
    for precision, layout, on in (("fp16", "chw32", True), ("fp16", "chw2", False), ("int8", "chw32", True),
                                  ("int8", "chw4", False)):
        _check("grid_sampler", case, precision, layout)
        assert taken[-1] is on, (precision, layout, taken)
    assert mod.vector_key({"vec_row_parity": True, "vec_wide_row_parity": None}, "row_parity", 16, 2) is True
    assert mod.vector_key({"row_parity": False, "vec_row_parity": True}, "row_parity", 1, 2) is False  # linear


@pytest.mark.parametrize("pairs", [False, True])
def test_rotate_row_parity(pairs, monkeypatch):
    """rotate under "row_parity" / "vec_row_parity": the tiny case, a turn that sends corners off the map and a map
    one row high, every precision and layout, both ways of gathering."""
    _kernels_with(monkeypatch, "rotate", pairs=pairs, vec_pairs=pairs, row_parity=True, vec_row_parity=True)
    g = torch.Generator().manual_seed(3)
    cases = [ops_cases.rotate_case("tiny")]
    for shape, angle in (((3, 9, 11), 33.0), ((3, 1, 6), 20.0)):
        img = torch.randn(shape, generator=g)
        args = (img, torch.tensor([angle]), torch.tensor([0.3 * shape[2], 0.6 * shape[1]]), 0)
        cases.append(ops_cases.Case(f"rotate[{shape}]", args, scales={"img": float(img.abs().max()) / 127},
                                    half_args=(0,), int8_args={0: "img"}, layouts=ops_cases.SAMPLER_LAYOUTS,
                                    unbatched=True))
    for case in cases:
        _check_every_layout("rotate", case)


@pytest.mark.parametrize("ty", [1, 2, 4])
@pytest.mark.parametrize("interpolation", [0, 1], ids=["bilinear", "nearest"])
def test_rotate_boxes(ty, interpolation, monkeypatch):
    """rotate over boxes of ty rows x 8 / ty columns (TUNING "tile_y", "vec_tile_y", "vec_wide_tile_y";
    triton_util.box_tile): a 9 x 11 map that takes several boxes each way, the last ones partial, and a map one row
    high; every precision and layout against the reference, and the launch really in boxes."""
    mod = _kernels_with(monkeypatch, "rotate", tile_y=ty, vec_tile_y=ty, vec_wide_tile_y=ty, block_p=8,
                        vec_block_p=8, vec_wide_block_p=8, staged=False)
    launches = _spy(monkeypatch, mod, "box_or_runs")
    g = torch.Generator().manual_seed(5)
    for shape, angle in (((3, 9, 11), 33.0), ((3, 1, 6), 20.0)):
        img = torch.randn(shape, generator=g)
        args = (img, torch.tensor([angle]), torch.tensor([0.3 * shape[2], 0.6 * shape[1]]), interpolation)
        case = ops_cases.Case(f"rotate[{shape}]", args, scales={"img": float(img.abs().max()) / 127}, half_args=(0,),
                              int8_args={0: "img"}, layouts=ops_cases.SAMPLER_LAYOUTS, unbatched=True)
        _check_every_layout("rotate", case)
    programs = {-(-w // (8 // ty)) * -(-h // ty) for h, w in ((9, 11), (1, 6))}  # boxes along x times along y
    assert launches and all(b[0] == ty for b in launches) and {b[1] for b in launches} == programs


@pytest.mark.parametrize("op", ["grid_sampler", "rotate"])
@pytest.mark.parametrize("cfg", [{"ptr_first": True}, {"static_strides": True}], ids=["ptr_first", "static"])
@pytest.mark.parametrize("pairs", [False, True])
def test_sampler_pointer_first_and_static_strides(op, cfg, pairs, monkeypatch):
    """TUNING "ptr_first" / "static_strides" (triton_util.tile_ptrs; linear layout): per-pixel pointers plus each
    channel's plane offset, the plane size a compile-time constant where the channel blocks divide the channels
    (16 channels) and not otherwise (3: the last block is masked). Bilinear both ways and nearest, every precision."""
    _kernels_with(monkeypatch, op, pairs=pairs, vec_pairs=pairs, **cfg)
    variants = ("tiny2d", "tiny3d") if op == "grid_sampler" else ("tiny",)
    for variant in variants:
        for case in (ops_cases.OPS[op][0](variant), _with_channels(op, variant, 16)):
            for precision in PRECISIONS:
                _check(op, case, precision)
        nearest = (ops_cases.grid_sampler_case(variant, mode=1) if op == "grid_sampler"
                   else ops_cases.rotate_case(variant, interpolation=1))
        _check(op, nearest, "fp16")


def _grid_case(name: str, x: torch.Tensor, grid: torch.Tensor, padding: int, align: bool) -> ops_cases.Case:
    """A bilinear grid sampler case of given input and grid, int8 scaled to the input, every sampler layout."""
    return ops_cases.Case(f"grid_sampler[{name}]", (x, grid, 0, padding, align),
                          scales={"input": float(x.abs().max()) / 127}, half_args=(0, 1), int8_args={0: "input"},
                          layouts=ops_cases.SAMPLER_LAYOUTS)


def _z_grid(n: int, depth: int, z: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A (n, len(z), 3, 4, 3) 3D grid: x, y random with a margin off the map, z the given normalised values."""
    xy = torch.rand((n, len(z), 3, 4, 2), generator=g) * 2.4 - 1.2
    return torch.cat([xy, z.reshape(1, -1, 1, 1, 1).expand(n, -1, 3, 4, 1)], -1)


@pytest.mark.parametrize("pairs", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_grid_sampler_near_z(pairs, depth, monkeypatch):
    """TUNING "near_z": the z corners as the nearer and the farther slice (triton_util.near_far), in both ways of
    gathering, give the sums of floor's pair: slice centres with rounding noise of both signs, exact half-way points,
    slices just off either end and random points; volumes 1, 2 and 4 slices deep; every precision and layout."""
    _kernels_with(monkeypatch, "grid_sampler", pairs=pairs, vec_pairs=pairs, near_z=True, vec_near_z=True)
    g = torch.Generator().manual_seed(depth)
    x = torch.randn((2, 3, depth, 5, 6), generator=g)
    k = torch.arange(depth, dtype=torch.float32)
    centres = (2 * k + 1) / depth - 1  # align_corners=False
    ends = torch.tensor([-1 - 0.6 / depth, 1 + 0.6 / depth])  # just off either end
    z = torch.cat([centres + 1e-4, centres - 1e-4, centres + 1 / depth, ends, torch.rand(4, generator=g) * 2.4 - 1.2])
    for padding in (0, 1, 2):
        _check_every_layout("grid_sampler", _grid_case("near_z", x, _z_grid(2, depth, z, g), padding, False))


def test_grid_sampler_register_cap_is_a_launch_option(monkeypatch):
    """TUNING "maxnreg" reaches the launch (ptxas' register cap; the interpreter ignores it) without changing sums."""
    _kernels_with(monkeypatch, "grid_sampler", maxnreg=40, vec_maxnreg=40)
    _check("grid_sampler", ops_cases.grid_sampler_case("tiny3d"), "fp32")
    _check("grid_sampler", ops_cases.grid_sampler_case("tiny3d"), "int8", "chw4")


def test_grid_sampler_wide_vector_register_cap(monkeypatch):
    """32-byte vector loads take their register cap from "vec_wide_maxnreg" where set (0: none), shorter vectors
    from "vec_maxnreg" (grid 3D fp16x2: kCHW2 capped, kCHW32 not); the launches match the reference."""
    mod = _kernels_with(monkeypatch, "grid_sampler", vec_maxnreg=72, vec_wide_maxnreg=0, vec_wide_block_p=8)
    caps = _spy(monkeypatch, mod, "vector_maxnreg")
    case = ops_cases.grid_sampler_case("tiny3d")
    for precision, layout, cap in (("fp16x2", "chw32", None), ("fp16x2", "chw2", 72), ("int8", "chw32", None),
                                   ("int8", "chw4", 72)):
        _check("grid_sampler", case, precision, layout)
        assert caps[-1] == cap, (precision, layout, caps)
    unset = {"vec_maxnreg": 64, "vec_wide_maxnreg": None}
    assert mod.vector_maxnreg(unset, 32, 1) == 64  # not set: the shared cap
    assert mod.vector_maxnreg({**unset, "vec_wide_maxnreg": 80}, 16, 2) == 80
    assert mod.vector_maxnreg({**unset, "vec_wide_maxnreg": 80}, 2, 2) == 64


@pytest.mark.parametrize("shape", [(2, 3, 1, 6), (2, 3, 5, 1), (1, 5, 1, 1), (2, 3, 1, 4, 5), (1, 4, 3, 1, 4),
                                   (1, 3, 2, 5, 1)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("padding", [0, 1])
def test_grid_sampler_axes_of_size_one(shape, padding):
    """A size-1 axis has no second corner: its weight is 0 and the kernel does not read past the axis (the
    in-bounds corner pairs need two samples per axis; masked loads cover one). Every precision and layout."""
    g = torch.Generator().manual_seed(len(shape) * 10 + shape[2])
    x = torch.randn(shape, generator=g)
    spatial = len(shape) - 2
    grid = torch.rand((shape[0], 3, 4, *([2] if spatial == 3 else []), spatial), generator=g) * 2.4 - 1.2
    for align in (False, True):
        _check_every_layout("grid_sampler", _grid_case(str(shape), x, grid, padding, align))


@pytest.mark.parametrize("shape", [(3, 1, 6), (3, 5, 1), (5, 1, 1)], ids=lambda s: "x".join(map(str, s)))
def test_rotate_axes_of_size_one(shape):
    """As test_grid_sampler_axes_of_size_one, for rotate: every precision and layout of a 1-pixel-high or -wide map."""
    img = torch.randn(shape, generator=torch.Generator().manual_seed(shape[1]))
    args = (img, torch.tensor([33.0]), torch.tensor([0.3 * shape[2], 0.6 * shape[1]]), 0)
    case = ops_cases.Case(f"rotate[{shape}]", args, scales={"img": float(img.abs().max()) / 127}, half_args=(0,),
                          int8_args={0: "img"}, layouts=ops_cases.SAMPLER_LAYOUTS, unbatched=True)
    _check_every_layout("rotate", case)


def test_rotate_nearest():
    _check("rotate", ops_cases.rotate_case("tiny", interpolation=1), "fp32")


@pytest.mark.parametrize("angle", [-450.0, -270.0, -135.5, -90.0, -0.7, 45.0, 89.9, 90.0, 180.0, 271.3, 720.0])
def test_rotate_quarter_turns(angle):
    """Every quadrant of the kernel's own cos / sin (whole quarter turns taken off first), at and between them."""
    case = ops_cases.rotate_case("tiny")
    img, _angle, *rest = case.args
    _check("rotate", ops_cases.Case(f"rotate[{angle}]", (img, torch.tensor(angle), *rest), scales=case.scales,
                                    half_args=case.half_args, int8_args=case.int8_args), "fp32")


@triton.jit
def _cos_sin_probe(deg_ptr, out_ptr, N: tl.constexpr):
    i = tl.arange(0, N)
    cs, sn = _cos_sin_degrees(tl.load(deg_ptr + i))
    tl.store(out_ptr + i, cs)
    tl.store(out_ptr + N + i, sn)


def test_rotate_cos_sin_degrees_to_an_ulp():
    deg = torch.cat([torch.linspace(-1000.0, 1000.0, 4001), torch.arange(-8, 9) * 45.0]).float()[:4096]
    deg = torch.nn.functional.pad(deg, (0, 4096 - deg.numel()))
    out = torch.empty(2 * 4096)
    _cos_sin_probe[(1,)](deg, out, N=4096)
    rad = deg.double() * (torch.pi / 180)
    assert (out[:4096].double() - rad.cos()).abs().max() < 2.5e-7
    assert (out[4096:].double() - rad.sin()).abs().max() < 2.5e-7


def test_bev_pool_empty_intervals_and_non_contiguous_feat():
    case = ops_cases.bev_pool_case("tiny")
    depth, feat, rd, rf, rb, starts, lengths, shape = case.args
    lengths = lengths.clone()
    lengths[::3] = 0  # empty intervals pointing into other intervals' points must write nothing
    feat_nc = feat.transpose(2, 3).contiguous().transpose(2, 3)
    assert not feat_nc.is_contiguous()
    args = (depth, feat_nc, rd, rf, rb, starts, lengths, shape)
    _check("bev_pool_v2", ops_cases.Case("bev_pool_v2[empty]", args), "fp32")


@pytest.mark.parametrize("channels,precision", [(36, "fp32"), (80, "int8"), (48, "fp16x2")])
def test_bev_pool_several_channel_blocks(channels, precision):
    """Channel counts that the default kernel walks in several blocks per point pass (36 fp32: a padded second
    block of 32; 80: five blocks of 16; 48: three of 16)."""
    case = ops_cases.bev_pool_case("tiny")
    depth, feat, *rest = case.args
    feat = torch.randn((*feat.shape[:-1], channels), generator=torch.Generator().manual_seed(1))
    shape = [*rest[-1][:-1], channels]
    args = (depth, feat, *rest[:-1], shape)
    scales = {"depth": float(depth.abs().max()) / 127, "feat": float(feat.abs().max()) / 127}
    _check("bev_pool_v2", ops_cases.Case("bev_pool_v2[blocks]", args, scales=scales, half_args=(0, 1),
                                         int8_args={0: "depth", 1: "feat"}), precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("per_sm,pp,channels", [(3, 4, 5), (1, 8, 5), (64, 32, 5), (3, 4, 80)])
def test_bev_pool_stream_strategy(per_sm, pp, channels, precision, monkeypatch):
    """The "stream" kernel: a fixed number of programs (here 3, 1 or more than there are intervals), each walking
    its intervals PP points a step with the next step's loads issued ahead; intervals longer than PP, empty ones
    (which write nothing), and 80 channels (five blocks of 16)."""
    _kernels_with(monkeypatch, "bev_pool_v2", strategy="stream", progs_per_sm=per_sm, pp=pp)
    depth, feat, rd, rf, rb, starts, lengths, shape = ops_cases.bev_pool_case("tiny").args
    assert lengths.max() > pp or pp == 32
    feat = torch.randn((*feat.shape[:-1], channels), generator=torch.Generator().manual_seed(channels))
    lengths = lengths.clone()
    lengths[1::4] = 0
    scales = {"depth": float(depth.abs().max()) / 127, "feat": float(feat.abs().max()) / 127}
    args = (depth, feat, rd, rf, rb, starts, lengths, [*shape[:-1], channels])
    _check("bev_pool_v2", ops_cases.Case("bev_pool_v2[stream]", args, scales=scales, half_args=(0, 1),
                                         int8_args={0: "depth", 1: "feat"}), precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("block_i,pp,ahead,grid", [(1, 4, True, False), (2, 8, True, False), (1, 32, True, False),
                                                   (1, 4, False, False), (2, 8, False, False), (2, 8, True, True),
                                                   (4, 2, True, True), (1, 4, False, True)])
def test_bev_pool_hoist_steps(block_i, pp, ahead, grid, precision, monkeypatch):
    """The hoist kernel with each step's next ranks and depths loaded ahead ("ahead", the default) or at the top of
    each step, its lanes as one vector or as an [intervals, lanes] grid: intervals of several steps (PP 2 - 8
    lanes), two or four intervals per program, empty intervals."""
    _kernels_with(monkeypatch, "bev_pool_v2", strategy="hoist", ahead=ahead, block_i=block_i, pp=pp, grid=grid)
    case = ops_cases.bev_pool_case("tiny")
    depth, feat, rd, rf, rb, starts, lengths, shape = case.args
    lengths = lengths.clone()
    lengths[2::5] = 0
    _check("bev_pool_v2", ops_cases.Case("bev_pool_v2[ahead]", (depth, feat, rd, rf, rb, starts, lengths, shape),
                                         scales=case.scales, half_args=(0, 1), int8_args={0: "depth", 1: "feat"}),
           precision)


def test_bev_pool_launch_shape_follows_the_interval_count():
    from bevdeploy.plugins.trt_ops.triton_util import tuned

    mod = importlib.import_module("bevdeploy.plugins.trt_ops.bev_pool_v2.kernels")
    cfg = {"block_i": 1, "pp": 32, "grid": False, "many": (100, {"grid": True, "block_i": 2, "pp": 16})}
    assert mod.launch_config(cfg, 100) == {**cfg, "grid": True, "block_i": 2, "pp": 16}
    assert mod.launch_config(cfg, 99) == cfg
    assert mod.launch_config({**cfg, "many": None}, 10**6) == {**cfg, "many": None}
    assert mod.launch_config(cfg, 100) is not cfg and cfg["block_i"] == 1  # the TUNING entry is left alone
    # the anchors' interval counts (ops_cases.nuscenes_ranks): BEVDet's 11,431 and BEVFusion's 96,821
    for precision in ("fp32", "fp16", "fp16x2"):
        few, many = (mod.launch_config(tuned(mod.TUNING, precision), n) for n in (11431, 96821))
        assert (few["grid"], few["block_i"], few["pp"]) == (False, 1, 32)
        assert (many["grid"], many["block_i"], many["pp"]) == (True, 2, 16)
    few, many = (mod.launch_config(tuned(mod.TUNING, "int8"), n) for n in (11431, 96821))
    assert (few["block_i"], few["pp"], many["grid"], many["block_i"], many["pp"]) == (1, 32, False, 4, 8)
    assert (few["maxnreg"], many["maxnreg"]) == (96, None)  # the cap BEVDet's int8 shape gained from


@pytest.mark.parametrize("grid", [False, True])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_bev_pool_many_interval_shape_matches_the_reference(precision, grid, monkeypatch):
    """The "many" overrides applied (threshold 1: every case qualifies) with intervals longer than PP lanes and
    empty ones: two intervals a program, 4 lanes each, as one vector or as a grid."""
    mod = _kernels_with(monkeypatch, "bev_pool_v2", many=(1, {"block_i": 2, "pp": 4, "grid": grid}))
    launches = _spy(monkeypatch, mod, "launch_config")
    case = ops_cases.bev_pool_case("tiny")
    depth, feat, rd, rf, rb, starts, lengths, shape = case.args
    assert lengths.max() > 4
    lengths = lengths.clone()
    lengths[3::7] = 0
    _check("bev_pool_v2", ops_cases.Case("bev_pool_v2[many]", (depth, feat, rd, rf, rb, starts, lengths, shape),
                                         scales=case.scales, half_args=(0, 1), int8_args={0: "depth", 1: "feat"}),
           precision)
    assert launches and all((c["block_i"], c["pp"], c["grid"]) == (2, 4, grid) for c in launches)


def test_bev_pool_no_intervals_gives_zeros():
    kernel = ops_cases.kernel_for("bev_pool_v2")
    empty = torch.zeros(0, dtype=torch.int32)
    out = kernel(torch.rand(1, 1, 2, 2, 2), torch.rand(1, 1, 2, 2, 3), empty, empty, empty, empty, empty,
                 [1, 1, 4, 4, 3])
    assert out.shape == (1, 3, 1, 4, 4) and not out.any()


def _scattered_columns_case(channels: int, h: int = 5) -> ops_cases.Case:
    """A bev_pool_columns plan from random voxel coordinates: most cells get several runs (atomic adds), columns
    end mid-block (padding runs), channels not a power of two."""
    from bevdeploy.plugins.trt_ops.bev_pool_columns import bev_pool_columns_prepare
    from bevdeploy.plugins.trt_ops.bev_pool_v2 import bev_pool_v2_prepare

    g = torch.Generator().manual_seed(3)
    shape, out_shape = (2, 2, 6, h, 3), [2, 1, 5, 4, channels]
    coords = torch.stack([torch.randint(-1, 5, shape, generator=g), torch.randint(-1, 6, shape, generator=g),
                          torch.randint(0, 1, shape, generator=g)], -1)
    ranks = bev_pool_v2_prepare(coords, out_shape)
    depth, feat = torch.rand(shape, generator=g), torch.randn((*shape[:2], h, 3, channels), generator=g)
    runs, fill = bev_pool_columns_prepare(*ranks[:3], depth.shape, out_shape)
    assert (runs[3] < 0).any() and (runs[3] >= 0).any() and (runs[2] == 0).any()
    scales = {"depth": float(depth.abs().max()) / 127, "feat": float(feat.abs().max()) / 127}
    return ops_cases.Case("bev_pool_columns[scattered]", (depth, feat, runs, fill, out_shape), scales=scales,
                          half_args=(0, 1), int8_args={0: "depth", 1: "feat"})


@pytest.mark.parametrize("channels,h,precision", [(20, 5, "fp32"), (80, 5, "fp32"), (20, 5, "fp16"), (6, 36, "int8"),
                                                  (150, 5, "fp32")])
def test_bev_pool_columns_shared_cells_padding_and_channel_blocks(channels, h, precision):
    """Cells that several runs add into (atomics), padding runs, two row slices (h 36), fp32's split channel tiles
    (20 = 16 + 16 with 4 padded, 80 = 64 + 16), fp16's one padded tile, and 150 channels (two blocks of 128)."""
    _check("bev_pool_columns", _scattered_columns_case(channels, h), precision)


def test_inverse_rejects_half_precisions():
    kernel = ops_cases.kernel_for("inverse")
    with pytest.raises(BevDeployError, match="fp32"):
        kernel(torch.eye(4).expand(2, 4, 4), precision="fp16")


def test_int8_needs_scales():
    kernel = ops_cases.kernel_for("ms_deform_attn")
    case = ops_cases.ms_deform_attn_case("tiny")
    with pytest.raises(BevDeployError, match="scales"):
        kernel(*case.args, precision="int8", scales={})


def test_unknown_precision():
    kernel = ops_cases.kernel_for("rotate")
    with pytest.raises(BevDeployError, match="precision"):
        kernel(torch.rand(2, 4, 4), 10.0, precision="bf16")
