"""BEVFusion variants as frozen dataclasses.

``r50`` is mit-han-lab's camera+LiDAR TransFusion/SECFPN configuration with a ResNet50 camera
backbone (the one CUDA-BEVFusion deploys). ``tiny`` keeps every module and parameter name but
shrinks widths, image, grid and proposals so that a 2-core CPU runs it in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bevdeploy.errors import BevDeployError


@dataclass(frozen=True)
class CameraConfig:
    image_size: tuple[int, int]  # (H, W) after resize + crop
    resize: float  # scale applied to the 1600x900 originals before the crop
    stem_channels: int
    stage_blocks: tuple[int, ...]  # bottlenecks per ResNet stage
    stage_planes: tuple[int, ...]  # bottleneck width per stage (output = 4x)
    out_indices: tuple[int, ...] = (1, 2, 3)
    neck_channels: int = 256
    vt_channels: int = 80
    xbound: tuple[float, float, float] = (-54.0, 54.0, 0.3)
    ybound: tuple[float, float, float] = (-54.0, 54.0, 0.3)
    zbound: tuple[float, float, float] = (-10.0, 10.0, 20.0)
    dbound: tuple[float, float, float] = (1.0, 60.0, 0.5)
    vt_downsample: int = 2

    @property
    def feature_size(self) -> tuple[int, int]:
        return (self.image_size[0] // 8, self.image_size[1] // 8)


@dataclass(frozen=True)
class LidarConfig:
    point_cloud_range: tuple[float, ...] = (-54.0, -54.0, -5.0, 54.0, 54.0, 3.0)
    voxel_size: tuple[float, float, float] = (0.075, 0.075, 0.2)
    max_points_per_voxel: int = 10
    max_voxels: int = 160000  # test-time limit of the official config
    in_channels: int = 5
    base_channels: int = 16
    output_channels: int = 128
    encoder_channels: tuple[tuple[int, ...], ...] = ((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128))
    encoder_paddings: tuple[tuple, ...] = ((0, 0, 1), (0, 0, 1), (0, 0, (1, 1, 0)), (0, 0))
    # sparse conv implementation of the SparseEncoder: "spconv" (spconv 2.x, what deploys),
    # "torch" (bevdeploy.sparse, pure PyTorch: trains on any CUDA/CPU) or "auto" (spconv if it
    # imports, else torch). Same parameter names and shapes, so checkpoints load into either.
    sparse_impl: str = "auto"

    @property
    def sparse_shape(self) -> tuple[int, int, int]:
        """(X, Y, Z) like mmdet3d: Z gets one extra cell."""
        r, v = self.point_cloud_range, self.voxel_size
        nx = round((r[3] - r[0]) / v[0])
        ny = round((r[4] - r[1]) / v[1])
        nz = round((r[5] - r[2]) / v[2])
        return (nx, ny, nz + 1)


@dataclass(frozen=True)
class DecoderConfig:
    fuser_channels: int = 256
    second_out: tuple[int, int] = (128, 256)
    second_layers: tuple[int, int] = (5, 5)
    second_strides: tuple[int, int] = (1, 2)
    fpn_out: tuple[int, int] = (256, 256)
    fpn_strides: tuple[int, int] = (1, 2)


@dataclass(frozen=True)
class HeadConfig:
    num_proposals: int = 200
    hidden_channel: int = 128
    num_classes: int = 10
    num_decoder_layers: int = 1
    num_heads: int = 8
    ffn_channel: int = 256
    head_conv: int = 64
    nms_kernel_size: int = 3
    out_size_factor: int = 8
    # nuScenes: pedestrian (8) and traffic_cone (9) use a 1x1 local maximum (no suppression)
    no_nms_classes: tuple[int, ...] = (8, 9)
    post_center_range: tuple[float, ...] = (-61.2, -61.2, -10.0, 61.2, 61.2, 10.0)
    score_threshold: float = 0.0
    # order of the regression heads as in the official config (heatmap is appended last)
    common_heads: tuple[tuple[str, int], ...] = (("center", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))
    # class names in the head's label order (mit-han-lab nuScenes object_classes)
    class_names: tuple[str, ...] = (
        "car", "truck", "construction_vehicle", "bus", "trailer",
        "barrier", "motorcycle", "bicycle", "pedestrian", "traffic_cone",
    )  # fmt: skip


@dataclass(frozen=True)
class BEVFusionConfig:
    name: str
    description: str
    camera: CameraConfig
    lidar: LidarConfig = field(default_factory=LidarConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    num_cameras: int = 6

    @property
    def bev_size(self) -> tuple[int, int]:
        """(X, Y) cells of the fused BEV map the head sees."""
        sx, sy, _ = self.lidar.sparse_shape
        f = self.head.out_size_factor
        return (sx // f, sy // f)


R50 = BEVFusionConfig(
    name="r50",
    description="mit-han-lab camera+LiDAR BEVFusion, ResNet50, 256x704 images, 0.075 m voxels, 180x180 BEV",
    camera=CameraConfig(
        image_size=(256, 704), resize=0.48, stem_channels=64, stage_blocks=(3, 4, 6, 3), stage_planes=(64, 128, 256, 512)
    ),
)

TINY = BEVFusionConfig(
    name="tiny",
    description="same architecture scaled down for CPUs: 128x352 images, 0.2 m voxels, 64x64 BEV over +-51.2 m",
    camera=CameraConfig(
        image_size=(128, 352),
        resize=0.24,
        stem_channels=8,
        stage_blocks=(1, 1, 1, 1),
        stage_planes=(8, 16, 32, 64),
        neck_channels=32,
        vt_channels=16,
        xbound=(-51.2, 51.2, 0.8),
        ybound=(-51.2, 51.2, 0.8),
        dbound=(1.0, 57.0, 2.0),
    ),
    lidar=LidarConfig(
        point_cloud_range=(-51.2, -51.2, -5.0, 51.2, 51.2, 3.0),
        voxel_size=(0.2, 0.2, 0.2),
        max_voxels=30000,
        base_channels=8,
        output_channels=32,
        encoder_channels=((8, 8, 16), (16, 16, 32), (32, 32, 64), (64, 64)),
    ),
    decoder=DecoderConfig(
        fuser_channels=64, second_out=(32, 64), second_layers=(2, 2), fpn_out=(64, 64)
    ),
    head=HeadConfig(
        num_proposals=50, hidden_channel=32, num_heads=4, ffn_channel=64, head_conv=16,
        post_center_range=(-58.0, -58.0, -10.0, 58.0, 58.0, 10.0),
    ),  # fmt: skip
)

VARIANTS: dict[str, BEVFusionConfig] = {"r50": R50, "tiny": TINY}


def with_sparse_impl(cfg: BEVFusionConfig, sparse_impl: str) -> BEVFusionConfig:
    """``cfg`` with its LiDAR encoder on another sparse implementation (``"torch"``, ``"spconv"``,
    ``"auto"``); e.g. ``BEVFusion(with_sparse_impl(get_config("tiny"), "torch"))`` to train on a
    GPU machine without spconv."""
    return replace(cfg, lidar=replace(cfg.lidar, sparse_impl=sparse_impl))


def get_config(variant: str) -> BEVFusionConfig:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise BevDeployError(
            f"unknown bevfusion variant {variant!r}; choose one of {', '.join(VARIANTS)}"
        ) from None
