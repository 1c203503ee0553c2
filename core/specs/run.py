"""What the user asks for: a run (model, data, precision, backend) and its quantization."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Precision = Literal["fp32", "fp16", "int8", "int8-fp32"]
CalibMethod = Literal["max", "entropy", "percentile", "mse"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuantSpec(_Spec):
    """Post-training quantization settings (pytorch-quantization semantics)."""

    method: CalibMethod = Field(default="mse", description="How activation amax is chosen from the histogram.")
    percentile: float = Field(default=99.99, gt=0, le=100, description="Percentile for method 'percentile'.")
    num_batches: int = Field(default=8, ge=1, description="Calibration samples (batch size 1).")
    per_channel_weights: bool = Field(default=True, description="Per-output-channel weight amax.")
    keep_fp: list[str] = Field(
        default_factory=list,
        description="Glob patterns of module names kept in higher precision (quantizers disabled).",
    )
    calib_split: str | None = Field(
        default=None, description="Split the calibration samples come from; None = the dataset's calibration split."
    )


class DataSpec(_Spec):
    """Where the samples come from: a real nuScenes dataroot, or the built-in synthetic set."""

    dataroot: Path | None = Field(default=None, description="nuScenes dataroot; None = built-in synthetic set.")
    version: str = Field(default="v1.0-trainval", description="Table folder inside the dataroot.")
    split: str | None = Field(
        default=None,
        description="Split evaluated: a devkit split name or one from splits.json; None = the dataset's validation split.",
    )
    max_samples: int | None = Field(default=None, ge=1, description="Evaluate only the first N samples.")


class RunSpec(_Spec):
    """One model at one precision on one backend, end to end."""

    model: str = Field(description="Registered model name.")
    variant: str | None = Field(default=None, description="Variant; None = the model's demo variant.")
    checkpoint: Path | None = Field(default=None, description="Weights (safetensors or torch state dict).")
    precision: Precision = Field(default="fp32")
    backend: str = Field(default="onnxruntime")
    data: DataSpec = Field(default_factory=DataSpec)
    quant: QuantSpec = Field(default_factory=QuantSpec)
    seed: int = Field(default=0)
