"""The BEVFusion module tree (``encoders.camera.{backbone,neck,vtransform}``,
``encoders.lidar.{voxelize,backbone}``, ``fuser``, ``decoder.{backbone,neck}``, ``heads.object``)
and the stage functions that both the eager forward and the DeployGraph pieces call, so the two
paths cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from bevdeploy.checkpoint import unwrap_state_dict
from bevdeploy.data.types import Detections
from bevdeploy.nn import ResNet
from torch import nn

from .camera import DepthLSSTransform, GeneralizedLSSFPN, bev_pool
from .config import BEVFusionConfig, get_config
from .decoder import SECOND, SECONDFPN, ConvFuser
from .head import HEAD_OUTPUTS, TransFusionHead, decode
from .lidar import SparseEncoder, Voxelization


class BEVFusion(nn.Module):
    """Camera + LiDAR BEVFusion. ``forward(**inputs)`` takes the dict that ``prepare`` returns
    and returns the head outputs (named by ``HEAD_OUTPUTS``); :meth:`predict` adds the decode."""

    def __init__(self, cfg: BEVFusionConfig):
        super().__init__()
        self.cfg = cfg
        cam = cfg.camera
        backbone = ResNet(cam.stem_channels, cam.stage_blocks, cam.stage_planes, cam.out_indices)
        neck_in = [backbone.out_channels[i] for i in cam.out_indices]
        lidar_bev_channels = cfg.lidar.output_channels * 2  # conv_out leaves 2 z-cells
        self.encoders = nn.ModuleDict(
            {
                "camera": nn.ModuleDict(
                    {
                        "backbone": backbone,
                        "neck": GeneralizedLSSFPN(neck_in, cam.neck_channels),
                        "vtransform": DepthLSSTransform(cam),
                    }
                ),
                "lidar": nn.ModuleDict({"voxelize": Voxelization(cfg.lidar), "backbone": SparseEncoder(cfg.lidar)}),
            }
        )
        dec = cfg.decoder
        self.fuser = ConvFuser([cam.vt_channels, lidar_bev_channels], dec.fuser_channels)
        self.decoder = nn.ModuleDict(
            {"backbone": SECOND(dec.fuser_channels, dec), "neck": SECONDFPN(dec.second_out, dec)}
        )
        self.heads = nn.ModuleDict({"object": TransFusionHead(sum(dec.fpn_out), cfg.head, cfg.bev_size)})

    # ---- stages (shared by forward and the partition) ----------------------------------------

    def camera_features(self, img: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """img (1, N, 3, H, W), depth (1, N, 1, H, W) -> depth weights (N, D, fH, fW) and
        context (N, fH, fW, C)."""
        cam = self.encoders["camera"]
        b, n = img.shape[:2]
        feats = cam["neck"](cam["backbone"](img.flatten(0, 1)))[0]
        return cam["vtransform"].depth_and_features(feats, depth.flatten(0, 1))

    def bev_ranks(self, camera2lidar, camera_intrinsics, img_aug_matrix) -> tuple[torch.Tensor, ...]:
        vt = self.encoders["camera"]["vtransform"]
        return vt.bev_pool_ranks(camera2lidar[0], camera_intrinsics[0], img_aug_matrix[0])

    def camera_bev(self, depth_weights, context, *ranks) -> torch.Tensor:
        return bev_pool(depth_weights, context, ranks, self.encoders["camera"]["vtransform"].bev_shape)

    def voxelize(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoders["lidar"]["voxelize"](points)

    def fuse(self, camera_bev: torch.Tensor, lidar_bev: torch.Tensor) -> torch.Tensor:
        x = self.fuser(camera_bev, lidar_bev)
        return self.decoder["neck"](self.decoder["backbone"](x))

    def decode(self, outputs: tuple[torch.Tensor, ...] | Mapping[str, torch.Tensor]) -> Detections:
        if isinstance(outputs, Mapping):
            outputs = tuple(outputs[k] for k in HEAD_OUTPUTS)
        lidar = self.cfg.lidar
        return decode(outputs, self.cfg.head, lidar.voxel_size[:2], lidar.point_cloud_range[:2])

    # ---- eager model ---------------------------------------------------------------------------

    def forward(
        self,
        img: torch.Tensor,
        depth: torch.Tensor,
        points: torch.Tensor,
        camera2lidar: torch.Tensor,
        camera_intrinsics: torch.Tensor,
        img_aug_matrix: torch.Tensor,
        **unused: Any,
    ) -> dict[str, torch.Tensor]:
        weights, context = self.camera_features(img, depth)
        ranks = self.bev_ranks(camera2lidar, camera_intrinsics, img_aug_matrix)
        cam_bev = self.encoders["camera"]["vtransform"].downsample(self.camera_bev(weights, context, *ranks))
        voxels, coords = self.voxelize(points)
        lidar_bev = self.encoders["lidar"]["backbone"](voxels, coords)
        outs = self.heads["object"](self.fuse(cam_bev, lidar_bev))
        return dict(zip(HEAD_OUTPUTS, outs, strict=True))

    def init_training(self) -> None:
        """Called by ``bevdeploy train`` before training from scratch (not on resume)."""
        from .loss import init_training

        init_training(self)

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, torch.Tensor]) -> Detections:
        return self.decode(self(**inputs))

    # ---- checkpoints -----------------------------------------------------------------------------

    def convert_checkpoint(self, state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """An official mit-han-lab checkpoint -> this model's state dict layout, so that a strict
        key *and shape* check passes before ``load_state_dict(strict=True)``.

        Opens training-checkpoint wrappers (:func:`bevdeploy.checkpoint.unwrap_state_dict`; the
        loader has already done so for a file) and permutes sparse-conv weights from the spconv
        1.x layout [kx, ky, kz, in, out] to spconv 2.x's [out, kx, ky, kz, in]. Our own state
        dicts pass through unchanged."""
        expected = self.state_dict()
        out: dict[str, torch.Tensor] = {}
        for k, v in unwrap_state_dict(state_dict).items():
            ref = expected.get(k)
            if ref is not None and v.dim() == 5 and v.shape != ref.shape and v.permute(4, 0, 1, 2, 3).shape == ref.shape:
                v = v.permute(4, 0, 1, 2, 3).contiguous()
            out[k] = v
        return out


def build(variant: str) -> BEVFusion:
    """variant -> FP32 BEVFusion in eval mode (random weights until a checkpoint is loaded)."""
    cfg = get_config(variant)
    with torch.random.fork_rng():  # deterministic initial weights without touching the caller's RNG
        torch.manual_seed(0)
        model = BEVFusion(cfg)
    return model.eval()
