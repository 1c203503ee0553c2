"""Camera branch: GeneralizedLSSFPN neck and DepthLSSTransform (depth-aware lift-splat), with the
frustum geometry that turns the camera matrices into bev_pool_v2 ranks.

Names follow mit-han-lab/bevfusion (``lateral_convs.i.conv``, ``dtransform``, ``depthnet``,
``downsample``, and the non-trainable ``frustum``/``dx``/``bx``/``nx`` parameters that the
official checkpoints contain)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bevdeploy.nn import frustum, frustum_points
from torch import nn

from .config import CameraConfig


class ConvModule(nn.Module):
    """mmcv ConvModule naming (``conv``, ``bn``): conv without bias, BN, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class GeneralizedLSSFPN(nn.Module):
    """Top-down FPN that concatenates (upsampled coarser level, finer level) then 1x1 + 3x3 convs."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.in_channels = list(in_channels)
        n = len(in_channels) - 1
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(n):
            extra = in_channels[i + 1] if i == n - 1 else out_channels
            self.lateral_convs.append(ConvModule(in_channels[i] + extra, out_channels, 1))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1))

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = list(inputs)
        for i in range(len(laterals) - 2, -1, -1):
            up = F.interpolate(laterals[i + 1], size=laterals[i].shape[2:], mode="bilinear", align_corners=False)
            laterals[i] = self.fpn_convs[i](self.lateral_convs[i](torch.cat([laterals[i], up], dim=1)))
        return laterals[:-1]


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=bias), nn.BatchNorm2d(cout), nn.ReLU(True)]


class DepthLSSTransform(nn.Module):
    """Lift image features with a categorical depth distribution (conditioned on the sparse LiDAR
    depth image), splat them into the BEV grid with bev_pool_v2, then downsample the BEV map."""

    def __init__(self, cfg: CameraConfig):
        super().__init__()
        self.image_size = cfg.image_size
        self.feature_size = cfg.feature_size
        bounds = (cfg.xbound, cfg.ybound, cfg.zbound)
        self.dx = nn.Parameter(torch.tensor([b[2] for b in bounds]), requires_grad=False)
        self.bx = nn.Parameter(torch.tensor([b[0] + b[2] / 2.0 for b in bounds]), requires_grad=False)
        self.nx = nn.Parameter(torch.tensor([int((b[1] - b[0]) / b[2]) for b in bounds]), requires_grad=False)
        self.frustum = nn.Parameter(frustum(cfg.image_size, cfg.feature_size, cfg.dbound), requires_grad=False)
        self.C = cfg.vt_channels
        self.D = self.frustum.shape[0]
        cin = cfg.neck_channels
        self.dtransform = nn.Sequential(
            *_conv_bn_relu(1, 8, 1), *_conv_bn_relu(8, 32, 5, 4, 2), *_conv_bn_relu(32, 64, 5, 2, 2)
        )
        self.depthnet = nn.Sequential(
            *_conv_bn_relu(cin + 64, cin, 3, padding=1),
            *_conv_bn_relu(cin, cin, 3, padding=1),
            nn.Conv2d(cin, self.D + self.C, 1),
        )
        c = self.C
        if cfg.vt_downsample == 2:
            self.downsample = nn.Sequential(
                *_conv_bn_relu(c, c, 3, padding=1, bias=False),
                *_conv_bn_relu(c, c, 3, stride=2, padding=1, bias=False),
                *_conv_bn_relu(c, c, 3, padding=1, bias=False),
            )
        elif cfg.vt_downsample == 1:
            self.downsample = nn.Identity()
        else:
            raise ValueError(f"vtransform downsample must be 1 or 2, got {cfg.vt_downsample}")

    def depth_and_features(self, feat: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (N, Cin, fH, fW), depth image (N, 1, H, W) -> depth weights (N, D, fH, fW) and
        context features (N, fH, fW, C), the two tensors bev_pool_v2 combines."""
        d = self.dtransform(depth)
        x = self.depthnet(torch.cat([d, feat], dim=1))
        weights = x[:, : self.D].softmax(dim=1)
        context = x[:, self.D : self.D + self.C].permute(0, 2, 3, 1).contiguous()
        return weights, context

    @property
    def bev_shape(self) -> tuple[int, int, int]:
        """(Z, X, Y) cells of the lifted grid."""
        nx = [int(v) for v in self.nx.tolist()]
        return (nx[2], nx[0], nx[1])

    def geometry(self, camera2lidar: torch.Tensor, intrinsics: torch.Tensor, img_aug: torch.Tensor) -> torch.Tensor:
        """LiDAR-frame position of every frustum point: (N, D, fH, fW, 3). Matrices are (N, 4, 4)."""
        return frustum_points(self.frustum, camera2lidar, intrinsics, img_aug)

    def bev_pool_ranks(
        self, camera2lidar: torch.Tensor, intrinsics: torch.Tensor, img_aug: torch.Tensor, batch: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """bev_pool_v2 inputs for ``batch`` frames whose cameras are stacked in the (batch * N, 4, 4)
        matrices: ranks_depth, ranks_feat, ranks_bev (int32, sorted by BEV cell, frame-major) and
        interval_starts/lengths, on the matrices' device. Voxel indices truncate toward zero like
        the official ``.long()`` cast, so points just below the grid edge fall into cell 0."""
        from bevdeploy.plugins.trt_ops.bev_pool_v2 import bev_pool_v2_prepare

        geom = self.geometry(camera2lidar.float(), intrinsics.float(), img_aug.float())
        bx, dx = self.bx.to(geom.device), self.dx.to(geom.device)  # the matrices may live elsewhere than the module
        coords = ((geom - (bx - dx / 2.0)) / dx).long()  # (B*N, D, fH, fW, 3) as x, y, z
        z, x, y = self.bev_shape
        # the op's grid is (Z, rows, cols) with cols fastest; ours is (Z, X, Y) -> pass (y, x, z)
        swapped = coords[..., [1, 0, 2]].unflatten(0, (batch, -1))
        return bev_pool_v2_prepare(swapped, [batch, z, x, y, self.C])


def bev_pool(
    depth_weights: torch.Tensor,
    context: torch.Tensor,
    ranks: tuple[torch.Tensor, ...],
    bev_shape: tuple[int, int, int],
    batch: int = 1,
) -> torch.Tensor:
    """Splat (B*N, D, fH, fW) x (B*N, fH, fW, C) into the BEV grid with the bevdeploy
    ``bev_pool_v2`` op (ranks from :meth:`DepthLSSTransform.bev_pool_ranks` for the same ``batch``)
    and fold Z into channels: -> (B, C*Z, X, Y) as mit-han-lab's ``bev_pool`` + unbind/cat."""
    op = _bev_pool_v2_op()
    z, x, y = bev_shape
    c = context.shape[-1]
    out = op(
        depth_weights.unflatten(0, (batch, -1)).contiguous(),
        context.unflatten(0, (batch, -1)).contiguous(),
        *(r.to(depth_weights.device) for r in ranks),  # no copy where the geometry ran on the same device
        [batch, z, x, y, c],
    )  # (B, C, Z, X, Y)
    return torch.cat(out.unbind(dim=2), dim=1)


def _bev_pool_v2_op():
    """The registered custom op; importing the trt_ops plugin registers it with torch.library."""
    import bevdeploy.plugins.trt_ops  # noqa: F401  (registers torch.ops.bevdeploy.*)

    try:
        return torch.ops.bevdeploy.bev_pool_v2
    except (AttributeError, RuntimeError) as exc:
        raise RuntimeError(
            "torch.ops.bevdeploy.bev_pool_v2 is not registered; bevdeploy.plugins.trt_ops must provide it"
        ) from exc
