"""BEVFusion -> DeployGraph with CUDA-BEVFusion's pieces.

Each exported piece is a small wrapper module that takes its tensors positionally (the order of
``Subgraph.inputs``) and calls the same stage methods as :meth:`BEVFusion.forward`; the wrappers
hold references to the model's submodules, so quantizers inserted into the model are exported."""

from __future__ import annotations

import torch
from bevdeploy.graph import DeployGraph, OpNode, Subgraph
from torch import nn

from .head import HEAD_OUTPUTS
from .model import BEVFusion

MODEL_INPUTS = ["img", "depth", "points", "camera2lidar", "camera_intrinsics", "img_aug_matrix", "lidar2image"]
RANK_NAMES = ["ranks_depth", "ranks_feat", "ranks_bev", "interval_starts", "interval_lengths"]
FP16_UNDER_INT8 = {"int8": "fp16", "int8-fp32": "fp32"}


class CameraBackbone(nn.Module):
    """img, depth -> camera_depth_weights (N, D, fH, fW), camera_feature (N, fH, fW, C)."""

    def __init__(self, model: BEVFusion):
        super().__init__()
        self.backbone = model.encoders["camera"]["backbone"]
        self.neck = model.encoders["camera"]["neck"]
        self.vtransform = model.encoders["camera"]["vtransform"]

    def forward(self, img: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.neck(self.backbone(img.flatten(0, 1)))[0]
        return self.vtransform.depth_and_features(feats, depth.flatten(0, 1))


class CameraVTransform(nn.Module):
    """The BEV downsample convs after bev pooling (kept FP16 under INT8 as in CUDA-BEVFusion)."""

    def __init__(self, model: BEVFusion):
        super().__init__()
        self.downsample = model.encoders["camera"]["vtransform"].downsample

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.downsample(feat)


class LidarBackbone(nn.Module):
    """Sparse encoder: voxels (M, 5), coords (M, 4) int32 -> (1, C, X, Y). Runs on spconv."""

    def __init__(self, model: BEVFusion):
        super().__init__()
        self.encoder = model.encoders["lidar"]["backbone"]

    def forward(self, voxels: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return self.encoder(voxels, coords)


class Fuser(nn.Module):
    """ConvFuser + SECOND + SECONDFPN: camera BEV, LiDAR BEV -> middle."""

    def __init__(self, model: BEVFusion):
        super().__init__()
        self.fuser = model.fuser
        self.backbone = model.decoder["backbone"]
        self.neck = model.decoder["neck"]

    def forward(self, camera: torch.Tensor, lidar: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(self.fuser(camera, lidar)))


class HeadBBox(nn.Module):
    def __init__(self, model: BEVFusion):
        super().__init__()
        self.head = model.heads["object"]

    def forward(self, middle: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.head(middle)


def partition(model: BEVFusion, variant: str) -> DeployGraph:
    """The DeployGraph of ``model``; values flow by name from ``prepare``'s dict to detections."""
    nodes = [
        OpNode("camera.geometry", model.bev_ranks, ["camera2lidar", "camera_intrinsics", "img_aug_matrix"], RANK_NAMES),
        Subgraph("camera.backbone", CameraBackbone(model), ["img", "depth"], ["camera_depth_weights", "camera_feature"]),
        OpNode(
            "bevpool", model.camera_bev, ["camera_depth_weights", "camera_feature", *RANK_NAMES], ["camera_bev_raw"],
            op="bev_pool_v2",
        ),  # fmt: skip
        Subgraph(
            "camera.vtransform", CameraVTransform(model), ["camera_bev_raw"], ["camera_bev"], policy=dict(FP16_UNDER_INT8)
        ),
        OpNode("lidar.voxelize", model.voxelize, ["points"], ["voxels", "voxel_coords"]),
        Subgraph(
            "lidar.backbone", LidarBackbone(model), ["voxels", "voxel_coords"], ["lidar_bev"], exporter="spconv",
            dynamic_axes={"voxels": {0: "num_voxels"}, "voxel_coords": {0: "num_voxels"}},
        ),  # fmt: skip
        Subgraph("fuser", Fuser(model), ["camera_bev", "lidar_bev"], ["middle"]),
        Subgraph("head.bbox", HeadBBox(model), ["middle"], list(HEAD_OUTPUTS), policy=dict(FP16_UNDER_INT8),
                 fidelity_outputs=["dense_heatmap"]),
        OpNode("decode", _decoder(model), list(HEAD_OUTPUTS), ["detections"]),
    ]
    return DeployGraph(model="bevfusion", variant=variant, nodes=nodes, inputs=list(MODEL_INPUTS))


def _decoder(model: BEVFusion):
    def decode(*outputs: torch.Tensor):
        return model.decode(tuple(outputs))

    return decode


def run_graph(graph: DeployGraph, inputs: dict[str, torch.Tensor]):
    """Execute the graph eagerly in torch (the subgraph modules themselves); the reference the
    exported pieces are compared with. Returns all named values."""
    values: dict[str, object] = dict(inputs)
    with torch.no_grad():
        for node in graph.nodes:
            fn = node.module if isinstance(node, Subgraph) else node.fn
            out = fn(*(values[name] for name in node.inputs))
            if len(node.outputs) == 1:
                out = (out,)
            values.update(zip(node.outputs, out, strict=True))
    return values
