"""The training loop on the CPU: the loss goes down, checkpoints reload bit-exact, resume
continues where it stopped, and the manifest matches the weights file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bevdeploy.data.nuscenes import NuScenesDataset
from bevdeploy.errors import BevDeployError
from bevdeploy.train import TrainConfig, file_sha256, load_weights, read_manifest, train
from bevdeploy.train.state import STATE_FILE, STATE_JSON, load_state
from safetensors.torch import load_file


def _cfg(small_dataroot, out, **kw) -> TrainConfig:
    root, version = small_dataroot
    base = dict(model="bevfusion", variant="tiny", dataroot=root, version=version, split="synth_all",
                val_split="", epochs=1, batch_size=1, lr=2e-3, max_samples=2, out=out, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_reduce_the_loss(small_dataroot):
    """Six AdamW steps on one fixed sample (seeded) lower the summed TransFusion loss."""
    from bevdeploy.plugins.bevfusion.loss import transfusion_loss
    from bevdeploy.plugins.bevfusion.model import build
    from bevdeploy.plugins.bevfusion.prepare import prepare

    root, version = small_dataroot
    sample = NuScenesDataset(root, version, "synth_all", sweeps=1)[0]
    torch.manual_seed(0)
    model = build("tiny").train()
    model.init_training()
    inputs = prepare(model, sample)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        terms = transfusion_loss(model, [inputs], [sample])
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.fixture(scope="module")
def full_run(small_dataroot, tmp_path_factory):
    out = tmp_path_factory.mktemp("train-full")
    manifest = train(_cfg(small_dataroot, out), command="test")
    return out, manifest


def test_weights_manifest_and_bit_exact_reload(full_run):
    from bevdeploy.plugins.bevfusion.model import build

    out, manifest = full_run
    weights = out / "tiny.safetensors"
    recorded = read_manifest(weights)
    assert recorded["sha256"] == file_sha256(weights)
    assert recorded["step"] == recorded["total_steps"] == 2
    assert recorded["model"] == "bevfusion" and recorded["config"]["lr"] == 2e-3
    assert recorded["data"]["generator"]["seed"] == 0
    # which scenes trained (a custom split of a bigger set must say so); no validation split here
    assert recorded["data"]["splits"]["train"]["split"] == "synth_all"
    assert recorded["data"]["splits"]["train"]["samples"] == 2 and recorded["data"]["splits"]["train"]["scenes"]
    assert "val" not in recorded["data"]["splits"]
    stored = load_file(str(weights))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    model = load_weights(build("tiny"), weights)
    for k, v in model.state_dict().items():
        assert torch.equal(v, stored[k].to(v.dtype)), k
    # the resumable state holds the exact FP32 weights
    state = load_file(str(out / STATE_FILE))
    for k, v in stored.items():
        if v.is_floating_point():
            assert torch.equal(state[f"model.{k}"].half(), v), k


def test_resume_continues_from_the_same_step(full_run, small_dataroot, tmp_path):
    """Stop after step 1, resume: same LR, same loss at step 2 and the same final weights as the
    uninterrupted run."""
    out, manifest = full_run
    first = train(_cfg(small_dataroot, tmp_path, max_steps=1), command="test")
    assert first["step"] == 1 and not (tmp_path / "tiny.safetensors").exists()
    assert json.loads((tmp_path / STATE_JSON).read_text())["step"] == 1
    resumed = train(_cfg(small_dataroot, tmp_path), resume=True, command="test")
    assert resumed["step"] == 2
    assert resumed["final_loss"] == pytest.approx(manifest["final_loss"], rel=1e-5, abs=1e-6)
    a, b = load_file(str(out / STATE_FILE)), load_file(str(tmp_path / STATE_FILE))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    ja, jb = json.loads((out / STATE_JSON).read_text()), json.loads((tmp_path / STATE_JSON).read_text())
    assert ja["scheduler"]["last_epoch"] == jb["scheduler"]["last_epoch"] == 2
    assert ja["param_groups"][0]["lr"] == pytest.approx(jb["param_groups"][0]["lr"])


def test_resume_errors(small_dataroot, tmp_path, full_run):
    with pytest.raises(BevDeployError, match="no training state"):
        train(_cfg(small_dataroot, tmp_path / "empty"), resume=True)
    out, _ = full_run
    from bevdeploy.plugins.bevfusion.model import build

    model = build("tiny")
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=2)
    load_state(out, model, opt, sched)  # loads the finished run's state
    (tmp_path / "copy").mkdir()
    data = bytearray((out / STATE_FILE).read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensor data
    (tmp_path / "copy" / STATE_FILE).write_bytes(bytes(data))
    (tmp_path / "copy" / STATE_JSON).write_text((out / STATE_JSON).read_text())
    with pytest.raises(BevDeployError, match="does not match"):
        load_state(tmp_path / "copy", model, opt, sched)


def test_model_without_loss_is_refused(small_dataroot, tmp_path, monkeypatch):
    with pytest.raises(BevDeployError, match="unknown model"):
        train(_cfg(small_dataroot, tmp_path, model="nosuchmodel"))


@pytest.mark.slow
def test_torchrun_ranks_stop_together_at_the_time_limit(small_dataroot, tmp_path):
    """Two gloo ranks under torchrun with a time limit already spent: the stop decision is taken
    collectively (rank 0's clock, broadcast), both stop after the first step and the run ends
    instead of hanging; rank 0 writes the weights, evaluated on two samples by a worker."""
    import os
    import subprocess
    import sys

    root, version = small_dataroot
    out = tmp_path / "ddp"
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
            "-m", "bevdeploy.cli", "train", "--model", "bevfusion", "--variant", "tiny", "--data", str(root),
            "--version", version, "--split", "synth_all", "--val-split", "synth_val", "--eval-max-samples", "2",
            "--max-samples", "4", "--batch-size", "1", "--epochs", "2", "--workers", "1", "--time-limit", "0",
            "--out", str(out)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = read_manifest(out / "tiny.json")
    assert manifest["world_size"] == 2 and manifest["step"] == 1 and manifest["total_steps"] == 4
    assert manifest["metrics_fp32"]["num_samples"] == 2


@pytest.mark.parametrize("name", ["bevfusion", "bevdet"])
def test_targets_drawn_in_workers_give_the_same_loss(small_dataroot, name):
    """TrainSamples draws the spec's targets next to prepare (sample.extra['targets']); the loss
    on those equals the loss that draws them itself."""
    from bevdeploy.data.augment import TARGETS_KEY, AugmentConfig
    from bevdeploy.manager import registered_models
    from bevdeploy.train.data import TrainSamples

    root, version = small_dataroot
    spec = registered_models()[name]
    model = spec.build("tiny").eval()
    ds = NuScenesDataset(root, version, "synth_all", sweeps=1)
    data = TrainSamples(ds, spec.prepare, model, AugmentConfig(), seed=3, targets=spec.targets)
    inputs, sample = data[(0, 1)]
    assert TARGETS_KEY in sample.extra
    plain = TrainSamples(ds, spec.prepare, model, AugmentConfig(), seed=3)[(0, 1)][1]
    assert TARGETS_KEY not in plain.extra
    with torch.no_grad():
        drawn, own = spec.loss(model, [inputs], [sample]), spec.loss(model, [inputs], [plain])
    assert drawn.keys() == own.keys()
    for k in drawn:
        torch.testing.assert_close(drawn[k], own[k])


@pytest.fixture
def step_clock(monkeypatch):
    """The training loop's clock advanced by one second per training step and by nothing else, so that
    rates, fitted schedules and time limits do not depend on how loaded the machine is."""
    from bevdeploy.train import loop

    now = [0.0]
    real_step = loop._step

    def step(*args, **kwargs):
        out = real_step(*args, **kwargs)
        now[0] += 1.0
        return out

    monkeypatch.setattr(loop, "_step", step)
    monkeypatch.setattr(loop, "_now", lambda: now[0])
    return now


@pytest.mark.slow
def test_fit_schedule_ends_the_one_cycle_at_the_time_limit(small_dataroot, tmp_path, step_clock):
    """With fit_schedule the one-cycle schedule is shortened, from the rate measured early in the
    run, so that it ends at the time limit: fewer steps than the epochs planned, the run ends at the
    fitted end, and the saved scheduler state says the shorter length. At one step per second the rate
    is marked at step 1 (5% of 8 s) and measured at step 2 (10%): 1 step/s, so 2 + int(0.97 * 6) = 7."""
    cfg = _cfg(small_dataroot, tmp_path / "fit", epochs=100, time_limit_s=8.0, fit_schedule=True, log_every=50)
    manifest = train(cfg, command="test")
    assert manifest["total_steps"] == 7 < 100 * 2 and manifest["step"] == 7
    state = json.loads((tmp_path / "fit" / STATE_JSON).read_text())
    assert state["scheduler"]["total_steps"] == 7


def test_time_limit_without_fitting_stops_the_run_early(small_dataroot, tmp_path, step_clock):
    """Without fit_schedule the schedule keeps its planned length and the run stops at the first step
    past the time limit (step 4 at one step per second over 3.5 s), then exports and evaluates."""
    cfg = _cfg(small_dataroot, tmp_path / "limit", epochs=100, time_limit_s=3.5, log_every=50)
    manifest = train(cfg, command="test")
    assert manifest["total_steps"] == 200 and manifest["step"] == 4
    assert (tmp_path / "limit" / "tiny.safetensors").exists()


def test_fit_schedule_needs_a_time_limit(small_dataroot, tmp_path):
    with pytest.raises(BevDeployError, match="--time-limit"):
        train(_cfg(small_dataroot, tmp_path / "nofit", fit_schedule=True))


def test_stop_after_pauses_resumably(full_run, small_dataroot, tmp_path):
    """--stop-after saves the resumable state and exits without exporting or evaluating; resume
    then ends where the uninterrupted run ends."""
    out, manifest = full_run
    paused = train(_cfg(small_dataroot, tmp_path, stop_after_s=1e-6), command="test")
    assert paused["step"] == 1 and not (tmp_path / "tiny.safetensors").exists()
    state = json.loads((tmp_path / STATE_JSON).read_text())
    assert state["step"] == 1 and state["elapsed_s"] > 0
    resumed = train(_cfg(small_dataroot, tmp_path), resume=True, command="test")
    assert resumed["step"] == 2 and (tmp_path / "tiny.safetensors").exists()
    assert resumed["final_loss"] == pytest.approx(manifest["final_loss"], rel=1e-5, abs=1e-6)
    assert [s["steps"] for s in resumed["slices"]] == [[0, 1], [1, 2]]


@pytest.mark.slow
def test_a_paused_fitted_schedule_resumes_with_its_length_and_clock(small_dataroot, tmp_path, step_clock):
    """A run paused after its schedule was fitted keeps the fitted length when resumed, and its
    time limit counts the time trained before the pause (it is not fitted again). At one step per second
    over 16 s the schedule is fitted at step 2 to 2 + int(0.97 * 14) = 15 steps, the pause after 8 s comes
    at step 9, and the resumed run ends at step 15 (15 s < 16)."""
    out = tmp_path / "sliced"
    kw = dict(epochs=200, time_limit_s=16.0, fit_schedule=True, log_every=50)
    start = tmp_path / "start" / "tiny.safetensors"
    from bevdeploy.plugins.bevfusion.model import build
    from bevdeploy.train.state import export_weights

    export_weights(build("tiny"), start.parent, "tiny", {"model": "bevfusion"})
    paused = train(_cfg(small_dataroot, out, stop_after_s=8.0, init_from=start, **kw), command="first")
    state = json.loads((out / STATE_JSON).read_text())
    assert state["schedule_fitted"] and state["elapsed_s"] == 9.0 and state["scheduler"]["total_steps"] == 15
    assert paused["step"] == 9 and not (out / "tiny.safetensors").exists()
    resumed = train(_cfg(small_dataroot, out, **kw), resume=True, command="second")
    assert resumed["total_steps"] == 15 and resumed["step"] == 15
    assert (out / "tiny.safetensors").exists()
    # the weights' lineage survives the pause: the first slice's init_from, both commands
    assert resumed["init_from"]["sha256"] == file_sha256(start)
    assert [s["command"] for s in resumed["slices"]] == ["first", "second"]
