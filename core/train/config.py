"""What one training run is: every field lands in the manifest, so a run can be reproduced."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.augment import AugmentConfig


@dataclass
class TrainConfig:
    """Hyper-parameters and data of a run (defaults: a short one-cycle AdamW schedule)."""

    model: str
    out: Path
    variant: str | None = None
    dataroot: Path | None = None  # None: the built-in synthetic set
    version: str | None = None
    split: str | None = None  # None: the synthetic set's train split
    val_split: str | None = None  # None: the synthetic set's val split; "" skips evaluation
    epochs: int = 1
    batch_size: int = 2
    lr: float = 1e-3
    weight_decay: float = 0.01
    pct_start: float = 0.4
    grad_clip: float = 35.0
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    amp: bool = False  # bf16 autocast on CUDA
    sweeps: int = 9
    max_samples: int | None = None  # first N training samples (tests)
    eval_max_samples: int | None = None
    save_every: int = 0  # steps between resumable checkpoints (0: at each epoch's end only)
    max_steps: int | None = None  # stop (resumably) after this global step (tests, pilots)
    time_limit_s: float | None = None  # stop after this much training time and still export + evaluate
    fit_schedule: bool = False  # shorten the one-cycle schedule to end at time_limit_s (rate measured early on)
    # pause after this many seconds of this invocation: save resumable state and exit without
    # evaluating (time-sliced or preemptible jobs); --resume continues, time_limit_s counting on
    stop_after_s: float | None = None
    log_every: int = 10
    init_from: Path | None = None  # start from these weights (fine-tuning, QAT) instead of the model's init
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
