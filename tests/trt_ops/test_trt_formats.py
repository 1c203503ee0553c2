"""TensorRT plugin glue for the vectorized formats and the fp16 / int8 kernels, without TensorRT: the combinations
each op advertises, TensorRT format + type -> (precision, layout), int8 scales, buffer shapes, the ONNX passes, and
(in Triton's CPU interpreter) that what the plugin runs gives the linear reference's values in every format."""

import numpy as np
import onnx
import pytest
import torch
import triton_interpreter
from bevdeploy import BevDeployError
from bevdeploy.plugins.trt_ops import layouts, trt
from bevdeploy.plugins.trt_ops.grid_sampler import grid_sampler_reference
from bevdeploy.plugins.trt_ops.grid_sampler import symbolic as gs
from bevdeploy.plugins.trt_ops.rotate import rotate_reference
from bevdeploy.plugins.trt_ops.rotate import symbolic as rot
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op
from onnx import TensorProto, helper

TRT_OK, TRT_REASON = trt.available()


# the plugin-run checks use the compiled kernels on a CUDA GPU, else Triton's CPU interpreter
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
INTERP_REASON = "" if DEVICE == "cuda" else triton_interpreter.reason()  # before anything imports Triton
needs_kernels = pytest.mark.skipif(bool(INTERP_REASON), reason=INTERP_REASON or "kernels can run")
GS = gs.TRT_FORMATS["bevdeploy::GridSampler"]
ROT = rot.TRT_FORMATS["bevdeploy::Rotate"]


# --- what each op advertises --------------------------------------------------------------------------------------

def test_grid_sampler_advertises_measured_formats_only():
    assert set(GS.by_rank[4]) == {("FLOAT", "LINEAR"), ("HALF", "LINEAR"), ("HALF", "CHW2"), ("HALF", "CHW32"),
                                  ("INT8", "LINEAR"), ("INT8", "CHW4"), ("INT8", "CHW32")}
    assert set(GS.by_rank[5]) == {("FLOAT", "LINEAR"), ("HALF", "LINEAR"), ("INT8", "LINEAR"), ("HALF", "CDHW32"),
                                  ("INT8", "CDHW32")}
    assert set(gs.TRT_FORMATS) == set(gs.ONNX_NAMES.values())
    assert {f.half for n, f in gs.TRT_FORMATS.items() if n.endswith("TRT2")} == {"fp16x2"}
    assert {f.half for n, f in gs.TRT_FORMATS.items() if not n.endswith("TRT2")} == {"fp16"}


def test_rotate_advertises_measured_formats_only():
    """Rotate offers the formats its kernel measured faster in than LINEAR (NOTES-ops.md, run 21: kCHW2 too)."""
    assert set(ROT.by_rank[3]) == {("FLOAT", "LINEAR"), ("HALF", "LINEAR"), ("HALF", "CHW2"), ("HALF", "CHW32"),
                                   ("INT8", "LINEAR"), ("INT8", "CHW4"), ("INT8", "CHW32")}
    assert ROT.by_rank[4] == ROT.by_rank[3]
    assert ("FLOAT", "LINEAR") in ROT.by_rank[2] and all(f == "LINEAR" for _, f in ROT.by_rank[2])
    assert set(rot.TRT_FORMATS) == set(rot.NAMES.all_qualified())
    assert trt.declared("RotateTRT2").half == "fp16x2"


def test_autotune_rows_follow_tensorrts_grammar():
    rows = trt.autotune_rows(GS, 4)
    assert ("INT8, FP32*FP16, FP16", "CHW32, LINEAR, CHW32") in rows
    assert ("FP16, FP32*FP16, FP16", "CHW2, LINEAR, CHW2") in rows
    assert ("INT8, FP32*FP16, FP32*FP16, FP16", "CHW4, LINEAR, LINEAR, CHW4") in trt.autotune_rows(ROT, 3)
    assert trt.autotune_rows(GS, 3) == []  # no entry: TensorRT's LINEAR default
    for formats in (*gs.TRT_FORMATS.values(), *rot.TRT_FORMATS.values()):
        for rank in formats.by_rank:
            for io_types, fmts in trt.autotune_rows(formats, rank):
                types, lays = io_types.split(", "), fmts.split(", ")
                assert len(types) == len(lays) == len(formats.inputs) + 1
                for entry in types + lays:  # one separator kind per entry (_autotune._gen_onesided_combinations)
                    assert not ("|" in entry and "*" in entry)
                assert {t for e in types for t in e.replace("|", "*").split("*")} <= {"FP32", "FP16", "INT8"}
                assert set(lays) <= set(trt.TRT_FORMATS)


# --- TensorRT type / format -> kernel ------------------------------------------------------------------------------

@pytest.mark.parametrize("type_name,fmt,rank,expected", [
    ("FLOAT", "LINEAR", 4, ("fp32", "linear")), ("HALF", "LINEAR", 4, ("fp16", "linear")),
    ("HALF", "CHW2", 4, ("fp16", "chw2")), ("INT8", "LINEAR", 4, ("int8", "linear")),
    ("INT8", "CHW4", 4, ("int8", "chw4")), ("INT8", "CHW32", 4, ("int8", "chw32")),
    ("INT8", "CDHW32", 5, ("int8", "chw32")), ("HALF", "CHW32", 4, ("fp16", "chw32")),
    ("HALF", "CDHW32", 5, ("fp16", "chw32")),
])
def test_kernel_launch_maps_tensorrt_choice_to_our_variant(type_name, fmt, rank, expected):
    assert trt.kernel_launch("GridSampler", GS, type_name, fmt, rank) == expected


def test_half2_names_run_the_half_arithmetic_kernel():
    assert trt.kernel_launch("GridSampler2DTRT2", gs.TRT_FORMATS["GridSampler2DTRT2"], "HALF", "CHW2", 4) == \
        ("fp16x2", "chw2")


@pytest.mark.parametrize("formats,type_name,fmt,rank", [
    (GS, "HALF", "HWC8", 4), (GS, "INT8", "CHW4", 5), (GS, "FLOAT", "CHW32", 4), (ROT, "HALF", "CHW2", 2),
])
def test_unsupported_combination_is_one_line_user_error(formats, type_name, fmt, rank):
    with pytest.raises(BevDeployError, match=f"{type_name}/{fmt} on a {rank}-d") as err:
        trt.kernel_launch("op", formats, type_name, fmt, rank)
    assert "\n" not in str(err.value) and "offered:" in str(err.value)


def test_enum_names_and_output_type():
    class DataType:  # stands for a pybind11 enum value (has .name)
        name = "INT8"

    assert trt.enum_name(DataType()) == "INT8"
    assert trt.enum_name("CHW32") == "CHW32"
    assert trt.output_type("INT8") == "HALF" and trt.output_type("HALF") == "HALF"


def test_int8_scale_prefers_tensorrt_then_attribute_else_fails():
    assert trt.int8_scale("op", "input", 0.5, 0.25) == 0.5
    assert trt.int8_scale("op", "input", -1.0, 0.25) == 0.25  # TensorRT writes -1 when it has none
    with pytest.raises(BevDeployError, match="fold_dequantize") as err:
        trt.int8_scale("op", "input", -1.0, 0.0)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("shape,fmt,layout", [((2, 5, 3, 4), "CHW4", "chw4"), ((2, 5, 3, 4), "CHW32", "chw32"),
                                              ((1, 5, 3, 4), "CHW2", "chw2"), ((1, 5, 2, 3, 4), "CDHW32", "chw32"),
                                              ((1, 5, 3, 4), "HWC8", "hwc8"), ((2, 5, 3, 4), "LINEAR", "linear")])
def test_physical_shape_is_the_layouts_buffer(shape, fmt, layout):
    assert trt.physical_shape(shape, fmt) == tuple(layouts.to_layout(torch.zeros(shape), layout).shape)


def test_physical_shape_of_unbatched_and_batched_rotate_images():
    assert trt.physical_shape((5, 3, 4), "CHW4") == (2, 3, 4, 4)
    assert trt.physical_shape((2, 6, 3, 4), "CHW32") == (2, 1, 3, 4, 32)
    with pytest.raises(BevDeployError, match="at least 3 dims"):
        trt.physical_shape((3, 4), "CHW4")


def test_cuda_array_interface_is_dense_and_typed():
    cai = trt.cuda_array_interface(1234, (1, 2, 3, 4, 32), "INT8", 7)
    assert cai == {"shape": (1, 2, 3, 4, 32), "typestr": "|i1", "data": (1234, False), "strides": None,
                   "version": 3, "stream": 7}
    with pytest.raises(BevDeployError, match="BF16"):
        trt.cuda_array_interface(0, (1,), "BF16", None)


# --- ONNX passes ----------------------------------------------------------------------------------------------------

def _qdq_grid_sampler_model(extra_consumer: bool = False, zero_point: bool = True) -> onnx.ModelProto:
    """x -> Q -> DQ -> bevdeploy::GridSampler(., grid) -> y (what our exporter gives a quantized sampler input)."""
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.02])]
    if zero_point:
        inits.append(helper.make_tensor("zp", TensorProto.INT8, [], [0]))
    zp = ["zp"] if zero_point else []
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", *zp], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", *zp], ["xd"], name="dq"),
             helper.make_node("GridSampler", ["xd", "grid"], ["y"], domain="bevdeploy", name="gs",
                              interpolation_mode=0, padding_mode=0, align_corners=0, plugin_namespace="bevdeploy",
                              input_scale=0.0)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 3, 3])]
    if extra_consumer:
        nodes.append(helper.make_node("Relu", ["xd"], ["r"], name="relu"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 5, 4, 4]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 4, 4]),
                                           helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 3, 3, 2])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("bevdeploy", 1)])


def test_fold_dequantize_hands_the_plugin_int8_and_its_scale():
    model, folded = trt.fold_dequantize(_qdq_grid_sampler_model())
    assert folded == 1
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["QuantizeLinear", "GridSampler", "Cast"]  # the DQ is absorbed, a Cast restores fp32
    node = model.graph.node[1]
    assert node.input[0] == "xq"
    assert np.isclose({a.name: a.f for a in node.attribute}["input_scale"], 0.02)
    cast = model.graph.node[2]
    assert list(cast.output) == ["y"] and cast.input[0] == node.output[0] and cast.attribute[0].i == TensorProto.FLOAT


def test_fold_dequantize_keeps_a_shared_dq_and_skips_uint8():
    model, folded = trt.fold_dequantize(_qdq_grid_sampler_model(extra_consumer=True))
    assert folded == 1 and "DequantizeLinear" in [n.op_type for n in model.graph.node]
    model, folded = trt.fold_dequantize(_qdq_grid_sampler_model(zero_point=False))  # no zero point: uint8 in ONNX
    assert folded == 0 and [n.op_type for n in model.graph.node][:2] == ["QuantizeLinear", "DequantizeLinear"]


def test_our_export_carries_the_scale_attribute_and_bind_namespace_adds_it():
    x, grid = torch.randn(1, 3, 4, 4), torch.rand(1, 2, 2, 2) * 2 - 1
    fn = lambda a, b: torch.ops.bevdeploy.grid_sampler(a, b, 0, 0, False)  # noqa: E731
    (ours,) = custom_nodes(export_one_op(fn, (x, grid), "bevdeploy"))
    assert {a.name: a.f for a in ours.attribute}["input_scale"] == 0.0
    foreign = export_one_op(fn, (x, grid), "mmdeploy")
    assert "input_scale" not in {a.name for a in custom_nodes(foreign)[0].attribute}
    (bound,) = custom_nodes(trt.bind_namespace(foreign))
    assert {a.name for a in bound.attribute} >= {"input_scale", "plugin_namespace"}
    img, angle, center = torch.randn(3, 4, 4), torch.tensor(10.0), torch.tensor([2.0, 2.0])
    (r,) = custom_nodes(export_one_op(lambda i, a, c: torch.ops.bevdeploy.rotate(i, a, c, 0), (img, angle, center),
                                      "bevdeploy"))
    assert {a.name: a.f for a in r.attribute}["img_scale"] == 0.0


# --- what the plugin runs, in Triton's interpreter: vectorized formats == linear reference ---------------------

def _quantized(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    scale = float(x.abs().max()) / 127
    return torch.clamp(torch.round(x / scale), -128, 127).to(torch.int8), scale


def _physical(x: torch.Tensor, fmt: str) -> torch.Tensor:
    out = layouts.to_layout(x, trt.TRT_FORMATS[fmt][0])
    assert tuple(out.shape) == trt.physical_shape(x.shape, fmt)
    return out


@needs_kernels
@pytest.mark.parametrize("type_name,fmt,dims", [("INT8", "CHW4", 2), ("INT8", "CHW32", 2), ("HALF", "CHW2", 2),
                                                 ("HALF", "CHW32", 2), ("INT8", "LINEAR", 2), ("INT8", "CDHW32", 3),
                                                 ("HALF", "CDHW32", 3)])
def test_grid_sampler_plugin_run_matches_reference(type_name, fmt, dims):
    g = torch.Generator().manual_seed(dims)
    x = torch.randn(1, 5, *((3,) * dims), generator=g)
    grid = torch.rand(1, *((2,) * dims), dims, generator=g) * 2.4 - 1.2
    precision, layout = trt.kernel_launch("GridSampler", GS, type_name, fmt, dims + 2)
    if precision == "int8":
        data, scale = _quantized(x)
        ref_in = data.float() * scale
    else:
        data, scale, ref_in = x.half(), None, x.half().float()
    attrs = {"interpolation_mode": 0, "padding_mode": 0, "align_corners": 0, "input_scale": 0.0}
    raw = gs.run_kernel({"input": _physical(data, fmt).to(DEVICE), "grid": grid.to(DEVICE)}, attrs,
                        trt.Launch(precision, layout, scale))
    out = layouts.from_layout(raw.cpu(), layout, 5)
    ref = grid_sampler_reference(ref_in, grid, 0, 0, False)
    assert out.dtype == torch.float16 and ref.abs().max() > 0
    torch.testing.assert_close(out.float(), ref, rtol=3e-3, atol=3e-3)


@needs_kernels
def test_grid_sampler_foreign_grid_plugin_run_matches_reference():
    g = torch.Generator().manual_seed(4)  # not the global generator: what ran before must not change the input
    x, grid = torch.randn(1, 5, 3, 3, generator=g), torch.rand(1, 2, 2, 2, generator=g) * 2 - 1
    data, scale = _quantized(x)
    raw = gs.run_kernel({"input": _physical(data, "CHW4").to(DEVICE),
                         "grid": (grid.movedim(-1, 1) * 10).contiguous().to(DEVICE)},
                        {"interpolation_mode": 1, "padding_mode": 1, "align_corners": 1},
                        trt.Launch("int8", "chw4", scale), foreign_grid=True)
    ref = grid_sampler_reference(data.float() * scale, grid, 1, 1, True)
    torch.testing.assert_close(layouts.from_layout(raw.cpu(), "chw4", 5).float(), ref, rtol=3e-3, atol=3e-3)


@needs_kernels
@pytest.mark.parametrize("type_name,fmt,batch", [("INT8", "CHW4", None), ("INT8", "CHW32", None), ("INT8", "CHW4", 2),
                                                  ("INT8", "LINEAR", 2), ("HALF", "CHW32", None), ("HALF", "CHW32", 2),
                                                  ("HALF", "CHW2", None), ("HALF", "CHW2", 2)])
def test_rotate_plugin_run_matches_reference(type_name, fmt, batch):
    g = torch.Generator().manual_seed(3)
    img = torch.randn(*((batch,) if batch else ()), 5, 4, 4, generator=g)
    if type_name == "INT8":
        data, scale = _quantized(img)
    else:
        data, scale = img.half(), None
    angle, center = torch.tensor([30.0]), torch.tensor([1.5, 2.0])
    launch = trt.Launch(*trt.kernel_launch("Rotate", ROT, type_name, fmt, img.dim()), scale)
    physical = layouts.to_layout(data if batch else data[None], launch.layout)
    physical = physical if batch else physical[0]
    raw = rot.run_kernel({"img": physical.to(DEVICE), "angle": angle.to(DEVICE), "center": center.to(DEVICE)},
                         {"interpolation": 0}, launch).cpu()
    raw = raw.reshape(trt.physical_shape(img.shape, fmt))
    out = layouts.from_layout(raw if batch else raw[None], launch.layout, 5)
    out = out if batch else out[0]
    deq = data.float() * scale if scale is not None else data.float()
    ref = torch.stack([rotate_reference(d, angle, center, 0) for d in deq]) if batch else \
        rotate_reference(deq, angle, center, 0)
    assert ref.abs().max() > 0
    torch.testing.assert_close(out.float(), ref, rtol=3e-3, atol=3e-3)


# --- with TensorRT ----------------------------------------------------------------------------------------------

@pytest.mark.skipif(not TRT_OK, reason=TRT_REASON or "TensorRT unavailable")
def test_trt_register_grid_sampler_and_rotate_with_autotune():
    import tensorrt as trt_runtime
    from tensorrt.plugin._lib import QDP_REGISTRY

    gs.define_trt()
    rot.define_trt()
    registry = trt_runtime.get_plugin_registry()
    for name in (*gs.TRT_FORMATS, *rot.TRT_FORMATS):
        op_type = name.rpartition("::")[2]
        assert registry.get_creator(op_type, "1", "bevdeploy") is not None, name
        assert QDP_REGISTRY[f"bevdeploy::{op_type}"].autotune_func is not None, name


def test_tensorrt_backend_folds_an_exported_quantized_sampler_input():
    """The tensorrt backend's prepare step (every registered op's trt_prepare) hands the grid sampler the int8
    tensor and its calibrated scale of a Q/DQ pair our exporter wrote, and leaves a graph without Q/DQ alone."""
    from bevdeploy.backends import tensorrt as trtb

    x, grid = torch.randn(1, 4, 5, 5), torch.rand(1, 3, 3, 2) * 2 - 1

    def quantized(a, b):
        q = torch.fake_quantize_per_tensor_affine(a, 0.05, 0, -128, 127)
        return torch.ops.bevdeploy.grid_sampler(q, b, 0, 0, False)

    model, changed = trtb.prepare_onnx(export_one_op(quantized, (x, grid), "bevdeploy", opset=17))
    assert changed == 1
    (node,) = custom_nodes(model)
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producer[node.input[0]] == "QuantizeLinear"
    assert np.isclose({a.name: a.f for a in node.attribute}["input_scale"], 0.05)
    plain, changed = trtb.prepare_onnx(export_one_op(lambda a, b: torch.ops.bevdeploy.grid_sampler(a, b, 0, 0, False),
                                                     (x, grid), "bevdeploy"))
    assert changed == 0 and [n.op_type for n in plain.graph.node][-1] == "GridSampler"
