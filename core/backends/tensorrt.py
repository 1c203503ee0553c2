"""TensorRT 10: explicit quantization (Q/DQ in a strongly typed network), custom-op plugins,
CUDA-event timing, engine size and device memory.

Written against the TensorRT 10 Python API. Where ``tensorrt`` cannot be imported (every machine
here, see ENVIRONMENT.md) ``is_available()`` says so and nothing below the static checks runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import BackendUnavailable, BevDeployError
from ..graph import Artifact, Engine

WORKSPACE_BYTES = 4 << 30


def is_available() -> tuple[bool, str]:
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return False, f"tensorrt cannot be imported: {type(exc).__name__}: {exc}"
    if not torch.cuda.is_available():
        return False, "tensorrt needs a CUDA GPU and torch sees none"
    return True, ""


def has_qdq(model_path: str | Path) -> bool:
    """Explicitly quantized graphs (QuantizeLinear/DequantizeLinear) are built strongly typed."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def static_problems(model_path: str | Path) -> list[str]:
    """What TensorRT 10's parser would refuse in the graph, checked without TensorRT; custom-op
    nodes count as supported when a registered op names them and provides a TensorRT plugin."""
    import onnx

    from ..export import check_tensorrt
    from ..manager import registered_ops

    plugin_ops = [name for op in registered_ops().values() if op.trt_register for name in op.onnx_names.values()]
    return check_tensorrt(onnx.load(str(model_path), load_external_data=False), plugin_ops)


def prepare_onnx(model: Any) -> tuple[Any, int]:
    """The graph TensorRT should parse: ``model`` (onnx.ModelProto) after every registered op's ``trt_prepare``
    rewrite (each distinct callable once), and the number of nodes they changed."""
    from ..manager import registered_ops

    rewrites = []
    for op in registered_ops().values():
        if op.trt_prepare is not None and op.trt_prepare not in rewrites:
            rewrites.append(op.trt_prepare)
    changed = 0
    for rewrite in rewrites:
        model, n = rewrite(model)
        changed += n
    return model, changed


def build_plan(onnx_path: Path, precision: str, strongly_typed: bool) -> bytes:
    """Parse the ONNX file (after :func:`prepare_onnx`) and return the serialized engine (plan)."""
    import onnx
    import tensorrt as trt

    from ..manager import registered_ops

    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    for op in registered_ops().values():
        if op.trt_register is not None:
            op.trt_register()
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    model, _ = prepare_onnx(onnx.load(str(onnx_path)))
    # path: where the parser resolves external weight files named in the graph
    if not parser.parse(model.SerializeToString(), str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BevDeployError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if not strongly_typed and precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # strongly typed networks take types from the graph
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BevDeployError(f"TensorRT failed to build an engine from {onnx_path}; rerun with --debug for its log")
    return bytes(plan)


class TrtEngine(Engine):
    """A deserialized engine with one execution context, fed torch CUDA tensors in place."""

    def __init__(self, name: str, precision: str, plan: bytes, input_names: list[str], output_names: list[str]):
        super().__init__(name, "tensorrt", precision, input_names, output_names)
        import tensorrt as trt

        self._trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        self.context = self.engine.create_execution_context()
        self.size_bytes = len(plan)
        self.device_memory_bytes = int(self.engine.device_memory_size_v2)
        self.stream = torch.cuda.Stream()
        self.last_gpu_ms = 0.0
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def _dtype(self, name: str) -> torch.dtype:
        trt = self._trt
        table = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.int32: torch.int32,
            trt.int64: torch.int64,
            trt.int8: torch.int8,
            trt.bool: torch.bool,
        }
        return table[self.engine.get_tensor_dtype(name)]

    def infer_impl(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keep = []  # holds the converted inputs alive until the stream finishes
        for name in self._inputs:
            tensor = inputs[name].to("cuda", self._dtype(name)).contiguous()
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self._outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=self._dtype(name), device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(self.stream):
            start.record(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution of {self.name!r} failed")
            end.record(self.stream)
        self.stream.synchronize()
        self.last_gpu_ms = start.elapsed_time(end)
        return {n: (t.float() if t.dtype == torch.float16 else t) for n, t in outputs.items()}


def build(artifact: Artifact, precision: str) -> Engine:
    """Build (or load the cached plan of) an engine; the plan is written beside the workspace's
    engines folder when the pipeline gives one in ``artifact.meta['engine_dir']``."""
    ok, reason = is_available()
    if not ok:
        raise BackendUnavailable(f"backend 'tensorrt' is not usable here: {reason}")
    if artifact.format != "onnx" or artifact.path is None:
        raise BevDeployError(f"piece {artifact.name!r} is {artifact.format!r}; TensorRT builds ONNX only")
    problems = static_problems(artifact.path)
    if problems:
        raise BevDeployError(f"{artifact.path} will not build in TensorRT: {problems[0]} ({len(problems)} problems)")
    plan = build_plan(Path(artifact.path), precision, strongly_typed=has_qdq(artifact.path))
    engine_dir: Any = artifact.meta.get("engine_dir")
    if engine_dir:
        from ..workspace import atomic_write_bytes

        atomic_write_bytes(Path(engine_dir) / f"{artifact.name}.plan", plan)
    return TrtEngine(artifact.name, precision, plan, artifact.input_names, artifact.output_names)
