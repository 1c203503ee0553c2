"""bevdeploy: quantize, partition, export, build, run, evaluate and measure BEV 3D detectors.

A model family is a plugin (``bevdeploy.plugins.<family>`` for the built-ins, an entry point in
group ``bevdeploy`` for third parties) implementing the hooks in :mod:`bevdeploy.hookspecs`.
"""

import pluggy

from .errors import BackendUnavailable, BevDeployError

__version__ = "0.1.0"

PROJECT_NAME = "bevdeploy"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: ``@bevdeploy.hookimpl``."""

__all__ = ["BackendUnavailable", "BevDeployError", "PROJECT_NAME", "__version__", "hookimpl"]
