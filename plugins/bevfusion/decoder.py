"""ConvFuser and the SECOND BEV backbone + SECONDFPN neck (mit-han-lab/mmdet3d names)."""

from __future__ import annotations

import torch
from torch import nn

from .config import DecoderConfig


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class ConvFuser(nn.Sequential):
    """Concatenate [camera BEV, LiDAR BEV] and mix with a 3x3 conv (keys ``fuser.0``, ``fuser.1``)."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__(
            nn.Conv2d(sum(in_channels), out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(True),
        )

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([camera, lidar], dim=1))


class SECOND(nn.Module):
    """Stages of (strided conv + ``layer_num`` convs), each conv followed by BN and ReLU."""

    def __init__(self, in_channels: int, cfg: DecoderConfig):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = in_channels
        for cout, layers, stride in zip(cfg.second_out, cfg.second_layers, cfg.second_strides, strict=True):
            mods: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), _bn(cout), nn.ReLU(True)]
            for _ in range(layers):
                mods += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), _bn(cout), nn.ReLU(True)]
            self.blocks.append(nn.Sequential(*mods))
            cin = cout

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


class SECONDFPN(nn.Module):
    """Bring every stage to the first stage's resolution and concatenate. Stride 1 uses a 1x1
    conv (``use_conv_for_no_stride``), stride s > 1 a ConvTranspose2d(k=s, stride=s)."""

    def __init__(self, in_channels: tuple[int, ...], cfg: DecoderConfig):
        super().__init__()
        self.deblocks = nn.ModuleList()
        for cin, cout, stride in zip(in_channels, cfg.fpn_out, cfg.fpn_strides, strict=True):
            if stride > 1:
                up: nn.Module = nn.ConvTranspose2d(cin, cout, stride, stride=stride, bias=False)
            else:
                up = nn.Conv2d(cin, cout, 1, stride=1, bias=False)
            self.deblocks.append(nn.Sequential(up, _bn(cout), nn.ReLU(True)))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([deblock(f) for deblock, f in zip(self.deblocks, feats, strict=True)], dim=1)
