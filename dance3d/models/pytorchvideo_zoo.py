"""pytorchvideo's model builders, with logits heads and pooling that adapts to the clip size.

Heads are built with ``head_activation=None`` (no softmax). The fixed-size head pooling of the
builders is replaced by global adaptive pooling, which equals it at the default clip size and
keeps working when frames are dropped or clips are smaller.
"""

from __future__ import annotations

import torch.nn as nn

from dance3d.models.registry import register_model

_X3D = {  # name: (clip length, crop size, depth factor), as in pytorchvideo's hub configs
    "x3d_xs": (4, 160, 2.2),
    "x3d_s": (13, 160, 2.2),
    "x3d_m": (16, 224, 2.2),
}


def _adaptive_head(model: nn.Module) -> nn.Module:
    head = model.blocks[-1]
    if hasattr(head.pool, "pool"):  # X3D's ProjectedPool
        head.pool.pool = nn.AdaptiveAvgPool3d(1)
    else:
        head.pool = nn.AdaptiveAvgPool3d(1)
    return model


def _x3d(name: str, num_classes: int, *, clip_length: int | None = None, crop_size: int | None = None):
    from pytorchvideo.models.x3d import create_x3d

    default_length, default_crop, depth = _X3D[name]
    model = create_x3d(
        input_clip_length=clip_length or default_length,
        input_crop_size=crop_size or default_crop,
        depth_factor=depth,
        model_num_class=num_classes,
        head_activation=None,
    )
    return _adaptive_head(model)


for _name, (_length, _crop, _) in _X3D.items():
    register_model(
        _name,
        family="pytorchvideo",
        default_clip=(_length, _crop, _crop),
        description=f"X3D-{_name.split('_')[1].upper()} (pytorchvideo)",
    )(lambda num_classes, _n=_name, **kw: _x3d(_n, num_classes, **kw))


@register_model("slow_r50", family="pytorchvideo", default_clip=(8, 224, 224), description="Slow-only ResNet-50")
def slow_r50(num_classes: int) -> nn.Module:
    from pytorchvideo.models.resnet import create_resnet

    model = create_resnet(
        model_depth=50,
        model_num_class=num_classes,
        head_activation=None,
        stem_conv_kernel_size=(1, 7, 7),
        head_pool_kernel_size=(8, 7, 7),
    )
    return _adaptive_head(model)


@register_model("r2plus1d_r50", family="pytorchvideo", default_clip=(16, 224, 224), description="R(2+1)D-50")
def r2plus1d_r50(num_classes: int) -> nn.Module:
    from pytorchvideo.models.r2plus1d import create_r2plus1d

    return _adaptive_head(create_r2plus1d(model_num_class=num_classes, head_activation=None))
