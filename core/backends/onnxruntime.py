"""ONNX Runtime on the CPU: the embedded default backend.

INT8 graphs arrive as ORT-style QDQ (U8S8, outputs quantized), which ORT fuses into integer
kernels. FP16 graphs run, but ORT's CPU provider upcasts them to FP32 at load; the engine says so
in its notes so the report does not claim an FP16 speed it never had.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..errors import BevDeployError
from ..graph import Artifact, Engine

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}
_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def is_available() -> tuple[bool, str]:
    try:
        import onnxruntime  # noqa: F401
    except Exception as exc:
        return False, f"onnxruntime cannot be imported: {type(exc).__name__}: {exc}"
    return True, ""


def default_threads() -> int:
    """Intra-op threads: ``BEVDEPLOY_ORT_THREADS`` if set, else every core this process may use."""
    value = os.environ.get("BEVDEPLOY_ORT_THREADS")
    if value:
        return max(1, int(value))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def custom_domains(model_path: str) -> set[str]:
    """Non-standard operator domains used by the graph (nodes needing a custom-op library)."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    return {n.domain for n in model.graph.node if n.domain not in STANDARD_DOMAINS}


def has_fp16(model_path: str) -> bool:
    """Whether the graph computes in FP16 (FP16 initializers, inputs or Cast-to-FP16 nodes)."""
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    fp16 = onnx.TensorProto.FLOAT16
    if any(t.data_type == fp16 for t in model.graph.initializer):
        return True
    if any(v.type.tensor_type.elem_type == fp16 for v in model.graph.input):
        return True
    return any(
        n.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in n.attribute) for n in model.graph.node
    )


def session_options(needs_custom_ops: bool, threads: int | None = None) -> Any:
    """SessionOptions with full graph optimisation; registers bevdeploy's custom ops when needed.

    onnxruntime-extensions only sees ops defined before its library is registered on the options,
    so every registered OpSpec's ``ort_define`` runs first.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: constant-folding notices are not the user's business
    # Ops run in torch between engines; spinning ORT workers would steal their cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if needs_custom_ops:
        from onnxruntime_extensions import get_library_path

        from ..manager import registered_ops

        for op in registered_ops().values():
            if op.ort_define is not None:
                op.ort_define()
        opts.register_custom_ops_library(get_library_path())
    return opts


class OrtEngine(Engine):
    """One ONNX file in an InferenceSession (CPU provider)."""

    def __init__(self, artifact: Artifact, precision: str, threads: int | None = None):
        super().__init__(artifact.name, "onnxruntime", precision, artifact.input_names, artifact.output_names)
        import onnxruntime as ort

        path = str(artifact.path)
        domains = custom_domains(path)
        try:
            self.session = ort.InferenceSession(
                path, sess_options=session_options(bool(domains), threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # e.g. a custom op no plugin defines
            raise BevDeployError(
                f"ONNX Runtime cannot load {path} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                f"check that the plugin providing its custom ops {sorted(domains) or ''} is installed"
            ) from exc
        self.size_bytes = artifact.size_bytes
        self._input_types = {i.name: _ORT_TO_NUMPY.get(i.type, np.float32) for i in self.session.get_inputs()}
        self._session_outputs = [o.name for o in self.session.get_outputs()]
        if has_fp16(path):
            self.notes.append("fp16 upcast to fp32 at load by ONNX Runtime CPU")
        if domains:
            self.notes.append(f"custom ops {sorted(domains)} run through onnxruntime-extensions (Python)")

    def infer_impl(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feed = {}
        for name, value in inputs.items():
            if name not in self._input_types:
                continue  # an input folded away at export (e.g. a constant)
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            feed[name] = np.ascontiguousarray(array.astype(self._input_types[name], copy=False))
        results = self.session.run(self._session_outputs, feed)
        out = {}
        for name, array in zip(self._session_outputs, results, strict=True):
            tensor = torch.from_numpy(np.asarray(array))
            out[name] = tensor.float() if tensor.dtype == torch.float16 else tensor
        return out


def build(artifact: Artifact, precision: str) -> Engine:
    """An engine for an ONNX artifact; other formats belong to another backend or plugin."""
    if artifact.format != "onnx" or artifact.path is None:
        raise BevDeployError(
            f"piece {artifact.name!r} was exported as {artifact.format!r}, which onnxruntime cannot run; "
            f"use the backend the piece was exported for"
        )
    return OrtEngine(artifact, precision)
