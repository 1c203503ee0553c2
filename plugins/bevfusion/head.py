"""TransFusion head (mit-han-lab names) and its decode into :class:`Detections`.

The whole head, including the heatmap local-maximum, the top-K proposal selection and the
transformer decoder layer, is written with ops that torch.onnx (opset 17) exports with static
shapes (MaxPool + Pad + Where, TopK, Gather, MatMul/Softmax attention): top-K over a fixed
heatmap size gives a fixed number of proposals, so no data-dependent shape reaches the graph
and the exported head.bbox piece is self-contained like CUDA-BEVFusion's. Only the box decode
(sigmoid scores, class choice, metric conversion, range filter) runs on the host.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from bevdeploy.data.types import DETECTION_CLASSES, Detections
from torch import nn

from .config import HeadConfig

HEAD_OUTPUTS = (
    "center", "height", "dim", "rot", "vel", "heatmap", "query_heatmap_score", "query_labels", "dense_heatmap",
)
"""Per proposal, then the dense class heatmap (B, K, X, Y) that the proposals were ranked from: the
one output comparable element by element across precisions (a tie broken differently reorders the
proposals and says nothing about numeric error)."""


class ConvModule1d(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class ConvModule2d(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class PositionEmbeddingLearned(nn.Module):
    def __init__(self, input_channel: int, num_pos_feats: int):
        super().__init__()
        self.position_embedding_head = nn.Sequential(
            nn.Conv1d(input_channel, num_pos_feats, 1),
            nn.BatchNorm1d(num_pos_feats),
            nn.ReLU(inplace=True),
            nn.Conv1d(num_pos_feats, num_pos_feats, 1),
        )

    def forward(self, xy: torch.Tensor) -> torch.Tensor:  # (B, P, 2) -> (B, C, P)
        return self.position_embedding_head(xy.transpose(1, 2))


class MultiheadAttention(nn.Module):
    """Parameters as torch/mmdet3d (``in_proj_weight``, ``in_proj_bias``, ``out_proj``); the
    forward is plain matmuls so it exports without ONNX's fused-attention pattern matching."""

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Lq, E), k/v (B, Lk, E) -> (B, Lq, E)."""
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        b, lq, e = q.shape
        h, hd = self.num_heads, e // self.num_heads
        qh = F.linear(q, wq, bq).view(b, lq, h, hd).transpose(1, 2)
        kh = F.linear(k, wk, bk).view(b, -1, h, hd).transpose(1, 2)
        vh = F.linear(v, wv, bv).view(b, -1, h, hd).transpose(1, 2)
        attn = torch.softmax(qh.matmul(kh.transpose(-2, -1)) * (1.0 / math.sqrt(hd)), dim=-1)
        out = attn.matmul(vh).transpose(1, 2).reshape(b, lq, e)
        return self.out_proj(out)


class TransformerDecoderLayer(nn.Module):
    """Post-norm self-attention, cross-attention on the BEV map, FFN (dropout is inert at eval)."""

    def __init__(self, d_model: int, nhead: int, dim_ff: int):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead)
        self.multihead_attn = MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_posembed = PositionEmbeddingLearned(2, d_model)
        self.cross_posembed = PositionEmbeddingLearned(2, d_model)

    def forward(self, query, key, query_pos, key_pos):
        """query (B, C, P), key (B, C, HW), positions (B, P|HW, 2) -> (B, C, P)."""
        q_pos = self.self_posembed(query_pos).transpose(1, 2)
        k_pos = self.cross_posembed(key_pos).transpose(1, 2)
        query, key = query.transpose(1, 2), key.transpose(1, 2)
        x = query + q_pos
        query = self.norm1(query + self.self_attn(x, x, x))
        kk = key + k_pos
        query = self.norm2(query + self.multihead_attn(query + q_pos, kk, kk))
        query = self.norm3(query + self.linear2(F.relu(self.linear1(query))))
        return query.transpose(1, 2)


class FFN(nn.Module):
    """One small 1x1-conv branch per regression target plus the class heatmap."""

    def __init__(self, cin: int, heads: dict[str, int], head_conv: int):
        super().__init__()
        self.heads = dict(heads)
        for name, classes in self.heads.items():
            self.add_module(name, nn.Sequential(ConvModule1d(cin, head_conv), nn.Conv1d(head_conv, classes, 1)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)(x) for name in self.heads}


class TransFusionHead(nn.Module):
    def __init__(self, in_channels: int, cfg: HeadConfig, bev_size: tuple[int, int]):
        super().__init__()
        self.cfg = cfg
        c, k = cfg.hidden_channel, cfg.num_classes
        self.shared_conv = nn.Conv2d(in_channels, c, 3, padding=1, bias=True)
        self.heatmap_head = nn.Sequential(ConvModule2d(c, c), nn.Conv2d(c, k, 3, padding=1, bias=True))
        self.class_encoding = nn.Conv1d(k, c, 1)
        self.decoder = nn.ModuleList(
            TransformerDecoderLayer(c, cfg.num_heads, cfg.ffn_channel) for _ in range(cfg.num_decoder_layers)
        )
        heads = dict(cfg.common_heads) | {"heatmap": k}
        self.prediction_heads = nn.ModuleList(FFN(c, heads, cfg.head_conv) for _ in range(cfg.num_decoder_layers))
        xs, ys = torch.meshgrid(torch.arange(bev_size[0]), torch.arange(bev_size[1]), indexing="ij")
        pos = torch.stack([xs, ys], dim=-1).view(1, -1, 2).float() + 0.5
        self.register_buffer("bev_pos", pos, persistent=False)  # not in official checkpoints
        mask = torch.zeros(1, k, 1, 1, dtype=torch.bool)
        mask[:, list(cfg.no_nms_classes)] = True
        self.register_buffer("no_nms_mask", mask, persistent=False)

    def _peaks(self, heatmap: torch.Tensor) -> torch.Tensor:
        """Keep local maxima (kernel ``nms_kernel_size``, border cells never peaks as in the
        official zero-filled border; classes in ``no_nms_classes`` keep every cell)."""
        ks = self.cfg.nms_kernel_size
        pad = ks // 2
        pooled = F.pad(F.max_pool2d(heatmap, kernel_size=ks, stride=1, padding=0), (pad, pad, pad, pad))
        local_max = torch.where(self.no_nms_mask, heatmap, pooled)
        return heatmap * (heatmap == local_max).to(heatmap.dtype)

    def forward(self, middle: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """middle (1, Cin, X, Y) -> the tensors named in :data:`HEAD_OUTPUTS`, per proposal."""
        b = middle.shape[0]
        feat = self.shared_conv(middle)
        flat = feat.flatten(2)  # (B, C, HW)
        hw = flat.shape[-1]
        dense = self.heatmap_head(feat).sigmoid()
        heatmap = self._peaks(dense).flatten(2)  # (B, K, HW)
        top = _top_k(heatmap.flatten(1), self.cfg.num_proposals)
        labels = torch.div(top, hw, rounding_mode="floor")
        index = top - labels * hw
        query = flat.gather(2, index.unsqueeze(1).expand(-1, flat.shape[1], -1))
        enc_w = self.class_encoding.weight[:, :, 0].t()  # (K, C): the 1x1 conv applied to a one-hot
        query = query + (enc_w[labels] + self.class_encoding.bias).transpose(1, 2)
        bev_pos = self.bev_pos.expand(b, -1, -1)
        query_pos = bev_pos.gather(1, index.unsqueeze(-1).expand(-1, -1, 2))
        res: dict[str, torch.Tensor] = {}
        for layer, pred in zip(self.decoder, self.prediction_heads, strict=True):
            query = layer(query, flat, query_pos, bev_pos)
            res = pred(query)
            res["center"] = res["center"] + query_pos.transpose(1, 2)
            query_pos = res["center"].transpose(1, 2)
        score = heatmap.gather(2, index.unsqueeze(1).expand(-1, heatmap.shape[1], -1))
        return (res["center"], res["height"], res["dim"], res["rot"], res["vel"], res["heatmap"], score, labels, dense)


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, ties broken by the lower index. Empty BEV regions give
    plateaus of equal heatmap values, so the tie rule decides which proposals exist; ONNX TopK
    specifies lower-index-first, and eager torch matches it with a stable sort (torch.topk's
    tie order is unspecified and differs from ONNX Runtime's)."""
    if torch.onnx.is_in_onnx_export():
        return scores.topk(k, dim=1).indices
    return scores.sort(dim=1, descending=True, stable=True).indices[:, :k]


def decode(
    outputs: tuple[torch.Tensor, ...] | list[torch.Tensor],
    cfg: HeadConfig,
    voxel_size: tuple[float, float],
    pc_range: tuple[float, float],
) -> Detections:
    """Head outputs (batch 1) -> detections in our convention.

    mit-han-lab decodes (x, y, z_bottom, d0, d1, d2, yaw_mm) in mmdet3d 0.x LiDAR boxes and turns
    them into nuScenes boxes with size ``wlh = (d0, d1, d2)`` and yaw ``-yaw_mm - pi/2``; the
    height head predicts the gravity centre. Ours: centre z = height, l = d1, w = d0, h = d2,
    yaw = -yaw_mm - pi/2 wrapped to [-pi, pi)."""
    # on the CPU: 200 proposals are not worth a device round trip per tensor
    center, height, dim, rot, vel, logits, query_score, labels = (t.detach().float().cpu() for t in outputs[:8])
    k = cfg.num_classes
    one_hot = F.one_hot(labels.long(), num_classes=k).permute(0, 2, 1).float()
    score = logits.sigmoid() * query_score * one_hot
    scores, cls = score[0].max(dim=0)
    f = cfg.out_size_factor
    x = center[0, 0] * f * voxel_size[0] + pc_range[0]
    y = center[0, 1] * f * voxel_size[1] + pc_range[1]
    z = height[0, 0]
    d = dim[0].exp()
    yaw_mm = torch.atan2(rot[0, 0], rot[0, 1])
    yaw = torch.remainder(-yaw_mm - math.pi / 2 + math.pi, 2 * math.pi) - math.pi
    z_bottom = z - d[2] * 0.5  # the official range filter looks at the bottom centre
    lo, hi = cfg.post_center_range[:3], cfg.post_center_range[3:]
    keep = (scores > cfg.score_threshold) & (x >= lo[0]) & (y >= lo[1]) & (z_bottom >= lo[2])
    keep &= (x <= hi[0]) & (y <= hi[1]) & (z_bottom <= hi[2])
    boxes = torch.stack([x, y, z, d[1], d[0], d[2], yaw], dim=1)[keep]
    labels_out = _to_detection_classes(cls[keep], cfg.class_names)
    return Detections(
        boxes=boxes.numpy().astype(np.float32),
        scores=scores[keep].numpy().astype(np.float32),
        labels=labels_out,
        velocity=vel[0].t()[keep].numpy().astype(np.float32),
    )


def _to_detection_classes(cls: torch.Tensor, names: tuple[str, ...]) -> np.ndarray:
    """Map head label indices to DETECTION_CLASSES indices through the class names."""
    lut = np.array([DETECTION_CLASSES.index(n) for n in names], dtype=np.int64)
    return lut[cls.numpy().astype(np.int64)]
