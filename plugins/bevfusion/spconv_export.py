"""The sparse LiDAR backbone as a libspconv ONNX (CUDA-BEVFusion's ``lidar.backbone.xyz.onnx``
format) and an engine that runs it on spconv.

torch.onnx cannot export spconv, and libspconv reads its own dialect: graph ``scn``, opset 11,
input ``"0"`` (voxel features, fp16), nodes ``SparseConvolution`` (BN folded in, ReLU fused as
``activation``), ``Add``/``QuantAdd`` + ``Relu`` for residuals, then ``ScatterDense``,
``Transpose``, ``Reshape`` to the dense BEV map. Spatial shapes and voxel counts come from
forward hooks on the real spconv modules during one run on the example inputs; dynamic ranges
from the quantizers' calibrated amax (``_input_quantizer``, ``_weight_quantizer`` on sparse
convs, ``add_quantizer`` on residual blocks) when the module is quantized.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from bevdeploy.graph import Artifact, Engine, Subgraph
from bevdeploy.sparse import sparse_conv_types
from onnx import TensorProto, helper
from torch import nn

from .lidar import SparseBasicBlock, SparseEncoder

FORMAT = "spconv-onnx"
OUTPUT_BOUND = 200000
INT8_PRECISIONS = ("int8", "int8-fp32")


def _amax(q) -> torch.Tensor | None:
    """Calibrated amax of an enabled quantizer, else None."""
    if q is None or getattr(q, "_disabled", False):
        return None
    amax = getattr(q, "amax", None)
    return None if amax is None else amax.detach().float().reshape(-1)


def _folded(conv: nn.Module, bn: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight [out, kx, ky, kz, in] and bias with an un-folded BN applied (a folded BN is an
    Identity and the conv already carries the bias)."""
    w = conv.weight.detach().float()
    b = None if conv.bias is None else conv.bias.detach().float()
    if isinstance(bn, nn.BatchNorm1d):
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        w = w * scale.view(-1, 1, 1, 1, 1)
        b = bn.bias.detach() + ((b if b is not None else 0.0) - bn.running_mean) * scale
    return w, b


class _Builder:
    """Accumulates nodes and fp16 initializers; tensor names are running integers like libspconv's."""

    def __init__(self, shapes: dict[int, dict], int8: bool):
        self.shapes, self.int8 = shapes, int8
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.next_id = 1
        self.n_conv = 0

    def _new(self) -> str:
        name = str(self.next_id)
        self.next_id += 1
        return name

    def _init(self, t: torch.Tensor, name: str) -> str:
        arr = t.cpu().numpy().astype(np.float16)
        self.inits.append(helper.make_tensor(name, TensorProto.FLOAT16, list(arr.shape), arr.tobytes(), raw=True))
        return name

    def conv(self, x: str, conv: nn.Module, bn: nn.Module | None, relu: bool, last: bool = False) -> str:
        info, i = self.shapes[id(conv)], self.n_conv
        self.n_conv += 1
        w, b = _folded(conv, bn)
        inputs = [x, self._init(w, f"spconv{i}.weight")] + ([self._init(b, f"spconv{i}.bias")] if b is not None else [])
        in_amax, w_amax = _amax(getattr(conv, "_input_quantizer", None)), _amax(getattr(conv, "_weight_quantizer", None))
        quant = self.int8 and in_amax is not None and w_amax is not None
        attrs = dict(
            ndim=int(conv.ndim), input_spatial_shape=info["in_shape"], output_spatial_shape=info["out_shape"],
            in_channels=int(conv.in_channels), out_channels=int(conv.out_channels),
            kernel_size=list(conv.kernel_size), stride=list(conv.stride), dilation=list(conv.dilation),
            padding=list(conv.padding), output_padding=list(conv.output_padding), transposed=int(conv.transposed),
            inverse=int(conv.inverse), groups=int(conv.groups), subm=int(conv.subm),
            rulebook=conv.indice_key or f"conv{i}", activation="ReLU" if relu else "None", output_bound=OUTPUT_BOUND,
            input_shape=[info["in_voxels"], int(conv.in_channels)], output_shape=[info["out_voxels"], int(conv.out_channels)],
            precision="int8" if quant else "fp16", output_precision="int8" if self.int8 and not last else "fp16",
        )  # fmt: skip
        if quant:
            attrs["input_dynamic_range"] = float(in_amax.max())
            w_ranges = w_amax if w_amax.numel() > 1 else w_amax.expand(int(conv.out_channels))
            attrs["weight_dynamic_ranges"] = [float(v) for v in w_ranges]
        y = self._new()
        self.nodes.append(helper.make_node("SparseConvolution", inputs, [y], f"conv{i}", **attrs))
        return y

    def unit(self, x: str, seq: nn.Module, last: bool = False) -> str:
        """A SparseSequential(conv, bn|Identity, ReLU)."""
        mods = list(seq.children())
        relu = any(isinstance(m, nn.ReLU) for m in mods[1:])
        bn = mods[1] if len(mods) > 1 and not isinstance(mods[1], nn.ReLU) else None
        return self.conv(x, mods[0], bn, relu, last)

    def block(self, x: str, blk: SparseBasicBlock) -> str:
        h = self.conv(x, blk.conv1, blk.bn1, relu=True)
        h = self.conv(h, blk.conv2, blk.bn2, relu=False)
        amax = _amax(getattr(blk, "add_quantizer", None))
        y = self._new()
        if self.int8 and amax is not None:
            r = float(amax.max())
            attrs = dict(input0_dynamic_range=r, input1_dynamic_range=r, precision="int8", output_precision="int8")
            self.nodes.append(helper.make_node("QuantAdd", [h, x], [y], f"add{len(self.nodes)}", **attrs))
        else:
            attrs = dict(precision="fp16", output_precision="int8" if self.int8 else "fp16")
            self.nodes.append(helper.make_node("Add", [h, x], [y], f"add{len(self.nodes)}", **attrs))
        z = self._new()
        self.nodes.append(helper.make_node("Relu", [y], [z], f"relu{len(self.nodes)}"))
        return z

    def tail(self, x: str, out_spatial: list[int], channels: int) -> str:
        """ScatterDense (N, C, X, Y, Z) -> Transpose (N, C, Z, X, Y) -> Reshape (N, C*Z, X, Y)."""
        sx, sy, sz = out_spatial
        d, t, r = self._new(), self._new(), self._new()
        self.nodes.append(helper.make_node(
            "ScatterDense", [x], [d], "scatter0", input_spatial_shape=out_spatial, format="xyz",
            output_shape=[1, channels, sx, sy, sz],
        ))  # fmt: skip
        self.nodes.append(helper.make_node("Transpose", [d], [t], "transpose0", dims=[0, 1, 4, 2, 3]))
        self.nodes.append(helper.make_node("Reshape", [t], [r], "reshape0", dims=[1, channels * sz, sx, sy]))
        return r


def _trace_shapes(encoder: SparseEncoder, voxels: torch.Tensor, coords: torch.Tensor) -> dict[int, dict]:
    """Run the encoder once with forward hooks on every sparse conv to record shapes."""
    shapes: dict[int, dict] = {}

    def hook(mod, args, out):
        x = args[0]
        shapes[id(mod)] = dict(
            in_shape=[int(v) for v in x.spatial_shape], out_shape=[int(v) for v in out.spatial_shape],
            in_voxels=int(x.features.shape[0]), out_voxels=int(out.features.shape[0]),
        )  # fmt: skip

    convs = sparse_conv_types()  # spconv's and bevdeploy.sparse's: the graph is the same for both
    handles = [m.register_forward_hook(hook) for m in encoder.modules() if isinstance(m, convs)]
    try:
        with torch.no_grad():
            encoder(voxels.float(), coords.int())
    finally:
        for h in handles:
            h.remove()
    return shapes


def build_scn_onnx(encoder: SparseEncoder, voxels: torch.Tensor, coords: torch.Tensor, int8: bool) -> onnx.ModelProto:
    """The libspconv graph of ``encoder`` traced on (voxels, coords)."""
    shapes = _trace_shapes(encoder, voxels, coords)
    b = _Builder(shapes, int8)
    x = b.unit("0", encoder.conv_input)
    for stage in encoder.encoder_layers:
        for mod in stage:
            x = b.block(x, mod) if isinstance(mod, SparseBasicBlock) else b.unit(x, mod)
    conv_out = list(encoder.conv_out.children())[0]
    x = b.unit(x, encoder.conv_out, last=True)
    out_spatial = shapes[id(conv_out)]["out_shape"]
    channels = int(conv_out.out_channels)
    y = b.tail(x, out_spatial, channels)
    sx, sy, sz = out_spatial
    graph = helper.make_graph(
        b.nodes, "scn",
        [helper.make_tensor_value_info("0", TensorProto.FLOAT16, [int(voxels.shape[0]), int(voxels.shape[1])])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT16, [1, channels * sz, sx, sy])],
        initializer=b.inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_operatorsetid("ai.onnx", 11)], producer_name="bevdeploy")


def export_spconv(
    subgraph: Subgraph, precision: str, backend: str, out_dir: Path, example_inputs: dict[str, torch.Tensor]
) -> Artifact:
    """Write ``<out_dir>/<name>.scn.onnx`` atomically and return its artifact (the module rides
    along: the spconv engine runs it, since libspconv itself is not available here)."""
    encoder = subgraph.module.encoder
    voxels, coords = (example_inputs[n] for n in subgraph.inputs)
    int8 = precision in INT8_PRECISIONS
    model = build_scn_onnx(encoder, voxels, coords, int8)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{subgraph.name}.scn.onnx"
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    meta = {"opset": 11, "graph": "scn", "weights": "fp16", "int8": int8, "node_counts": counts}
    return Artifact(
        name=subgraph.name, precision=precision, backend=backend, format=FORMAT,
        input_names=list(subgraph.inputs), output_names=list(subgraph.outputs), path=path,
        module=subgraph.module, meta=meta,
    )  # fmt: skip


class SpconvEngine(Engine):
    """Runs the sparse backbone module (fake-quant where quantized) in PyTorch, on the device its inputs are on:
    the model's own module on its device, a copy made once per other device (a backend that runs on the GPU hands
    it CUDA voxels; the module stays where the FP32 fidelity check reads it). At fp16 on a CUDA device it runs under
    autocast, as libspconv runs FP16 there; elsewhere in FP32. A CUDA copy of an unquantized backbone has its
    BatchNorms folded into the convs, as libspconv's engine has; a quantized one gets fake-quant quantizers that do
    not wait for the GPU (:func:`bevdeploy.quant.without_host_syncs`, the same bits); :attr:`execution` says which."""

    def __init__(self, artifact: Artifact, precision: str):
        super().__init__(artifact.name, "spconv", precision, artifact.input_names, artifact.output_names)
        if artifact.module is None:
            raise ValueError(f"artifact {artifact.name!r} carries no module for the spconv engine")
        self.module = artifact.module.eval()
        self._copies: dict[torch.device, nn.Module] = {}
        self.size_bytes = artifact.size_bytes
        impl = getattr(getattr(self.module, "encoder", None), "sparse_impl", "spconv")
        runtime = "spconv 2.x" if impl == "spconv" else "bevdeploy.sparse"
        self.notes.append(
            f"libspconv is not available here: the libspconv ONNX is exported but the sparse backbone runs on "
            f"{runtime} in PyTorch (FP16 under autocast at fp16 on a CUDA device, FP32 otherwise; INT8 simulated "
            f"by fake-quant where quantized)"
        )

    def infer_impl(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        voxels, coords = (inputs[n] for n in self.input_names)
        half = self.precision == "fp16" and voxels.is_cuda
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
            out = self._module_on(voxels.device)(voxels.float(), coords.int())
        return {self.output_names[0]: out.float()}

    def _module_on(self, device: torch.device) -> nn.Module:
        home = next(self.module.parameters(), torch.empty(0)).device
        if device == home:
            return self.module
        if device not in self._copies:
            from bevdeploy.quant import fold_bn, has_quantizers, without_host_syncs

            moved = copy.deepcopy(self.module).to(device).eval()
            if device.type == "cuda" and has_quantizers(moved):
                # pytorch-quantization's fake-quant waits for the GPU twice per call; the same arithmetic without
                # those waits lets the CPU queue the backbone's launches ahead
                n = without_host_syncs(moved)
                self.execution = f"{n} fake-quant quantizers without host syncs on {device.type}"
            elif device.type == "cuda":
                # inference only: each BN becomes its conv's scale and bias, one kernel launch fewer per conv in a
                # backbone bound by launches. (An INT8 model had its BNs folded before calibration; the module at
                # home keeps them, as spconv's CPU kernels reject a bias in eval mode.)
                self.execution = f"BatchNorm folded into {len(fold_bn(moved))} sparse convs on {device.type}"
            self._copies[device] = moved
        return self._copies[device]
