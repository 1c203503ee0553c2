"""Every custom-op node exports with a typed output, under every naming scheme its op supports.

The declared type of the node's own output (before any Transpose / Reshape a scheme adds) must be fully
static and equal to the shape the node really produces: the one ONNX Runtime's binding of that node (the
reference semantics of that scheme) returns on the tiny cases of benchmarks/ops_cases.py, and for our and
mmdeploy's nodes the torch op's own output. bevformer_tensorrt's nodes live in the default domain, where the
exporter drops the type (naming.typed says why; TensorRT takes the plugin's own shapes): there only the
warning is checked. No export may print the exporter's "shape inference of ... is missing" warning (printed from C++, so it is read
from the stderr file descriptor).
"""

import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
import torch
from bevdeploy.plugins import registered_ops
from bevdeploy.plugins.trt_ops.naming import SCHEMES, onnx_naming
from bevdeploy.plugins.trt_ops.testing import custom_nodes, export_one_op, run_onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ops_cases  # noqa: E402

OUR_SHAPE_SCHEMES = ("bevdeploy", "mmdeploy")  # schemes whose node returns exactly the torch op's output


def _cases() -> list:
    specs = registered_ops()
    out = []
    for op, (build, _anchor, tiny, _precisions) in ops_cases.OPS.items():
        schemes = [(s, False) for s in SCHEMES if s in specs[op].onnx_names]
        schemes += [("bevformer_tensorrt", True)] if "bevformer_tensorrt_half2" in specs[op].onnx_names else []
        out += [pytest.param(op, build, variant, scheme, half2, id=f"{op}-{variant}-{scheme}{'-half2' * half2}")
                for variant in tiny for scheme, half2 in schemes]
    return out


def _split(args: tuple) -> tuple[list[torch.Tensor], Callable]:
    """(tensor arguments, fn(*tensors) calling the op with the other arguments fixed)."""
    slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]

    def call(op):
        def fn(*tensors):
            full = list(args)
            for i, t in zip(slots, tensors, strict=True):
                full[i] = t
            return getattr(torch.ops.bevdeploy, op)(*full)
        return fn

    return [args[i] for i in slots], call


def _declared(model: onnx.ModelProto, name: str) -> onnx.ValueInfoProto:
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    assert name in infos, f"no type recorded for the custom node output {name}"
    return infos[name]


def _actual_node_output(model: onnx.ModelProto, info: onnx.ValueInfoProto, inputs) -> tuple[int, ...]:
    """Run the graph on ONNX Runtime with the node's output exposed as a graph output; its real shape."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    if info.name not in {o.name for o in exposed.graph.output}:
        exposed.graph.output.append(info)
    names = [o.name for o in exposed.graph.output]
    return tuple(run_onnx(exposed, inputs)[names.index(info.name)].shape)


@pytest.mark.parametrize(("op", "build", "variant", "scheme", "half2"), _cases())
def test_custom_node_output_has_the_static_shape_it_produces(op, build, variant, scheme, half2, capfd):
    case = build(variant)
    tensors, call = _split(case.args)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = export_one_op(call(op), tensors, scheme, half2=half2)
    stderr = capfd.readouterr().err + "".join(str(w.message) for w in caught)
    assert "shape inference" not in stderr, stderr
    assert "not used in the model" not in stderr, stderr  # export_one_op names only the scheme's domain

    (node,) = custom_nodes(model)
    assert node.op_type.endswith("TRT2") == half2
    if scheme == "bevformer_tensorrt":  # default domain: the exporter drops the type
        return
    info = _declared(model, node.output[0])
    dims = info.type.tensor_type.shape.dim
    assert info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    actual = _actual_node_output(model, info, tensors)
    assert all(d.HasField("dim_value") for d in dims), f"{node.op_type} output not static: {dims}"
    declared = tuple(d.dim_value for d in dims)
    assert declared == actual
    if scheme in OUR_SHAPE_SCHEMES:
        assert declared == tuple(call(op)(*tensors).shape)


def test_every_op_and_scheme_is_covered():
    """The parametrization above reaches each op of ops_cases.OPS under each scheme it supports."""
    covered = {(p.values[0], p.values[3]) for p in _cases()}
    assert {op for op, _ in covered} == set(ops_cases.OPS)
    assert ("bev_pool_columns", "mmdeploy") not in covered  # refused: the op is ours alone
    assert {s for op, s in covered if op == "ms_deform_attn"} == set(SCHEMES)


def _inverse_model(scheme: str, dynamic: bool) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with onnx_naming(scheme):
        torch.onnx.export(_Inverse(), (torch.eye(4).repeat(3, 1, 1),), buffer, dynamo=False, opset_version=17,
                          input_names=["m"], output_names=["out"],
                          dynamic_axes={"m": {0: "n"}, "out": {0: "n"}} if dynamic else None)
    return onnx.load_from_string(buffer.getvalue())


class _Inverse(torch.nn.Module):
    def forward(self, m):
        return torch.ops.bevdeploy.inverse(m) * 2.0


def test_a_dynamic_dim_leaves_the_type_unset_rather_than_guessing():
    model = _inverse_model("bevdeploy", dynamic=True)
    (node,) = custom_nodes(model)
    info = _declared(model, node.output[0])
    assert not any(d.HasField("dim_value") for d in info.type.tensor_type.shape.dim)  # all symbolic, none guessed

