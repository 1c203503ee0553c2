"""PyTorch backend: the reference that runs every precision the model can express.

INT8 is simulated (fake-quant modules, FP32 arithmetic) and labelled so. FP16 is real on CUDA
(``.half()``); on the CPU the piece runs in FP32 and the engine notes it, rather than timing a
CPU FP16 path nobody deploys.

On CUDA a piece is replayed as a CUDA graph (:class:`GraphedModule`): eager PyTorch launches one
kernel per op from Python, and at batch 1 the dense pieces spend more time launching than computing.
A piece that synchronises with the host (``.item()``, ``nonzero``, a data-dependent shape) or whose
input shapes keep changing runs eagerly instead, and the report's ``execution`` says which and why.
Fake-quant pieces (simulated INT8) get a sync-free quantizer forward with the same arithmetic
(:func:`bevdeploy.quant.without_host_syncs`), so they are replayed too.
``BEVDEPLOY_CUDA_GRAPHS=0`` in the environment turns graphs off (for A/B timing).
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass

import torch

from ..errors import BevDeployError
from ..graph import Artifact, Engine

MAX_SIGNATURES = 4
"""Input signatures (shapes, dtypes, strides) a piece may be captured for before it is run eagerly."""


def is_available() -> tuple[bool, str]:
    return True, ""


def graphs_enabled() -> bool:
    """CUDA graphs unless ``BEVDEPLOY_CUDA_GRAPHS`` is ``0`` (read when an engine is built)."""
    return os.environ.get("BEVDEPLOY_CUDA_GRAPHS", "1").strip() != "0"


def _to(value: object, device: torch.device, dtype: torch.dtype | None) -> object:
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(device)
    if dtype is not None and value.is_floating_point():
        value = value.to(dtype)
    return value


def _as_tuple(result: object) -> tuple:
    return (result,) if isinstance(result, torch.Tensor) else tuple(result)  # type: ignore[arg-type]


@dataclass
class _Capture:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]  # the graph reads these: each call copies its arguments into them
    outputs: tuple[torch.Tensor, ...]  # the graph writes these on every replay


class GraphedModule:
    """Calls ``module(*args)`` by replaying a CUDA graph captured for the arguments' signature.

    The first call with a new signature runs the module twice eagerly on a side stream (lazy
    initialisation, Triton compiles, cuDNN's choices; the second call with host synchronisation made an
    error, so a piece that syncs is found before capture), captures it, then replays. Outputs are
    copies, so they stay valid after the next call. :attr:`eager` holds why the module runs eagerly
    instead, once that is decided; it is then run eagerly for good (a failed capture costs one call).
    """

    def __init__(self, module: torch.nn.Module, max_signatures: int = MAX_SIGNATURES):
        self.module = module
        self.max_signatures = max_signatures
        self.captures: dict[tuple, _Capture] = {}
        self.eager: str | None = None

    @property
    def execution(self) -> str:
        if self.eager is not None:
            return f"eager: {self.eager}"
        if not self.captures:
            return ""
        return f"CUDA graph ({len(self.captures)} input signature{'s' if len(self.captures) > 1 else ''})"

    def __call__(self, *args: object) -> tuple:
        if self.eager is not None:
            return _as_tuple(self.module(*args))
        if not all(isinstance(a, torch.Tensor) and a.is_cuda for a in args):
            return self._give_up("an input is not a CUDA tensor", args)
        sig = tuple((tuple(a.shape), a.dtype, a.stride()) for a in args)  # type: ignore[union-attr]
        cap = self.captures.get(sig)
        if cap is None:
            if len(self.captures) >= self.max_signatures:
                return self._give_up(f"input shapes changed across calls (over {self.max_signatures} signatures)", args)
            try:
                cap = self._capture(args)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - any failure to capture means: run eagerly
                return self._give_up(_why(exc), args)
            self.captures[sig] = cap
        for static, arg in zip(cap.inputs, args, strict=True):
            static.copy_(arg)  # type: ignore[arg-type]
        cap.graph.replay()
        return tuple(o.clone() for o in cap.outputs)

    def _give_up(self, reason: str, args: tuple) -> tuple:
        self.eager, self.captures = reason, {}
        return _as_tuple(self.module(*args))

    def _capture(self, args: tuple[torch.Tensor, ...]) -> _Capture:
        static = [a.clone() for a in args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.module(*static)
            previous = torch.cuda.get_sync_debug_mode()
            with warnings.catch_warnings():  # "a prototype feature": what it misses, the capture below fails on
                warnings.simplefilter("ignore", UserWarning)
                torch.cuda.set_sync_debug_mode("error")
            try:
                result = _as_tuple(self.module(*static))
            finally:
                torch.cuda.set_sync_debug_mode(previous)
        torch.cuda.current_stream().wait_stream(side)
        if not all(isinstance(r, torch.Tensor) and r.is_cuda for r in result):
            raise _NotGraphable("an output is not a CUDA tensor")
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph):
                outputs = _as_tuple(self.module(*static))
        except Exception:
            # torch.cuda.graph leaves its capture stream current when ending the capture fails
            torch.cuda.set_stream(stream)
            raise
        return _Capture(graph, static, outputs)


class _NotGraphable(Exception):
    pass


def _why(exc: Exception) -> str:
    if isinstance(exc, _NotGraphable):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "synchronizing" in text:
        return "the piece synchronises with the host (e.g. .item(), nonzero, a data-dependent shape)"
    return f"capture failed ({type(exc).__name__}: {text[:160]})"


class TorchEngine(Engine):
    """Calls the subgraph module positionally with its inputs, in eval mode, without autograd."""

    def __init__(self, artifact: Artifact, precision: str):
        super().__init__(artifact.name, "torch", precision, artifact.input_names, artifact.output_names)
        if artifact.module is None:
            raise BevDeployError(f"piece {artifact.name!r} has no module for the torch backend to run")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        module = artifact.module
        self.dtype: torch.dtype | None = None
        # pytorch-quantization is imported once an engine is built, not when the backends are listed
        from ..quant import has_quantizers, without_host_syncs

        quantized = has_quantizers(module)
        if self.device.type == "cuda":
            # a copy: the artifact's module is the model's own (shared with the FP32 twin the fidelity
            # check runs on the CPU), so moving or halving it in place would move that one too
            module = copy.deepcopy(module)
        if precision == "fp16" and self.device.type == "cuda":
            module, self.dtype = module.half(), torch.float16
        elif precision == "fp16":
            self.notes.append("fp16 not executed by torch on the CPU: this piece ran in fp32")
        if precision.startswith("int8") and quantized:
            self.notes.append("int8 simulated with fake-quant (fp32 arithmetic) by the torch backend")
        elif precision.startswith("int8"):
            self.notes.append("int8 asked but this piece has no quantizers: it ran in fp32")
        self.module = module.to(self.device).eval()
        self.graphed = GraphedModule(self.module) if self.device.type == "cuda" and graphs_enabled() else None
        if self.graphed is not None and quantized:
            without_host_syncs(self.module)  # the same fake-quant arithmetic, capturable (the module is a copy)
        if self.device.type == "cuda" and self.graphed is None:
            self.execution = "eager: CUDA graphs turned off (BEVDEPLOY_CUDA_GRAPHS=0)"
        self.size_bytes = artifact.size_bytes

    @torch.inference_mode()
    def infer_impl(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        args = [_to(inputs[n], self.device, self.dtype) for n in self.input_names]
        if self.graphed is not None:
            result = self.graphed(*args)
            self.execution = self.graphed.execution
        else:
            result = _as_tuple(self.module(*args))
        if len(result) != len(self.output_names):
            raise RuntimeError(
                f"piece {self.name!r} returned {len(result)} values but declares outputs {self.output_names}"
            )
        return {
            n: (t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.float16 else t)
            for n, t in zip(self.output_names, result, strict=True)
        }


def build(artifact: Artifact, precision: str) -> Engine:
    if artifact.format != "torch":
        raise BevDeployError(
            f"piece {artifact.name!r} was exported as {artifact.format!r}; the torch backend runs modules only"
        )
    return TorchEngine(artifact, precision)
