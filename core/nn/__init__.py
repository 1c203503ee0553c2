"""Model-agnostic building blocks shared by model plugins (a backbone, the LSS frustum): one
place, so one model family never imports another's package."""

from .lss import frustum
from .resnet import ResNet

__all__ = ["ResNet", "frustum"]
