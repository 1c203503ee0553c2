"""The sparse kernels on a CUDA GPU (skipped without one). The fused conv (bevdeploy.sparse.kernels): against
torch's gather + GEMM at realistic sizes, inside BEVFusion's sparse backbone on a built-in frame, and only where
no gradient is needed. The hashed rulebooks (bevdeploy.sparse.hashmap): bit for bit the sort-based ones at LiDAR
sizes. Their CPU twins, tests/sparse/test_sparse_kernel_interpret.py and test_sparse_hashmap_interpret.py, run the
same kernels in Triton's interpreter at small sizes."""

from __future__ import annotations

import copy

import pytest
import torch
from bevdeploy import sparse as ts
from bevdeploy.sparse import conv as sparse_conv

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SHAPE = [200, 200, 16]


def _grid(n: int, seed: int) -> ts.SparseConvTensor:
    """n distinct sites of one batch in SHAPE, clustered along y as LiDAR returns are (rows of neighbours)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randperm(SHAPE[0] * SHAPE[1] * SHAPE[2] // 4, generator=g)[: n // 4]
    base = torch.stack([cells // (SHAPE[1] // 4 * SHAPE[2]) * 4 % SHAPE[0], cells // SHAPE[2] % (SHAPE[1] // 4) * 4,
                        cells % SHAPE[2]], 1)  # fmt: skip
    sites = torch.unique(torch.cat([base + torch.tensor([0, d, 0]) for d in range(4)]), dim=0)[:n]
    idx = torch.cat([torch.zeros(len(sites), 1, dtype=torch.long), sites], 1).int().cuda()
    return ts.SparseConvTensor(torch.randn(len(sites), 1, generator=g).cuda(), idx, SHAPE, 1)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("c_in,c_out", [(5, 16), (16, 16), (16, 32), (32, 32), (64, 128), (128, 128), (24, 40)])
@pytest.mark.parametrize("subm", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_fused_matches_gather_gemm(c_in: int, c_out: int, subm: bool, dtype: torch.dtype) -> None:
    x = _grid(20000, seed=c_in + c_out)
    torch.manual_seed(c_in)
    conv = (ts.SubMConv3d(c_in, c_out, 3, indice_key="k") if subm else
            ts.SparseConv3d(c_in, c_out, 3, stride=2, padding=1)).cuda()  # fmt: skip
    rb = conv.rulebook(x)
    f = torch.randn(x.indices.shape[0], c_in, device="cuda").to(dtype)
    w, b = conv.weight.detach().to(dtype), conv.bias.detach().to(dtype)
    ref = sparse_conv.gather_gemm(f, w, rb) + b
    out = sparse_conv.fused_gather_gemm(f, w, rb, b)
    assert out.dtype == dtype and out.shape == ref.shape
    assert ref.abs().max() > 0
    tol = 1e-5 if dtype == torch.float32 else 3e-3
    assert _rel(out, ref) <= tol
    # no bias (fp16: the bias is added before the one rounding), and rows without any neighbour (sites far from
    # the rest) come out exactly zero
    lone = sparse_conv.fused_gather_gemm(f, w, rb)
    assert _rel(lone.float() + b.float(), out) <= tol
    empty = (rb.neighbors >= rb.num_inputs).all(1)
    assert torch.equal(lone[empty], torch.zeros_like(lone[empty]))


@pytest.fixture(scope="module")
def frame(small_dataroot):
    from bevdeploy.data import open_dataset
    from bevdeploy.plugins.bevfusion.config import get_config, with_sparse_impl
    from bevdeploy.plugins.bevfusion.model import BEVFusion
    from bevdeploy.plugins.bevfusion.prepare import prepare
    from bevdeploy.specs.run import DataSpec

    dataroot, version = small_dataroot
    ds = open_dataset(DataSpec(dataroot=dataroot, version=version, max_samples=1))
    torch.manual_seed(0)
    model = BEVFusion(with_sparse_impl(get_config("r50"), "torch")).eval().cuda()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    with torch.inference_mode():
        voxels, coords = model.voxelize(prepare(model, ds[0])["points"].cuda())
    return model.encoders["lidar"]["backbone"], voxels, coords


def _backbone(frame, fused: bool, **autocast) -> torch.Tensor:
    encoder, voxels, coords = frame
    old = sparse_conv.FUSED
    sparse_conv.FUSED = fused
    try:
        with torch.inference_mode(), torch.autocast("cuda", **autocast):
            return encoder(voxels, coords).float()
    finally:
        sparse_conv.FUSED = old


def test_backbone_runs_the_fused_kernel_with_the_same_output(frame) -> None:
    """BEVFusion r50's sparse backbone on a built-in frame: every conv through the fused kernel (seen by the
    profiler), the BEV map as with gather + GEMM."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fused = _backbone(frame, True, enabled=False)
        torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    convs = sum(isinstance(m, sparse_conv.SparseConvolution) for m in frame[0].modules())
    assert sum("_implicit_gemm_kernel" in n for n in names) == convs
    ref = _backbone(frame, False, enabled=False)
    assert ref.abs().max() > 0
    assert _rel(fused, ref) <= 1e-5
    half = _backbone(frame, True, dtype=torch.float16)
    assert _rel(half, ref) <= 1e-2


def test_training_keeps_the_autograd_path(frame) -> None:
    """Where a gradient is needed the conv runs through gather + GEMM (autograd), and the weights get gradients."""
    encoder, voxels, coords = frame
    conv = next(m for m in encoder.modules() if isinstance(m, sparse_conv.SparseConvolution))
    x = ts.SparseConvTensor(voxels, coords, encoder.sparse_shape, 1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        out = conv(x)
        out.features.square().sum().backward()
        torch.cuda.synchronize()
    assert not any("_implicit_gemm_kernel" in e.name for e in prof.events())
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    conv.weight.grad = None


def _rulebooks(indices: torch.Tensor, shape: list[int], hashed: bool) -> list:
    from bevdeploy.sparse import rulebook as R

    old = R.HASHED
    R.HASHED = hashed
    try:
        return [R.submanifold_rulebook(indices, shape, (3, 3, 3), (1, 1, 1)),
                R.submanifold_rulebook(indices, shape, (3, 3, 3), (2, 2, 1)),
                R.regular_rulebook(indices, shape, (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1)),
                R.regular_rulebook(indices, shape, (1, 1, 3), (1, 1, 2), (0, 0, 0), (1, 1, 1))]  # fmt: skip
    finally:
        R.HASHED = old


@pytest.mark.parametrize("source", ["grid", "frame"])
def test_hashed_rulebooks_equal_sort_based(source: str, frame) -> None:
    """The hash-table builders give the sort-based rulebooks bit for bit at LiDAR sizes: r50's 93k voxels and a
    20k-site grid."""
    if source == "frame":
        encoder, _, coords = frame
        indices, shape = coords.int(), encoder.sparse_shape
    else:
        indices, shape = _grid(20000, seed=3).indices, SHAPE
    for hashed, ref in zip(_rulebooks(indices, shape, True), _rulebooks(indices, shape, False), strict=True):
        assert hashed.neighbors.shape[0] > 0
        assert torch.equal(hashed.out_indices, ref.out_indices)
        assert torch.equal(hashed.neighbors, ref.neighbors)
        assert torch.equal(hashed.offsets, ref.offsets)


def test_backbone_output_is_the_same_with_hashed_rulebooks(frame) -> None:
    from bevdeploy.sparse import rulebook as R

    assert R.HASHED
    hashed = _backbone(frame, True, enabled=False)
    R.HASHED = False
    try:
        ref = _backbone(frame, True, enabled=False)
    finally:
        R.HASHED = True
    assert torch.equal(hashed, ref)


def test_the_spconv_engine_folds_bn_on_the_gpu(frame) -> None:
    """The engine's CUDA copy of the backbone has every BatchNorm folded into its conv (one launch fewer per conv),
    and gives the unfolded backbone's output at fp32 rounding; the module itself keeps its BNs."""
    from bevdeploy.graph import Artifact
    from bevdeploy.plugins.bevfusion.spconv_export import SpconvEngine

    encoder, voxels, coords = frame
    cpu = copy.deepcopy(encoder).cpu()  # the module at home on the CPU, as the pipeline holds it
    art = Artifact("lidar.backbone", "fp32", "torch", "spconv", ["voxels", "coords"], ["lidar_bev"], module=cpu)
    engine = SpconvEngine(art, "fp32")
    got = engine.infer({"voxels": voxels, "coords": coords})["lidar_bev"]
    convs = sum(isinstance(m, sparse_conv.SparseConvolution) for m in encoder.modules())
    assert engine.execution == f"BatchNorm folded into {convs} sparse convs on cuda"
    on_gpu = engine._module_on(voxels.device)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in on_gpu.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in cpu.modules()) == convs
    ref = _backbone(frame, True, enabled=False)
    assert _rel(got, ref) <= 1e-5


def test_the_spconv_engine_runs_fake_quant_without_host_syncs(frame) -> None:
    """At INT8 the engine's CUDA copy gets sync-free fake-quant quantizers: the fake-quant backbone's exact output."""
    from bevdeploy.graph import Artifact
    from bevdeploy.plugins.bevfusion.spconv_export import SpconvEngine
    from bevdeploy.quant import calibrate, fold_bn, insert_quantizers
    from bevdeploy.specs.run import QuantSpec

    encoder, voxels, coords = frame
    quantized = copy.deepcopy(encoder)
    fold_bn(quantized)
    insert_quantizers(quantized, QuantSpec(method="max"))
    with torch.no_grad():
        calibrate(quantized, lambda m: m(voxels, coords), QuantSpec(method="max"))
    quantized.eval()
    art = Artifact("lidar.backbone", "int8", "torch", "spconv", ["voxels", "coords"], ["lidar_bev"],
                   module=copy.deepcopy(quantized).cpu())
    engine = SpconvEngine(art, "int8")
    got = engine.infer({"voxels": voxels, "coords": coords})["lidar_bev"]
    n = sum(type(m).__name__ == "TensorQuantizer" for m in quantized.modules())
    assert engine.execution == f"{n} fake-quant quantizers without host syncs on cuda"
    with torch.inference_mode():
        want = quantized(voxels, coords)  # pytorch-quantization's own forward
    assert want.abs().max() > 0 and torch.equal(got, want.float())
