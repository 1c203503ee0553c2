"""Numeric fidelity of a precision against FP32: cosine similarity, SQNR (dB), max abs error.

Definitions (every value computed in float64, whatever the input dtype):
- ``cosine`` = <ref, test> / (|ref| |test|); 1.0 when both are all zero, 0.0 when only one is.
- ``sqnr_db`` = 10 log10(sum ref^2 / sum (ref - test)^2), clamped to [-SQNR_CAP_DB, SQNR_CAP_DB]:
  identical tensors report exactly ``SQNR_CAP_DB`` (200 dB, far above the ~150 dB of FP32
  rounding), so the value is always a finite JSON number and "identical" is recognisable.
- ``max_abs`` = max |ref - test|.
Positions where both tensors hold the same non-finite value (same-signed inf, or both NaN) are
left out. Any other non-finite position (e.g. a NaN where FP32 is finite, the classic broken INT8
model) makes all three metrics None, and ``mismatched_nonfinite`` counts those positions.

Aggregating over several samples concatenates them: the sums are accumulated over every sample,
so a sample counts by its energy and size, as if all samples formed one tensor. (Averaging
per-sample dB values would let near-silent samples dominate.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

SQNR_CAP_DB = 200.0
"""Clamp for SQNR in dB; identical tensors report exactly this value."""


def as_float64(x: Any) -> np.ndarray:
    """A float64 numpy copy of a numpy array, torch tensor (any dtype incl. bfloat16) or number."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch for numpy callers
        return x.detach().to(device="cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)


class _Sums:
    """Running float64 sums for one tensor name over samples."""

    def __init__(self) -> None:
        self.ref2 = 0.0
        self.test2 = 0.0
        self.dot = 0.0
        self.err2 = 0.0
        self.max_abs = 0.0
        self.numel = 0
        self.mismatched = 0

    def add(self, ref: np.ndarray, test: np.ndarray) -> None:
        if ref.shape != test.shape:
            raise ValueError(f"fidelity needs equal shapes, got {ref.shape} and {test.shape}")
        ref = ref.ravel()
        test = test.ravel()
        finite = np.isfinite(ref) & np.isfinite(test)
        if not finite.all():
            bad = ~finite
            same = (ref[bad] == test[bad]) | (np.isnan(ref[bad]) & np.isnan(test[bad]))
            self.mismatched += int((~same).sum())
            ref, test = ref[finite], test[finite]
        err = ref - test
        self.ref2 += float(np.dot(ref, ref))
        self.test2 += float(np.dot(test, test))
        self.dot += float(np.dot(ref, test))
        self.err2 += float(np.dot(err, err))
        if err.size:
            self.max_abs = max(self.max_abs, float(np.abs(err).max()))
        self.numel += int(ref.size)

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cosine": None,
            "sqnr_db": None,
            "max_abs": None,
            "mismatched_nonfinite": self.mismatched,
        }
        if self.mismatched:
            return out
        out["cosine"] = _cosine(self.dot, self.ref2, self.test2)
        out["sqnr_db"] = _sqnr_db(self.ref2, self.err2)
        out["max_abs"] = self.max_abs
        return out


def _cosine(dot: float, ref2: float, test2: float) -> float:
    if ref2 == 0.0 and test2 == 0.0:
        return 1.0
    if ref2 == 0.0 or test2 == 0.0:
        return 0.0
    return float(min(1.0, max(-1.0, dot / math.sqrt(ref2 * test2))))


def _sqnr_db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return SQNR_CAP_DB
    if signal == 0.0:
        return -SQNR_CAP_DB
    return float(min(SQNR_CAP_DB, max(-SQNR_CAP_DB, 10.0 * math.log10(signal / noise))))


def fidelity(reference: Any, test: Any) -> dict[str, Any]:
    """Cosine, SQNR (dB) and max abs error of ``test`` against ``reference`` (same shape).

    Returns ``{"cosine", "sqnr_db", "max_abs", "mismatched_nonfinite"}``; see the module docstring
    for the conventions at the edges (identical, all-zero, non-finite).
    """
    sums = _Sums()
    sums.add(as_float64(reference), as_float64(test))
    return sums.result()


class FidelityAccumulator:
    """Fidelity per tensor name over many samples (concatenation semantics, see module docstring).

    ``acc.add({"camera_feature": ref, ...}, {"camera_feature": test, ...})`` once per sample, then
    ``acc.result()`` -> ``{name: metrics}``.
    """

    def __init__(self) -> None:
        self._sums: dict[str, _Sums] = {}
        self.num_samples = 0

    def add(self, reference: Mapping[str, Any], test: Mapping[str, Any]) -> None:
        if set(reference) != set(test):
            raise ValueError(
                f"fidelity needs the same tensor names, got {sorted(reference)} and {sorted(test)}"
            )
        for name in reference:
            self._sums.setdefault(name, _Sums()).add(as_float64(reference[name]), as_float64(test[name]))
        self.num_samples += 1

    def result(self) -> dict[str, dict[str, Any]]:
        return {name: s.result() for name, s in self._sums.items()}


def fidelity_many(reference: Mapping[str, Any], test: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Fidelity of each named tensor of one sample: ``{name: {"cosine", "sqnr_db", "max_abs", ...}}``.

    A value may also be a list/tuple of tensors (one per sample): they are aggregated by
    concatenation, like :class:`FidelityAccumulator`.
    """
    if set(reference) != set(test):
        raise ValueError(f"fidelity needs the same tensor names, got {sorted(reference)} and {sorted(test)}")
    out = {}
    for name in reference:
        refs, tests = reference[name], test[name]
        if not isinstance(refs, (list, tuple)):
            refs, tests = [refs], [tests]
        if len(refs) != len(tests):
            raise ValueError(f"'{name}': {len(refs)} reference samples but {len(tests)} test samples")
        sums = _Sums()
        for r, t in zip(refs, tests, strict=True):
            sums.add(as_float64(r), as_float64(t))
        out[name] = sums.result()
    return out
