"""Shared tiny-BEVDet fixtures: one model, one prepared sample from the session's small dataset."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny():
    from bevdeploy.plugins.bevdet.model import build

    return build("tiny")


@pytest.fixture(scope="module")
def tiny_inputs(tiny, small_dataroot):
    from bevdeploy.data import open_dataset
    from bevdeploy.plugins.bevdet.prepare import prepare
    from bevdeploy.specs.run import DataSpec

    dataroot, version = small_dataroot
    ds = open_dataset(DataSpec(dataroot=dataroot, version=version, split="synth_val"), role="eval")
    return [prepare(tiny, ds[i]) for i in range(2)]
