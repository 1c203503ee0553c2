"""Weights load strictly and safely; every way a checkpoint can be wrong is one clear line."""

from __future__ import annotations

import pytest
import torch
from bevdeploy import BevDeployError
from bevdeploy.checkpoint import load_checkpoint
from safetensors.torch import save_file


def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: torch.randn_like(v.float()).to(v.dtype) for k, v in _net().state_dict().items()}


@pytest.mark.parametrize("layout", ["safetensors", "torch", "wrapped"])
def test_loads_each_format_exactly(tmp_path, layout):
    state = _state()
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    else:
        path = tmp_path / "w.pth"
        torch.save({"state_dict": state, "meta": {"epoch": 3}} if layout == "wrapped" else state, path)
    model = load_checkpoint(_net(), path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_conversion_maps_foreign_names(tmp_path):
    state = {f"module.{k}": v for k, v in _state().items()}
    path = tmp_path / "w.pth"
    torch.save(state, path)
    load_checkpoint(_net(), path, convert=lambda s: {k.removeprefix("module."): v for k, v in s.items()})


def _one_line_error(model, path) -> str:
    with pytest.raises(BevDeployError) as e:
        load_checkpoint(model, path)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_missing_file(tmp_path):
    assert "does not exist" in _one_line_error(_net(), tmp_path / "nope.pth")


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    assert "is not a checkpoint" in _one_line_error(_net(), junk)
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    assert "not a readable safetensors file" in _one_line_error(_net(), bad_st)


class Arbitrary:  # an object that weights_only unpickling must refuse
    pass


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"weights": Arbitrary()}, path)
    assert "weights_only=True refused it: Unsupported global: GLOBAL test_core_checkpoint.Arbitrary" in _one_line_error(_net(), path)
    path2 = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path2)
    assert "does not hold a dict of tensors" in _one_line_error(_net(), path2)


def test_mismatched_keys_are_listed(tmp_path):
    state = _state()
    state.pop("0.weight")
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    msg = _one_line_error(_net(), path)
    assert "1 missing: 0.weight" in msg and "1 unexpected: extra.weight" in msg


def test_wrong_shapes_are_named(tmp_path):
    state = _state()
    state["0.weight"] = torch.zeros(5, 2, 1, 1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    assert "0.weight: (5, 2, 1, 1) vs the model's (3, 2, 1, 1)" in _one_line_error(_net(), path)


@pytest.mark.parametrize("wrap", ["model", "module", "nested"])
def test_training_wrappers_and_ddp_prefix_are_opened(tmp_path, wrap):
    """Trainer checkpoints hold the state dict under "model"/"module" (or nested, beside metadata)
    with a DDP "module." prefix on every key; they load without a convert function."""
    state = {f"module.{k}": v for k, v in _state().items()}
    obj = {"state_dict": {"model": state}} if wrap == "nested" else {wrap: state, "optimizer": {"step": 3}}
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    model = load_checkpoint(_net(), path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, _state()[k]), k
