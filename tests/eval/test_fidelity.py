"""Fidelity metrics on cases whose answer is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bevdeploy.eval import SQNR_CAP_DB, FidelityAccumulator, fidelity, fidelity_many


def test_identical_tensors_are_perfect() -> None:
    x = np.random.default_rng(0).standard_normal((4, 16, 8)).astype(np.float32)
    f = fidelity(x, x.copy())
    assert f["cosine"] == 1.0
    assert f["sqnr_db"] == SQNR_CAP_DB
    assert f["max_abs"] == 0.0
    assert f["mismatched_nonfinite"] == 0


def test_constant_noise_gives_exact_sqnr_and_max_abs() -> None:
    # ref^2 = 9 everywhere, error^2 = 9e-4 everywhere: SQNR exactly 40 dB, max error 0.03.
    ref = np.full(1000, 3.0)
    test = ref + np.where(np.arange(1000) % 2 == 0, 0.03, -0.03)
    f = fidelity(ref, test)
    assert f["sqnr_db"] == pytest.approx(40.0, abs=1e-9)
    assert f["max_abs"] == pytest.approx(0.03, rel=1e-9)
    assert f["cosine"] == pytest.approx(9 / math.sqrt(9 * 9.0009), rel=1e-12)


def test_gaussian_noise_sqnr_matches_power_ratio() -> None:
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(200_000)
    test = ref + 0.05 * rng.standard_normal(200_000)  # expected 10 log10(1 / 0.0025) = 26.02 dB
    assert fidelity(ref, test)["sqnr_db"] == pytest.approx(10 * math.log10(1 / 0.05**2), abs=0.1)


def test_scaled_copy_keeps_cosine_one_but_not_sqnr() -> None:
    ref = np.random.default_rng(2).standard_normal(100)
    f = fidelity(ref, 2.0 * ref)
    assert f["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert f["sqnr_db"] == pytest.approx(0.0, abs=1e-9)  # error energy equals signal energy
    assert fidelity(ref, -ref)["cosine"] == pytest.approx(-1.0, abs=1e-12)


def test_dtypes_are_compared_in_float64() -> None:
    x = torch.linspace(-3, 3, 1001, dtype=torch.float64)
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        f = fidelity(x, x.to(dt))  # torch reference in fp64 vs a rounded copy
        g = fidelity(x.numpy(), x.to(dt).double().numpy())
        assert f == g
        assert 0 < f["max_abs"] <= 3 * float(torch.finfo(dt).eps)
    # fp16 rounding noise of a smooth signal sits near 70 dB; bf16 (8 mantissa bits) near 50 dB.
    assert fidelity(x, x.half())["sqnr_db"] > fidelity(x, x.bfloat16())["sqnr_db"] + 15
    assert fidelity(np.arange(5), np.arange(5, dtype=np.int64))["sqnr_db"] == SQNR_CAP_DB


def test_zero_and_nonfinite_edges() -> None:
    z = np.zeros(8)
    assert fidelity(z, z) == {
        "cosine": 1.0,
        "sqnr_db": SQNR_CAP_DB,
        "max_abs": 0.0,
        "mismatched_nonfinite": 0,
    }
    f = fidelity(z, np.ones(8))
    assert f["cosine"] == 0.0 and f["sqnr_db"] == -SQNR_CAP_DB and f["max_abs"] == 1.0
    ref = np.array([1.0, 2.0, np.inf, np.nan])
    assert fidelity(ref, ref.copy())["sqnr_db"] == SQNR_CAP_DB  # identical non-finite values are left out
    broken = np.array([1.0, np.nan, np.inf, np.nan])
    f = fidelity(ref, broken)
    assert f == {"cosine": None, "sqnr_db": None, "max_abs": None, "mismatched_nonfinite": 1}
    with pytest.raises(ValueError):
        fidelity(np.zeros(3), np.zeros(4))


def test_aggregate_over_samples_is_concatenation() -> None:
    rng = np.random.default_rng(3)
    refs = [rng.standard_normal(50) * s for s in (1.0, 10.0, 0.1)]
    tests = [r + rng.standard_normal(50) * 0.1 for r in refs]
    acc = FidelityAccumulator()
    for r, t in zip(refs, tests, strict=True):
        acc.add({"feat": torch.from_numpy(r).float()}, {"feat": torch.from_numpy(t).float()})
    whole = fidelity(np.concatenate(refs).astype(np.float32), np.concatenate(tests).astype(np.float32))
    agg = acc.result()["feat"]
    assert agg["sqnr_db"] == pytest.approx(whole["sqnr_db"], abs=1e-9)
    assert agg["cosine"] == pytest.approx(whole["cosine"], abs=1e-12)
    assert agg["max_abs"] == whole["max_abs"]
    assert acc.num_samples == 3
    many = fidelity_many({"feat": refs, "x": refs[0]}, {"feat": tests, "x": refs[0]})
    assert many["feat"]["sqnr_db"] == pytest.approx(
        fidelity(np.concatenate(refs), np.concatenate(tests))["sqnr_db"]
    )
    assert many["x"]["sqnr_db"] == SQNR_CAP_DB
    with pytest.raises(ValueError):
        fidelity_many({"a": refs[0]}, {"b": refs[0]})
