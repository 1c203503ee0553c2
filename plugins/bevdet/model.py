"""The BEVDet module tree (``img_backbone``, ``img_neck``, ``img_view_transformer``,
``img_bev_encoder_backbone``, ``img_bev_encoder_neck``, ``pts_bbox_head``, as in
HuangJunJie2017/BEVDet) and the stage methods that both the eager forward and the DeployGraph
pieces call, so the two paths cannot drift apart.

Checkpoint names: where each ``r50`` key name and shape comes from. Upstream's current layout
(CustomFPN / LSSViewTransformer / CustomResNet, released bevdet-r50 at mAP 28.3 / NDS 35.0) is
not among the stored versions of HuangJunJie2017/BEVDet itself (those are its 2022 v1:
FPNForBEVDet 512, ``depthnet``, ResNetForBEVDet, six head tasks), so it was read from forks
that carry upstream's files unchanged, cross-checked against each other:

- configs/bevdet/bevdet-r50.py (morioramdenbourg/BEVDet f8cfba7e, NicolasHHH/BEVDet e1ba8db2,
  ETH-PBL/BEVDet c05b1811): ResNet50 out_indices (2, 3); CustomFPN [1024, 2048] -> 256,
  out_ids [0]; LSSViewTransformer in 256, out 64, downsample 16, depth [1, 60, 1] (D = 59),
  z [-5, 3, 8]; CustomResNet numC_input 64, num_channels [128, 256, 512]; FPN_LSS 640 -> 256;
  CenterHead in 256, share_conv_channel 64, ONE task of the ten classes, common_heads
  reg/height/dim/rot/vel each (C, 2), SeparateHead final_kernel 3.
- mmdet3d/models/necks/fpn.py CustomFPN (morioramdenbourg f8cfba7e): ConvModule laterals and a
  single fpn conv (only ids in out_ids), no norm/act -> ``lateral_convs.i.conv.{weight,bias}``,
  ``fpn_convs.0.conv.{weight,bias}``.
- mmdet3d/models/necks/view_transformer.py LSSViewTransformer (NicolasHHH e1ba8db2): plain
  ``depth_net`` = Conv2d(in, D + out, 1) with bias; frustum and grid_* are plain tensors.
- mmdet3d/models/backbones/resnet.py CustomResNet (morioramdenbourg f8cfba7e): ``layers.i.j``
  mmdet BasicBlocks, the first with ``downsample`` = Conv2d(cin, cout, 3, 2, 1) with bias.
- mmdet3d/models/necks/lss_fpn.py FPN_LSS (morioramdenbourg 100973d4): ``conv`` Sequential
  [conv, bn, relu, conv, bn, relu], ``up2`` [upsample, conv, bn, relu, conv+bias]; no
  ``input_conv``/``lateral_conv`` at the defaults.
- mmdet3d/models/dense_heads/centerpoint_head.py (NicolasHHH e1ba8db2): ``shared_conv``
  ConvModule with BN (``conv`` no bias, ``bn``); ``task_heads.i.<head>`` Sequential of
  ConvModule(s) then a biased conv, heatmap last with num_heatmap_convs 2.
- open-mmlab/mmcv conv_module.py / norm.py: ConvModule's ``conv`` + ``bn`` (BN abbreviation
  ``bn``, no postfix), bias only without norm. open-mmlab/mmdetection backbones/resnet.py:
  ``conv1``/``bn1`` stem, ``layerN``, Bottleneck ``convK``/``bnK``, ``downsample.{0,1}``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from bevdeploy.data.types import Detections
from bevdeploy.nn import ResNet
from torch import nn

from .config import BEVDetConfig, get_config
from .head import HEAD_OUTPUTS, CenterHead, decode
from .necks import FPN_LSS, CustomFPN, CustomResNet, LSSViewTransformer

RANK_CACHE_SIZE = 8


class BEVDet(nn.Module):
    """Camera-only BEVDet. ``forward(**inputs)`` takes the dict ``prepare`` returns and gives the
    head's dense maps by name (:data:`HEAD_OUTPUTS`); :meth:`predict` adds the decode."""

    def __init__(self, cfg: BEVDetConfig):
        super().__init__()
        self.cfg = cfg
        self.img_backbone = ResNet(cfg.stem_channels, cfg.stage_blocks, cfg.stage_planes, cfg.out_indices)
        in_channels = [self.img_backbone.out_channels[i] for i in cfg.out_indices]
        self.img_neck = CustomFPN(in_channels, cfg.neck_channels)
        self.img_view_transformer = LSSViewTransformer(cfg)
        self.img_bev_encoder_backbone = CustomResNet(cfg.numc_trans, cfg.bev_layers, cfg.bev_channels)
        self.img_bev_encoder_neck = FPN_LSS(cfg.bev_channels[0] + cfg.bev_channels[-1], cfg.bev_neck_channels)
        self.pts_bbox_head = CenterHead(cfg.bev_neck_channels, cfg.head)
        self._ranks: OrderedDict[str, tuple[torch.Tensor, ...]] = OrderedDict()

    # ---- stages (shared by forward and the partition) ----------------------------------------

    def image_encoder(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """img (1, N, 3, H, W) -> depth probabilities (1, N, D, fH, fW), context (1, N, fH, fW, C)."""
        feat = self.img_neck(self.img_backbone(img[0]))  # batch 1: indexing keeps ONNX shapes static
        depth, context = self.img_view_transformer.depth_and_context(feat)
        return depth.unsqueeze(0), context.unsqueeze(0)

    def bev_ranks(self, camera2ego, camera_intrinsics, img_aug_matrix) -> tuple[torch.Tensor, ...]:
        """bev_pool_v2 ranks for a camera rig, computed once per distinct calibration (the rig is
        fixed per dataset, as BEVDet's deployment assumes) and recomputed when it changes. They are
        computed and kept on the matrices' device, where the pooling then reads them."""
        device = torch.as_tensor(camera2ego).device
        # plain (not inference-mode) tensors: cached ranks are later saved for backward in training
        with torch.inference_mode(False), torch.no_grad():
            mats = [torch.from_numpy(torch.as_tensor(m).detach().float().cpu().numpy().copy())
                    for m in (camera2ego, camera_intrinsics, img_aug_matrix)]
            key = hashlib.sha1(b"".join(m.numpy().tobytes() for m in mats) + str(device).encode()).hexdigest()
            if key in self._ranks:
                self._ranks.move_to_end(key)
                return self._ranks[key]
            ranks = self.img_view_transformer.bev_pool_ranks(*(m[0].to(device) for m in mats))
        self._ranks[key] = ranks
        while len(self._ranks) > RANK_CACHE_SIZE:
            self._ranks.popitem(last=False)
        return ranks

    def bev_pool(self, depth: torch.Tensor, context: torch.Tensor, *ranks: torch.Tensor) -> torch.Tensor:
        """Splat with ``torch.ops.bevdeploy.bev_pool_v2`` and fold Z into channels -> (1, C*Z, Y, X)."""
        import bevdeploy.plugins.trt_ops  # noqa: F401  (registers torch.ops.bevdeploy.*)

        ranks = tuple(r.to(depth.device) for r in ranks)  # no copy where the geometry ran on the same device
        out = torch.ops.bevdeploy.bev_pool_v2(
            depth.contiguous(), context.contiguous(), *ranks, self.img_view_transformer.out_shape
        )
        return torch.cat(out.unbind(dim=2), dim=1)

    def bev_head(self, bev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """BEV encoder + CenterHead: (1, C, Y, X) -> heatmap, bbox_reg."""
        return self.pts_bbox_head(self.bev_encoder(bev))

    def bev_encoder(self, bev: torch.Tensor) -> torch.Tensor:
        return self.img_bev_encoder_neck(self.img_bev_encoder_backbone(bev))

    def decode(self, heatmap: torch.Tensor, bbox_reg: torch.Tensor, lidar2ego: torch.Tensor) -> Detections:
        return decode(heatmap, bbox_reg, lidar2ego, self.cfg)

    # ---- eager model ---------------------------------------------------------------------------

    def bev_features(self, img, camera2ego, camera_intrinsics, img_aug_matrix) -> torch.Tensor:
        depth, context = self.image_encoder(img)
        return self.bev_encoder(self.bev_pool(depth, context, *self.bev_ranks(camera2ego, camera_intrinsics, img_aug_matrix)))

    def forward(
        self, img: torch.Tensor, camera2ego: torch.Tensor, camera_intrinsics: torch.Tensor,
        img_aug_matrix: torch.Tensor, **unused: Any,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        feat = self.bev_features(img, camera2ego, camera_intrinsics, img_aug_matrix)
        return dict(zip(HEAD_OUTPUTS, self.pts_bbox_head(feat), strict=True))

    def forward_tasks(self, img, camera2ego, camera_intrinsics, img_aug_matrix, **unused: Any) -> list[dict[str, torch.Tensor]]:
        """Raw per-task head outputs (heatmap logits), what training's CenterPoint loss consumes.
        Inputs are ``batch`` frames: img (B, N, 3, H, W), matrices (B, N, 4, 4). The batch's ranks
        are computed together on the inputs' device each call (training augmentation moves every
        frame's geometry, so the per-rig cache of :meth:`bev_ranks` would never hit)."""
        b, n = img.shape[:2]
        feat = self.img_neck(self.img_backbone(img.flatten(0, 1)))
        depth, context = self.img_view_transformer.depth_and_context(feat)
        vt = self.img_view_transformer
        ranks = vt.bev_pool_ranks(camera2ego.flatten(0, 1), camera_intrinsics.flatten(0, 1), img_aug_matrix.flatten(0, 1), batch=b)
        import bevdeploy.plugins.trt_ops  # noqa: F401  (registers torch.ops.bevdeploy.*)

        bev = torch.ops.bevdeploy.bev_pool_v2(
            depth.unflatten(0, (b, n)).contiguous(), context.unflatten(0, (b, n)).contiguous(), *ranks, vt.pool_shape(b)
        )
        return self.pts_bbox_head.forward_tasks(self.bev_encoder(torch.cat(bev.unbind(dim=2), dim=1)))

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, torch.Tensor]) -> Detections:
        out = self(**inputs)
        return self.decode(out["heatmap"], out["bbox_reg"], inputs["lidar2ego"])


def build(variant: str) -> BEVDet:
    """variant -> FP32 BEVDet in eval mode (deterministic random weights until a checkpoint loads)."""
    cfg = get_config(variant)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BEVDet(cfg)
    return model.eval()
