"""Training: the loop behind ``bevdeploy train`` (and later QAT), its data pipeline with
augmentation, resumable checkpoints and the shipped-weights manifest.

The core knows no model: a plugin makes its model trainable by setting ``ModelSpec.loss``.
"""

from __future__ import annotations

from .config import TrainConfig
from .loop import train
from .state import export_weights, file_sha256, load_weights, read_manifest

__all__ = ["TrainConfig", "export_weights", "file_sha256", "load_weights", "read_manifest", "train"]
