"""PyTorch eager backend: the reference that runs every precision the model can express.

INT8 is simulated (fake-quant modules, FP32 arithmetic) and labelled so. FP16 is real on CUDA
(``.half()``); on the CPU the piece runs in FP32 and the engine notes it, rather than timing a
CPU FP16 path nobody deploys.
"""

from __future__ import annotations

import copy

import torch

from ..errors import BevDeployError
from ..graph import Artifact, Engine


def is_available() -> tuple[bool, str]:
    return True, ""


def _to(value: object, device: torch.device, dtype: torch.dtype | None) -> object:
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(device)
    if dtype is not None and value.is_floating_point():
        value = value.to(dtype)
    return value


def _has_quantizers(module: torch.nn.Module) -> bool:
    return any(type(m).__name__ == "TensorQuantizer" for m in module.modules())


class TorchEngine(Engine):
    """Calls the subgraph module positionally with its inputs, in eval mode, without autograd."""

    def __init__(self, artifact: Artifact, precision: str):
        super().__init__(artifact.name, "torch", precision, artifact.input_names, artifact.output_names)
        if artifact.module is None:
            raise BevDeployError(f"piece {artifact.name!r} has no module for the torch backend to run")
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        module = artifact.module
        self.dtype: torch.dtype | None = None
        quantized = _has_quantizers(module)
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
        self.size_bytes = artifact.size_bytes

    @torch.inference_mode()
    def infer_impl(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        args = [_to(inputs[n], self.device, self.dtype) for n in self.input_names]
        result = self.module(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
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
