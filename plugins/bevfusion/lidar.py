"""LiDAR branch: hard voxelization (mean of up to N points per voxel) and the SparseEncoder with
mit-han-lab's names (``conv_input.0``, ``encoder_layers.encoder_layerI.J.conv1``, ``conv_out.0``).

The encoder's sparse layers come from ``LidarConfig.sparse_impl``: ``"spconv"`` (spconv 2.x, the
deployed runtime), ``"torch"`` (:mod:`bevdeploy.sparse`, pure PyTorch: trains on any CUDA and on
CPU) or ``"auto"`` (spconv when it imports, else torch). Parameter names and shapes are identical,
so a state dict moves between the two unchanged.

Official checkpoints store sparse-conv weights in the spconv 1.x layout ``[kX, kY, kZ, in, out]``;
spconv 2.x uses ``[out, kX, kY, kZ, in]``. :class:`SparseConvWeightLayout` converts on load, so
``load_state_dict(official, strict=True)`` works, and our own state dicts (already 2.x) load
unchanged. Coordinates are (batch, x, y, z), the "xyz" layout CUDA-BEVFusion's libspconv uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from types import ModuleType, SimpleNamespace

import torch
from bevdeploy.sparse import resolve_impl, sparse_impl
from torch import nn

from .config import LidarConfig


def _bn1d(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=1e-3, momentum=0.01)


@contextmanager
def _cpu_single_thread(t: torch.Tensor, impl: str) -> Iterator[None]:
    """spconv 2.3.8's CPU strided SparseConv3d races when torch runs more than one intra-op
    thread (measured: up to 40% of the output's range differs between identical calls), so the
    sparse encoder runs single-threaded on CPU when it runs on spconv (the torch one needs not)."""
    if impl != "spconv" or t.device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class SparseConvWeightLayout:
    """Mixin for spconv conv modules: accept the spconv 1.x weight layout on load."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        key = prefix + "weight"
        w = state_dict.get(key)
        mine = self.weight
        if w is not None and w.dim() == 5 and tuple(w.shape) != tuple(mine.shape):
            legacy = w.permute(4, 0, 1, 2, 3)
            if tuple(legacy.shape) == tuple(mine.shape):
                state_dict[key] = legacy.contiguous()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)


def conv_bn_relu(
    ops: SimpleNamespace,
    cin: int,
    cout: int,
    kernel,
    stride=1,
    padding=0,
    subm: bool = True,
    key: str | None = None,
):
    """mmdet3d ``make_sparse_convmodule`` naming: SparseSequential(0=conv, 1=bn, 2=relu)."""
    conv_cls = ops.SubMConv3d if subm else ops.SparseConv3d
    return ops.SparseSequential(
        conv_cls(cin, cout, kernel, stride=stride, padding=padding, bias=False, indice_key=key),
        _bn1d(cout),
        nn.ReLU(inplace=True),
    )


class SparseBasicBlock(nn.Module):
    """Residual block of two submanifold 3x3x3 convs (mmdet3d SparseBasicBlock names). Built
    through :func:`sparse_layers`, which mixes in the implementation's ``SparseModule`` so that
    its ``SparseSequential`` hands the block the sparse tensor."""

    def __init__(self, channels: int, key: str | None, ops: SimpleNamespace):
        super().__init__()
        self.conv1 = ops.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.bn1 = _bn1d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = ops.SubMConv3d(channels, channels, 3, padding=1, bias=False, indice_key=key)
        self.bn2 = _bn1d(channels)

    def forward(self, x):
        identity = x.features
        out = self.conv1(x)
        out = out.replace_feature(self.relu(self.bn1(out.features)))
        out = self.conv2(out)
        out = out.replace_feature(self.bn2(out.features))
        out = out.replace_feature(self.residual_add(out.features, identity))
        return out.replace_feature(self.relu(out.features))

    def residual_add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The residual add. Quantization attaches one ``add_quantizer`` (a TensorQuantizer)
        used for both inputs, as CUDA-BEVFusion's QuantAdd; the libspconv exporter reads its amax."""
        q = getattr(self, "add_quantizer", None)
        if q is not None:
            a, b = q(a), q(b)
        return a + b


def sparse_layers(impl: str) -> SimpleNamespace:
    """The encoder's layer classes on one sparse implementation (``"torch"``, ``"spconv"`` or
    ``"auto"``): ``SubMConv3d``/``SparseConv3d`` accepting spconv 1.x weights,
    ``SparseBasicBlock(channels, key)``, the implementation's ``SparseSequential`` and
    ``SparseConvTensor``, its module namespace ``ops`` and resolved name ``impl``."""
    return _layers(resolve_impl(impl))


@cache
def _layers(name: str) -> SimpleNamespace:
    """One set of classes per resolved implementation, so isinstance checks stay meaningful."""
    ops: ModuleType = sparse_impl(name)

    def make(cls_name: str, *bases: type) -> type:
        # registered as a module attribute ``<name>__<impl>`` so that pickle finds the class
        qualname = f"{cls_name}__{name}"
        cls = type(cls_name, bases, {"__module__": __name__, "__qualname__": qualname})
        globals()[qualname] = cls
        return cls

    layers = SimpleNamespace(
        impl=name,
        ops=ops,
        SubMConv3d=make("SubMConv3d", SparseConvWeightLayout, ops.SubMConv3d),
        SparseConv3d=make("SparseConv3d", SparseConvWeightLayout, ops.SparseConv3d),
        SparseSequential=ops.SparseSequential,
        SparseConvTensor=ops.SparseConvTensor,
    )
    block = make("SparseBasicBlock", SparseBasicBlock, ops.SparseModule)
    layers.SparseBasicBlock = lambda channels, key=None: block(channels, key, layers)
    return layers


def __getattr__(attr: str) -> type:
    """``SubMConv3d__torch`` and friends exist once their implementation's layers are built;
    build them on first lookup (unpickling in a fresh process)."""
    cls_name, sep, impl = attr.rpartition("__")
    if sep and cls_name in ("SubMConv3d", "SparseConv3d", "SparseBasicBlock") and impl in ("torch", "spconv"):
        _layers(impl)
        return globals()[attr]
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


class SparseEncoder(nn.Module):
    """Voxel features (M, C) + coords (M, 4: b, x, y, z) -> dense BEV (1, C_out * Z_out, X, Y).

    ``cfg.sparse_impl`` picks the sparse implementation (see the module docstring); the resolved
    name is kept in ``self.sparse_impl``."""

    def __init__(self, cfg: LidarConfig):
        super().__init__()
        ops = sparse_layers(cfg.sparse_impl)
        self.sparse_impl = ops.impl
        self.sparse_shape = list(cfg.sparse_shape)
        self.conv_input = conv_bn_relu(ops, cfg.in_channels, cfg.base_channels, 3, padding=1, key="subm1")
        self.encoder_layers = ops.SparseSequential()
        cin = cfg.base_channels
        last = len(cfg.encoder_channels) - 1
        for i, blocks in enumerate(cfg.encoder_channels):
            layers = []
            for j, cout in enumerate(blocks):
                padding = cfg.encoder_paddings[i][j]
                if j == len(blocks) - 1 and i != last:
                    layers.append(
                        conv_bn_relu(
                            ops, cin, cout, 3, stride=2, padding=padding, subm=False, key=f"spconv{i + 2}"
                        )
                    )
                else:
                    layers.append(ops.SparseBasicBlock(cout, key=f"subm{i + 1}"))
                cin = cout
            self.encoder_layers.add_module(f"encoder_layer{i + 1}", ops.SparseSequential(*layers))
        self.conv_out = conv_bn_relu(
            ops,
            cin,
            cfg.output_channels,
            (1, 1, 3),
            stride=(1, 1, 2),
            padding=0,
            subm=False,
            key="spconv_down2",
        )

    def forward(self, voxel_features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        ops = _layers(self.sparse_impl)
        with _cpu_single_thread(voxel_features, self.sparse_impl):
            x = ops.SparseConvTensor(voxel_features, coords.int(), self.sparse_shape, 1)
            x = self.conv_input(x)
            x = self.encoder_layers(x)
            out = self.conv_out(x)
            dense = out.dense()  # (N, C, X, Y, Z)
        n, c, h, w, d = dense.shape
        return dense.permute(0, 1, 4, 2, 3).reshape(n, c * d, h, w)


class Voxelization(nn.Module):
    """Hard voxelization: points are assigned to voxels in order of first appearance, at most
    ``max_points`` points per voxel and ``max_voxels`` voxels are kept (later ones dropped), and
    a voxel's feature is the mean of its kept points (``voxelize_reduce`` in mit-han-lab)."""

    def __init__(self, cfg: LidarConfig):
        super().__init__()
        self.voxel_size = tuple(cfg.voxel_size)
        self.point_cloud_range = tuple(cfg.point_cloud_range)
        self.max_points = cfg.max_points_per_voxel
        self.max_voxels = cfg.max_voxels

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pts = points.reshape(-1, points.shape[-1]).float()
        r = torch.tensor(self.point_cloud_range, dtype=torch.float32, device=pts.device)
        vs = torch.tensor(self.voxel_size, dtype=torch.float32, device=pts.device)
        grid = torch.round((r[3:] - r[:3]) / vs).long()
        cell = torch.floor((pts[:, :3] - r[:3]) / vs).long()
        inside = ((cell >= 0) & (cell < grid)).all(dim=1)
        pts, cell = pts[inside], cell[inside]
        if pts.shape[0] == 0:
            return pts.new_zeros((0, pts.shape[1])), torch.zeros((0, 4), dtype=torch.int32, device=pts.device)
        lin = (cell[:, 0] * grid[1] + cell[:, 1]) * grid[2] + cell[:, 2]
        uniq, inverse = torch.unique(lin, return_inverse=True)
        n = pts.shape[0]
        first = torch.full((uniq.numel(),), n, dtype=torch.long, device=pts.device).scatter_reduce(
            0, inverse, torch.arange(n, device=pts.device), reduce="amin"
        )
        by_first = torch.argsort(first)  # voxel ids in order of first appearance
        rank = torch.empty_like(by_first)
        rank[by_first] = torch.arange(by_first.numel(), device=pts.device)
        vox = rank[inverse]
        order = torch.argsort(vox, stable=True)  # points grouped by voxel, original order inside
        counts = torch.bincount(vox, minlength=by_first.numel())
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(vox)
        slot[order] = torch.arange(n, device=pts.device) - starts[vox[order]]
        keep = (slot < self.max_points) & (vox < self.max_voxels)
        nvox = min(by_first.numel(), self.max_voxels)
        sums = torch.zeros((nvox, pts.shape[1]), dtype=pts.dtype, device=pts.device).index_add_(0, vox[keep], pts[keep])
        num = torch.bincount(vox[keep], minlength=nvox).clamp(min=1).to(pts.dtype)
        feats = sums / num.unsqueeze(1)
        vcell = cell[first[by_first[:nvox]]]
        coords = torch.cat([torch.zeros((nvox, 1), dtype=torch.long, device=pts.device), vcell], dim=1).to(torch.int32)
        return feats, coords
