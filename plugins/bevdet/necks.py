"""BEVDet's image neck, view transformer and BEV encoder, with HuangJunJie2017/BEVDet's module
names (``lateral_convs.i.conv``, ``fpn_convs.0.conv``, ``depth_net``, ``layers.i.j.{conv,bn}N``,
``downsample``, ``conv``/``up2`` Sequentials) so official checkpoints load with strict=True."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from bevdeploy.nn import frustum, frustum_points
from torch import nn

from .config import BEVDetConfig


class ConvModule(nn.Module):
    """mmcv ConvModule without norm/activation (CustomFPN's convs): the conv sits under ``conv``."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CustomFPN(nn.Module):
    """FPN returning one level (``out_ids=[0]``): 1x1 laterals, nearest top-down sum, one 3x3 conv."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList([ConvModule(out_channels, out_channels, 3, padding=1)])

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
        return self.fpn_convs[0](laterals[0])


class LSSViewTransformer(nn.Module):
    """Lift: a 1x1 ``depth_net`` gives D depth logits + C context channels per feature pixel.
    Splat (the geometry -> bev_pool_v2 ranks) is here too; pooling itself is the custom op.
    The frustum and grid facts are plain attributes, not checkpoint entries, as upstream."""

    def __init__(self, cfg: BEVDetConfig):
        super().__init__()
        self.grid_lower_bound = torch.tensor([b[0] for b in (cfg.xbound, cfg.ybound, cfg.zbound)])
        self.grid_interval = torch.tensor([b[2] for b in (cfg.xbound, cfg.ybound, cfg.zbound)])
        self.grid_size = tuple(cfg.grid_size)
        self.frustum = frustum(cfg.image_size, cfg.feature_size, cfg.dbound)
        self.D = self.frustum.shape[0]
        self.out_channels = cfg.numc_trans
        self.depth_net = nn.Conv2d(cfg.neck_channels, self.D + self.out_channels, kernel_size=1)

    def depth_and_context(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (N, Cin, fH, fW) -> depth probabilities (N, D, fH, fW), context (N, fH, fW, C)."""
        x = self.depth_net(feat)
        depth = x[:, : self.D].softmax(dim=1)
        context = x[:, self.D : self.D + self.out_channels].permute(0, 2, 3, 1).contiguous()
        return depth, context

    def geometry(self, camera2ego: torch.Tensor, intrinsics: torch.Tensor, img_aug: torch.Tensor) -> torch.Tensor:
        """Ego-frame position of every frustum point, (N, D, fH, fW, 3); matrices are (N, 4, 4)."""
        return frustum_points(self.frustum, camera2ego, intrinsics, img_aug)

    def bev_pool_ranks(
        self, camera2ego: torch.Tensor, intrinsics: torch.Tensor, img_aug: torch.Tensor, batch: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """bev_pool_v2's ranks_depth, ranks_feat, ranks_bev, interval_starts, interval_lengths
        (int32) for ``batch`` frames whose cameras are stacked in the (batch * N, 4, 4) matrices,
        on their device; voxel indices truncate toward zero like upstream's ``.long()``."""
        from bevdeploy.plugins.trt_ops.bev_pool_v2 import bev_pool_v2_prepare

        geom = self.geometry(camera2ego.float(), intrinsics.float(), img_aug.float())
        low, step = self.grid_lower_bound.to(geom.device), self.grid_interval.to(geom.device)
        coords = ((geom - low) / step).long()  # x, y, z
        return bev_pool_v2_prepare(coords.unflatten(0, (batch, -1)), self.pool_shape(batch))

    def pool_shape(self, batch: int = 1) -> list[int]:
        """bev_pool_v2's [B, Z, Y, X, C]."""
        x, y, z = self.grid_size
        return [batch, z, y, x, self.out_channels]

    @property
    def out_shape(self) -> list[int]:
        """bev_pool_v2's [B, Z, Y, X, C] of one frame."""
        return self.pool_shape(1)


class BasicBlock(nn.Module):
    """mmdet BasicBlock (``conv1``/``bn1``/``conv2``/``bn2``/``downsample``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class CustomResNet(nn.Module):
    """BEV encoder: stages of BasicBlocks, the first of each strided with a plain 3x3 conv
    (with bias) as its downsample; returns every stage's output."""

    def __init__(self, cin: int, num_layer: tuple[int, ...], num_channels: tuple[int, ...]):
        super().__init__()
        layers = []
        for blocks, cout in zip(num_layer, num_channels, strict=True):
            stage = [BasicBlock(cin, cout, stride=2, downsample=nn.Conv2d(cin, cout, 3, 2, 1))]
            stage += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*stage))
            cin = cout
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class FPN_LSS(nn.Module):  # noqa: N801 - upstream class name
    """Concatenate the first stage with the x4-upsampled last stage, two 3x3 convs, then x2
    upsample back to the BEV grid and project to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels * 2  # extra_upsample=2 doubles the inner width upstream
        self.up = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=True)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.up2 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(mid, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
        )  # fmt: skip

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([feats[0], self.up(feats[2])], dim=1)
        return self.up2(self.conv(x))
