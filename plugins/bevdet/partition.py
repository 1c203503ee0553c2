"""BEVDet -> DeployGraph: camera.geometry (op: bev_pool_v2 ranks, cached per camera rig) ->
image.encoder (ResNet + CustomFPN + depth_net) -> bevpool (op: bev_pool_v2) -> bev.head
(CustomResNet + FPN_LSS + CenterHead) -> decode (op).

The ranks are inputs of the pool, as in BEVDet's TensorRT deployment, where they are computed
once from the fixed camera rig and fed to the engine. :func:`single_engine` gives that
deployment's other form, one exportable piece with the bev_pool_v2 node inside.

Wrappers hold references to the model's submodules, so quantizers inserted into the model are
the ones exported."""

from __future__ import annotations

import torch
from bevdeploy.graph import DeployGraph, OpNode, Subgraph
from torch import nn

from .head import HEAD_OUTPUTS
from .model import BEVDet

MODEL_NAME = "bevdet"
MODEL_INPUTS = ["img", "camera2ego", "camera_intrinsics", "img_aug_matrix", "lidar2ego"]
RANK_NAMES = ["ranks_depth", "ranks_feat", "ranks_bev", "interval_starts", "interval_lengths"]


class ImageEncoder(nn.Module):
    """img (1, N, 3, H, W) -> depth (1, N, D, fH, fW), context (1, N, fH, fW, C)."""

    def __init__(self, model: BEVDet):
        super().__init__()
        self.img_backbone, self.img_neck = model.img_backbone, model.img_neck
        self.img_view_transformer = model.img_view_transformer

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.img_neck(self.img_backbone(img[0]))  # batch 1: indexing keeps ONNX shapes static
        depth, context = self.img_view_transformer.depth_and_context(feat)
        return depth.unsqueeze(0), context.unsqueeze(0)


class BEVHead(nn.Module):
    """BEV map (1, C, Y, X) -> heatmap (1, 10, Y', X'), bbox_reg (1, 10 * head tasks, Y', X'): 60 for tiny, 10 for r50."""

    def __init__(self, model: BEVDet):
        super().__init__()
        self.img_bev_encoder_backbone = model.img_bev_encoder_backbone
        self.img_bev_encoder_neck = model.img_bev_encoder_neck
        self.pts_bbox_head = model.pts_bbox_head

    def forward(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pts_bbox_head(self.img_bev_encoder_neck(self.img_bev_encoder_backbone(bev)))


class SingleEngine(nn.Module):
    """img + ranks -> head maps, bev_pool_v2 inside (BEVDet's one-engine TensorRT form)."""

    def __init__(self, model: BEVDet):
        super().__init__()
        self.encoder, self.head, self.model = ImageEncoder(model), BEVHead(model), [model]

    def forward(self, img: torch.Tensor, *ranks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        depth, context = self.encoder(img)
        return self.head(self.model[0].bev_pool(depth, context, *ranks))


def partition(model: BEVDet, variant: str) -> DeployGraph:
    """The DeployGraph of ``model``; values flow by name from ``prepare``'s dict to detections."""
    nodes = [
        OpNode("camera.geometry", model.bev_ranks, ["camera2ego", "camera_intrinsics", "img_aug_matrix"], RANK_NAMES),
        Subgraph("image.encoder", ImageEncoder(model), ["img"], ["depth", "context"]),
        OpNode("bevpool", model.bev_pool, ["depth", "context", *RANK_NAMES], ["bev"], op="bev_pool_v2"),
        Subgraph("bev.head", BEVHead(model), ["bev"], list(HEAD_OUTPUTS)),
        OpNode("decode", model.decode, [*HEAD_OUTPUTS, "lidar2ego"], ["detections"]),
    ]
    return DeployGraph(model=MODEL_NAME, variant=variant, nodes=nodes, inputs=list(MODEL_INPUTS))


def single_engine(model: BEVDet) -> Subgraph:
    """The whole network up to the decode as one piece taking the ranks as inputs."""
    return Subgraph("bevdet", SingleEngine(model), ["img", *RANK_NAMES], list(HEAD_OUTPUTS))
