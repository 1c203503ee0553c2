"""Sensitivity profile: the ranking and greedy keep-in-FP logic on a controlled measure, and the
real profile (tiny BEVDet through its plugin's quantize hook) is deterministic for a seed."""

from __future__ import annotations

import json

import pytest
from bevdeploy.quant.sensitivity import Budget, keep_fp_globs, profile_layers
from pytorch_quantization.nn import TensorQuantizer
from pytorch_quantization.tensor_quant import QuantDescriptor


def _groups(names):
    return {n: [TensorQuantizer(QuantDescriptor(num_bits=8))] for n in names}


def test_ranking_and_greedy_keep_fp():
    # each enabled layer costs a known amount of cosine; 'b' is worst, then 'c'
    cost = {"a": 0.0001, "b": 0.004, "c": 0.002, "d": 0.0002}
    groups = _groups(cost)

    def measure():
        on = [n for n, qs in groups.items() if not qs[0]._disabled]
        loss = sum(cost[n] for n in on)
        return {"cosine": 1.0 - loss, "sqnr_db": 60.0 - 1000 * loss}

    prof = profile_layers(groups, measure, "fidelity", Budget(min_cosine=0.999))
    assert [r["layer"] for r in prof.layers] == ["b", "c", "d", "a"]
    assert [r["rank"] for r in prof.layers] == [1, 2, 3, 4]
    assert prof.keep_fp == ["b", "c"] and prof.met  # 1 - 0.0003 >= 0.999 after b and c
    assert prof.all_quantized["cosine"] == pytest.approx(1 - 0.0063)
    assert all(not qs[0]._disabled for qs in groups.values())  # restored
    assert keep_fp_globs(["b"], grouped=True) == ["b", "b.*"] and keep_fp_globs(["b"], grouped=False) == ["b"]


def test_budget_not_met_keeps_everything():
    groups = _groups(["x", "y"])
    prof = profile_layers(groups, lambda: {"cosine": 0.5, "sqnr_db": 1.0}, "fidelity", Budget(min_cosine=0.9))
    assert prof.keep_fp == ["x", "y"] and not prof.met


@pytest.mark.slow
def test_bevdet_profile_deterministic_for_seed(small_dataroot, tmp_path, capsys):
    from bevdeploy.cli import main

    dataroot, version = small_dataroot
    results = []
    for i in range(2):
        argv = ["sensitivity", "--model", "bevdet", "--data", str(dataroot), "--version", version, "--split", "synth_val",
                "--calib-split", "synth_calib", "--calib-batches", "1", "--samples", "1", "--group-depth", "1",
                "--min-cosine", "0.9999999", "--seed", "3", "--out", str(tmp_path / f"s{i}")]
        assert main(argv) == 0, capsys.readouterr().err
        results.append(json.loads((tmp_path / f"s{i}" / "sensitivity.json").read_text()))
    assert results[0] == results[1]
    rep = results[0]
    groups = {r["layer"] for r in rep["layers"]}
    assert groups == {"img_backbone", "img_neck", "img_view_transformer", "img_bev_encoder_backbone",
                      "img_bev_encoder_neck", "pts_bbox_head"}
    assert rep["seed"] == 3 and rep["weights_note"] == "" and len(rep["samples"]) == 1  # the shipped weights
    assert all(g in {p for r in rep["layers"] for p in (r["layer"], r["layer"] + ".*")} for g in rep["keep_fp"])
    assert "sensitivity of bevdet" in capsys.readouterr().out
