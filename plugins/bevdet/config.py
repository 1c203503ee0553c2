"""BEVDet variants as frozen dataclasses.

``r50`` is HuangJunJie2017/BEVDet ``configs/bevdet/bevdet-r50.py``: 256x704 images, ResNet50
(out_indices 2, 3) + CustomFPN 256, LSS with 59 depth bins (1-60 m), numC_Trans 64, downsample
16, BEV grid +-51.2 m at 0.8 m (128x128) over z -5..3 m, CustomResNet [128, 256, 512] + FPN_LSS
256, CenterHead with ONE task of all ten classes (upstream's config since its dev2.0 rewrite; the
six CenterPoint groups were its 2022 v1 config, whose r50 has other module names). ``tiny``
keeps every module and name but keeps the six head groups (its trained weights have them),
shrinks widths, images, depth bins and the grid so that a 2-core CPU runs a sample in well
under a second. Either way the decode's NMS runs per CenterPoint group (:data:`TASKS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bevdeploy.errors import BevDeployError

# CenterPoint's nuScenes task groups; concatenated they are DETECTION_CLASSES' order. They are the
# decode's NMS groups for every variant and the head's task layout by default (HeadConfig.tasks).
TASKS: tuple[tuple[str, ...], ...] = (
    ("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
    ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone"),
)  # fmt: skip
# upstream bevdet-r50 (dev2.0 and later): one head task predicting all ten classes
ONE_TASK: tuple[tuple[str, ...], ...] = (tuple(name for names in TASKS for name in names),)

# regression heads (name, channels) in the official order; the heatmap head comes last
COMMON_HEADS: tuple[tuple[str, int], ...] = (("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))
REG_CHANNELS = sum(c for _, c in COMMON_HEADS)


@dataclass(frozen=True)
class HeadConfig:
    tasks: tuple[tuple[str, ...], ...] = TASKS  # the head's task_heads, one SeparateHead each
    share_conv_channel: int = 64
    head_conv: int = 64
    final_kernel: int = 3
    init_bias: float = -2.19
    out_size_factor: int = 8
    voxel_size: tuple[float, float] = (0.1, 0.1)
    score_threshold: float = 0.1
    pre_max_size: int = 1000  # top-K per task before NMS
    post_max_size: int = 500  # boxes kept per task after NMS
    max_per_img: int = 500  # boxes kept per sample (the nuScenes devkit accepts at most 500)
    # circle-NMS radius per NMS group of TASKS (CenterPoint nuScenes test_cfg min_radius), vs squared distance
    min_radius: tuple[float, ...] = (4.0, 12.0, 10.0, 1.0, 0.85, 0.175)
    post_center_range: tuple[float, ...] = (-61.2, -61.2, -10.0, 61.2, 61.2, 10.0)


@dataclass(frozen=True)
class BEVDetConfig:
    name: str
    description: str
    image_size: tuple[int, int] = (256, 704)  # (H, W) after resize + crop
    resize: float = 0.44  # scale of the 1600x900 originals before the bottom-centre crop
    stem_channels: int = 64
    stage_blocks: tuple[int, ...] = (3, 4, 6, 3)
    stage_planes: tuple[int, ...] = (64, 128, 256, 512)
    out_indices: tuple[int, ...] = (2, 3)
    neck_channels: int = 256
    downsample: int = 16
    xbound: tuple[float, float, float] = (-51.2, 51.2, 0.8)
    ybound: tuple[float, float, float] = (-51.2, 51.2, 0.8)
    zbound: tuple[float, float, float] = (-5.0, 3.0, 8.0)
    dbound: tuple[float, float, float] = (1.0, 60.0, 1.0)
    numc_trans: int = 64
    bev_layers: tuple[int, ...] = (2, 2, 2)
    bev_channels: tuple[int, ...] = (128, 256, 512)
    bev_neck_channels: int = 256
    head: HeadConfig = field(default_factory=HeadConfig)
    num_cameras: int = 6

    @property
    def feature_size(self) -> tuple[int, int]:
        return (self.image_size[0] // self.downsample, self.image_size[1] // self.downsample)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """(X, Y, Z) cells of the BEV grid."""
        return tuple(round((b[1] - b[0]) / b[2]) for b in (self.xbound, self.ybound, self.zbound))  # type: ignore[return-value]

    @property
    def depth_bins(self) -> int:
        lo, hi, step = self.dbound
        return len(range(0, round((hi - lo) / step)))


R50 = BEVDetConfig(
    name="r50",
    description="HuangJunJie2017/BEVDet bevdet-r50: ResNet50 + CustomFPN, LSS 59 depth bins, 128x128 BEV, CenterHead",
    head=HeadConfig(tasks=ONE_TASK),
)

TINY = BEVDetConfig(
    name="tiny",
    description="same architecture scaled down for CPUs: 128x352 images, 28 depth bins, 64x64 BEV at 1.6 m",
    image_size=(128, 352),
    resize=0.22,
    stem_channels=8,
    stage_blocks=(1, 1, 1, 1),
    stage_planes=(8, 16, 32, 64),
    neck_channels=32,
    xbound=(-51.2, 51.2, 1.6),
    ybound=(-51.2, 51.2, 1.6),
    dbound=(2.0, 58.0, 2.0),
    numc_trans=16,
    bev_channels=(32, 64, 128),
    bev_neck_channels=64,
    head=HeadConfig(share_conv_channel=16, head_conv=16, voxel_size=(0.2, 0.2), pre_max_size=200, post_max_size=100,
                    max_per_img=300),
)

VARIANTS: dict[str, BEVDetConfig] = {"r50": R50, "tiny": TINY}


def get_config(variant: str) -> BEVDetConfig:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise BevDeployError(f"unknown bevdet variant {variant!r}; choose one of {', '.join(VARIANTS)}") from None
