"""torchvision's video models (random init; pretrained weights load from a local file only)."""

from __future__ import annotations

import torch.nn as nn

from dance3d.models.registry import register_model


def _build(name: str, num_classes: int) -> nn.Module:
    from torchvision.models import video

    model = getattr(video, name)(weights=None, num_classes=num_classes)
    if name == "s3d":
        # S3D pools with a fixed (2, 7, 7) window that fails on clips smaller than 16x224x224.
        model.avgpool = nn.AdaptiveAvgPool3d(1)
    return model


_MODELS = {
    "r3d_18": "18-layer 3D ResNet (torchvision)",
    "mc3_18": "18-layer mixed 3D/2D ResNet (torchvision)",
    "r2plus1d_18": "18-layer R(2+1)D ResNet (torchvision)",
    "s3d": "S3D separable 3D Inception (torchvision), adaptive head pooling",
}

for _name, _description in _MODELS.items():
    register_model(_name, family="torchvision", default_clip=(16, 112, 112), description=_description)(
        lambda num_classes, _n=_name: _build(_n, num_classes)
    )
