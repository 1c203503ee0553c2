"""What a run reports (report.json). Validated before it is written so every report has the
same shape whichever model, precision or backend produced it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Percentiles(_Spec):
    p50: float = Field(description="Median, milliseconds.")
    p90: float = Field(description="90th percentile, milliseconds.")
    mean: float = Field(default=0.0, description="Mean, milliseconds.")
    n: int = Field(default=0, description="Number of timed calls.")


class Fidelity(_Spec):
    cosine: float = Field(description="Cosine similarity to the FP32 piece on identical inputs (1 = same).")
    sqnr_db: float = Field(description="Signal-to-quantization-noise ratio in dB (higher is closer).")
    max_abs: float = Field(description="Largest absolute difference.")
    samples: int = Field(default=0, description="Samples compared.")


class Metrics(_Spec):
    mAP: float = Field(description="nuScenes mean average precision.")
    NDS: float = Field(description="nuScenes detection score.")
    per_class: dict[str, Any] = Field(default_factory=dict, description="Class -> AP (and TP errors).")
    tp_errors: dict[str, float] = Field(default_factory=dict, description="mATE, mASE, mAOE, mAVE, mAAE.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else the evaluator returned.")


class RunReport(_Spec):
    """One model at one precision on one backend."""

    model: str
    variant: str
    precision: str
    backend: str
    device: str = Field(description="Where it ran, e.g. 'cpu: 2 cores x86_64' or the GPU name.")
    checkpoint: str | None = Field(default=None, description="Weights loaded, or null for random init.")
    demo: bool = Field(default=False, description="True when the built-in demo was run.")
    dataset: dict[str, Any] = Field(default_factory=dict, description="dataroot, version, split, samples.")
    metrics: Metrics
    fidelity: dict[str, Fidelity] = Field(default_factory=dict, description="Piece -> fidelity against FP32.")
    latency_ms: dict[str, Percentiles] = Field(description="Piece (and op) and 'end_to_end' -> percentiles.")
    fps: float = Field(description="1000 / mean end-to-end latency (batch 1).")
    size_mb: dict[str, float] = Field(description="Piece -> artifact/engine size in MB (1e6 bytes); 'total'.")
    memory_mb: float = Field(description="Peak memory in MB, see memory_what.")
    memory_what: str = Field(default="", description="What memory_mb measures.")
    artifacts: dict[str, str] = Field(default_factory=dict, description="Piece -> file (or 'module' for torch).")
    piece_precisions: dict[str, str] = Field(default_factory=dict, description="Piece -> precision it was built at.")
    not_honoured: list[str] = Field(default_factory=list, description="Precisions the backend did not execute as asked.")
    execution: dict[str, str] = Field(
        default_factory=dict,
        description="Piece -> how its engine ran it where the backend chooses (e.g. 'CUDA graph', or 'eager: why').",
    )
    notes: list[str] = Field(default_factory=list, description="Other facts a reader needs (reuse, demo, ...).")
    timings_s: dict[str, float] = Field(default_factory=dict, description="Wall time per pipeline stage.")
    workspace: str = Field(default="", description="The run's folder.")
