"""A tiny BEV detector registered as a third-party bevdeploy plugin (the test suite's toy model).

LiDAR points -> 2-channel BEV grid (prepare) -> backbone (subgraph) -> max-pool (op) -> head
(subgraph, two outputs) -> decode (op) -> Detections. Small enough to run every stage in seconds.
This file is copied into a throwaway package with a real entry point by the tests.
"""

from __future__ import annotations

from typing import Any

import bevdeploy
import numpy as np
import torch
from bevdeploy.data.types import DETECTION_CLASSES, Detections
from bevdeploy.graph import DeployGraph, OpNode, Subgraph
from bevdeploy.specs.registry import ModelSpec
from torch import nn

NAME = "toydet"
GRID, RANGE = 32, 51.2
CELL = 2 * RANGE / GRID
NUM_CLASSES = len(DETECTION_CLASSES)


class Backbone(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(2, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.bn1(self.conv1(bev)))))


class Head(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.shared = nn.Conv2d(width, width, 3, padding=1)
        self.heatmap = nn.Conv2d(width, NUM_CLASSES, 1)
        self.boxes = nn.Conv2d(width, 7, 1)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.shared(feat))
        return self.heatmap(x).sigmoid(), self.boxes(x)


def pool(feat: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(feat, 3, stride=1, padding=1)


def decode(heatmap: torch.Tensor, boxes: torch.Tensor, top_k: int = 20) -> Detections:
    """Top-k cells of the heatmap; box offsets and log-sizes from the regression map."""
    heatmap, boxes = heatmap[0].float().cpu(), boxes[0].float().cpu()  # a GPU backend hands CUDA tensors
    scores, flat = heatmap.reshape(-1).topk(top_k)
    label = (flat // (GRID * GRID)).numpy().astype(np.int64)
    cell = (flat % (GRID * GRID)).numpy()
    row, col = cell // GRID, cell % GRID
    reg = boxes.reshape(7, -1)[:, torch.as_tensor(cell)].T.numpy()
    x = -RANGE + (col + 0.5 + np.tanh(reg[:, 0])) * CELL
    y = -RANGE + (row + 0.5 + np.tanh(reg[:, 1])) * CELL
    size = np.exp(np.clip(reg[:, 3:6], -2, 2)) * np.array([4.0, 2.0, 1.6])
    out = np.stack([x, y, reg[:, 2], size[:, 0], size[:, 1], size[:, 2], reg[:, 6]], 1).astype(np.float32)
    return Detections(out, scores.numpy().astype(np.float32), label, np.zeros((len(label), 2), np.float32))


class ToyDetector(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.backbone = Backbone(width)
        self.head = Head(width)

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(pool(self.backbone(bev)))


VARIANTS = {"tiny": 8, "wide": 16}


def build(variant: str) -> nn.Module:
    torch.manual_seed(0)
    return ToyDetector(VARIANTS[variant]).eval()


def prepare(model: nn.Module, sample: Any) -> dict[str, torch.Tensor]:
    """Points -> (1, 2, GRID, GRID): log point count and mean intensity per cell."""
    pts = np.asarray(sample.points, dtype=np.float32)
    ij = np.floor((pts[:, :2] + RANGE) / CELL).astype(np.int64)
    keep = (ij >= 0).all(1) & (ij < GRID).all(1)
    ij, inten = ij[keep], pts[keep, 3]
    count = np.zeros((GRID, GRID), np.float32)
    total = np.zeros((GRID, GRID), np.float32)
    np.add.at(count, (ij[:, 1], ij[:, 0]), 1.0)
    np.add.at(total, (ij[:, 1], ij[:, 0]), inten)
    bev = np.stack([np.log1p(count), total / np.maximum(count, 1.0)])
    return {"bev": torch.from_numpy(bev)[None]}


@bevdeploy.hookimpl
def bevdeploy_register_models() -> list[ModelSpec]:
    return [ModelSpec(name=NAME, description="toy BEV detector (tests)", variants={v: f"width {w}" for v, w in
                      VARIANTS.items()}, demo_variant="tiny", build=build, prepare=prepare, modalities=("lidar",))]


@bevdeploy.hookimpl
def bevdeploy_partition(model: nn.Module, spec: Any) -> DeployGraph | None:
    if spec.model != NAME:
        return None
    nodes = [
        # a fresh wrapper (in training mode, as new modules are) like real partitions build
        Subgraph("backbone", nn.Sequential(model.backbone), ["bev"], ["feat"]),
        OpNode("pool", pool, ["feat"], ["pooled"]),
        Subgraph("head", model.head, ["pooled"], ["heatmap", "boxes"], policy={"int8": "fp16"}),
        OpNode("decode", decode, ["heatmap", "boxes"], ["detections"]),
    ]
    return DeployGraph(NAME, spec.variant or "tiny", nodes, inputs=["bev"])


@bevdeploy.hookimpl
def bevdeploy_quantize(model: nn.Module, spec: Any, calib_data: Any, qconfig: Any) -> nn.Module | None:
    """The toy's rule: the head stays in higher precision (its policy runs it in fp16 for int8)."""
    if spec.model != NAME:
        return None
    from bevdeploy.quant import generic_quantize

    return generic_quantize(model, calib_data, qconfig, skip=["head", "head.*"])
