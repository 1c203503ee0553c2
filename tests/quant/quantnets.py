"""Small networks for the quantization and export tests (built in code, seconds on a CPU)."""

from __future__ import annotations

import torch
from torch import nn


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics so that folding has something to get wrong."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


class Bottleneck(nn.Module):
    """ResNet bottleneck with conv/bn attribute pairs and a downsample Sequential."""

    def __init__(self, cin: int, mid: int, stride: int = 1):
        super().__init__()
        cout = mid * 4
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class TinyResNet(nn.Module):
    """Stem, two bottleneck stages, an upsampling ConvTranspose2d with BN, and a Linear-free head."""

    def __init__(self, width: int = 8, deblock: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width * 2, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width * 2)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(Bottleneck(width * 2, width), Bottleneck(width * 4, width))
        self.layer2 = nn.Sequential(Bottleneck(width * 4, width * 2, 2), Bottleneck(width * 8, width * 2))
        self.deblock = nn.Sequential(nn.ConvTranspose2d(width * 8, width * 4, 2, 2, bias=False),
                                     nn.BatchNorm2d(width * 4), nn.ReLU()) if deblock else nn.Identity()
        self.head = nn.Conv2d(width * 4 if deblock else width * 8, 4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(img))))
        x = self.layer2(self.layer1(x))
        return self.head(self.deblock(x))


def tiny_resnet(width: int = 8, seed: int = 0, deblock: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return _randomize_bn(TinyResNet(width, deblock), seed).eval()


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def calib_batches(n: int = 4, shape=(1, 3, 64, 96), seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"img": torch.randn(*shape, generator=g)} for _ in range(n)]
