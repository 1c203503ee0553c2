"""The BEVFusion SparseEncoder on bevdeploy.sparse: same parameters as on spconv, same output,
trainable, exportable to the libspconv ONNX."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from bevdeploy.errors import BevDeployError
from bevdeploy.plugins.bevfusion.config import get_config, with_sparse_impl
from bevdeploy.plugins.bevfusion.lidar import SparseEncoder, Voxelization
from sparse_inputs import needs_spconv

CFG = get_config("tiny")


def _encoder(impl: str, seed: int = 0) -> SparseEncoder:
    torch.manual_seed(seed)
    return SparseEncoder(with_sparse_impl(CFG, impl).lidar).eval()


@pytest.fixture(scope="module")
def voxels() -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered points (surfaces of a few objects and ground) voxelized as the model does."""
    g = torch.Generator().manual_seed(0)
    centres = torch.rand(12, 3, generator=g) * torch.tensor([60.0, 60.0, 1.0]) - torch.tensor(
        [30.0, 30.0, 2.0]
    )
    pts = centres.repeat_interleave(150, 0) + torch.randn(1800, 3, generator=g) * torch.tensor(
        [1.0, 1.0, 0.4]
    )
    pts = torch.cat([pts, torch.rand(1800, 2, generator=g)], dim=1)
    return Voxelization(CFG.lidar)(pts)


@needs_spconv
def test_same_parameters_and_output_as_spconv(voxels) -> None:
    ref, ours = _encoder("spconv"), _encoder("torch", seed=1)
    assert (ref.sparse_impl, ours.sparse_impl) == ("spconv", "torch")
    want_sd, got_sd = ref.state_dict(), ours.state_dict()
    assert list(want_sd) == list(got_sd)
    assert all(want_sd[k].shape == got_sd[k].shape for k in want_sd)
    for m in ref.modules():  # non-trivial BN statistics, so the comparison covers them
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats, coords = voxels
    with torch.no_grad():
        want, got = ref(feats, coords), ours(feats, coords)
    assert got.shape == want.shape == (1, CFG.lidar.output_channels * 2, 64, 64)
    assert want.abs().max() > 0
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@needs_spconv
def test_same_initial_weights_under_one_seed() -> None:
    ref, ours = _encoder("spconv"), _encoder("torch")
    assert all(
        torch.equal(a, b) for a, b in zip(ref.state_dict().values(), ours.state_dict().values(), strict=True)
    )


def test_training_steps_reduce_the_loss(voxels) -> None:
    enc = _encoder("torch").train()
    feats, coords = voxels
    target = torch.randn(
        1, CFG.lidar.output_channels * 2, 64, 64, generator=torch.Generator().manual_seed(2)
    ).relu()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.mse_loss(enc(feats, coords), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert enc.conv_input[0].weight.grad is not None and enc.conv_input[0].weight.grad.abs().sum() > 0
    assert losses[-1] < losses[0]


def test_empty_point_cloud() -> None:
    enc = _encoder("torch")
    feats, coords = Voxelization(CFG.lidar)(torch.zeros((0, 5)))
    with torch.no_grad():
        out = enc(feats, coords)
    assert out.shape == (1, CFG.lidar.output_channels * 2, 64, 64) and not out.any()


@needs_spconv
def test_libspconv_export_is_the_same_for_both(voxels) -> None:
    from bevdeploy.plugins.bevfusion.spconv_export import build_scn_onnx

    ref, ours = _encoder("spconv"), _encoder("torch")
    ours.load_state_dict(ref.state_dict(), strict=True)
    feats, coords = voxels
    want, got = (build_scn_onnx(e, feats, coords, int8=False).graph for e in (ref, ours))
    assert [n.op_type for n in got.node] == [n.op_type for n in want.node]
    assert [list(n.attribute) for n in got.node] == [list(n.attribute) for n in want.node]
    assert [i.raw_data for i in got.initializer] == [i.raw_data for i in want.initializer]


def test_unknown_sparse_impl_is_a_user_error() -> None:
    bad = dataclasses.replace(CFG.lidar, sparse_impl="cuda-magic")
    with pytest.raises(BevDeployError, match="sparse implementation"):
        SparseEncoder(bad)


@needs_spconv
def test_bn_folding_and_quantizer_insertion_find_the_same_layers() -> None:
    """core.quant treats bevdeploy.sparse convs as spconv's: same folded pairs, same quantized
    modules."""
    from bevdeploy.quant import fold_bn, insert_quantizers
    from bevdeploy.specs.run import QuantSpec

    ref, ours = _encoder("spconv"), _encoder("torch")
    assert fold_bn(ours) == fold_bn(ref) and len(fold_bn(_encoder("torch"))) > 0
    assert insert_quantizers(ours, QuantSpec()) == insert_quantizers(ref, QuantSpec())


def test_encoder_pickles(voxels) -> None:
    """Whole-module pickling (deepcopy, torch.save of a module) works for both implementations."""
    import pickle

    for impl in ("torch", "auto"):
        enc = _encoder(impl)
        copy = pickle.loads(pickle.dumps(enc))
        assert type(copy.conv_input[0]) is type(enc.conv_input[0])
        with torch.no_grad():
            torch.testing.assert_close(copy(*voxels), enc(*voxels))


@needs_spconv
def test_spconv1_layout_checkpoint_loads_into_torch_encoder() -> None:
    """Official checkpoints store sparse weights as spconv 1.x [k0, k1, k2, in, out]; the
    encoder's conv classes permute them on load on either implementation."""
    ref, ours = _encoder("spconv"), _encoder("torch", seed=3)
    legacy = {k: (v.permute(1, 2, 3, 4, 0) if v.dim() == 5 else v) for k, v in ref.state_dict().items()}
    ours.load_state_dict(legacy, strict=True)
    assert all(
        torch.equal(a, b) for a, b in zip(ref.state_dict().values(), ours.state_dict().values(), strict=True)
    )
