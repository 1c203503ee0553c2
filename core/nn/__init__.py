"""Model-agnostic building blocks shared by model plugins (a backbone, the LSS frustum and its geometry): one
place, so one model family never imports another's package."""

from .lss import frustum, frustum_points
from .resnet import ResNet

__all__ = ["ResNet", "frustum", "frustum_points"]
