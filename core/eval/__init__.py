"""Evaluation: nuScenes detection metrics through the devkit, numeric fidelity, and pictures.

Heavy imports (nuscenes-devkit, matplotlib) happen inside the functions that need them.
"""

from .detection import (
    default_attribute,
    evaluate_detections,
    evaluate_results,
    format_table,
    lidar_poses,
    to_nuscenes_results,
)
from .fidelity import SQNR_CAP_DB, FidelityAccumulator, fidelity, fidelity_many
from .results import load_results_file, validate_results
from .viz import render_sample

__all__ = [
    "SQNR_CAP_DB",
    "FidelityAccumulator",
    "default_attribute",
    "evaluate_detections",
    "evaluate_results",
    "fidelity",
    "fidelity_many",
    "format_table",
    "lidar_poses",
    "load_results_file",
    "render_sample",
    "to_nuscenes_results",
    "validate_results",
]
