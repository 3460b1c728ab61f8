"""Model registry: ``create_model(name, num_classes=...)`` and ``list_models()`` (timm-style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from dance3d.errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is and which clip shape it expects by default."""

    name: str
    family: str  # "builtin", "torchvision", "pytorchvideo"
    builder: Callable[..., nn.Module]
    default_clip: tuple[int, int, int]  # (frames, height, width)
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str, *, family: str, default_clip: tuple[int, int, int], description: str
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``fn(num_classes=..., **kwargs) -> nn.Module`` to the zoo."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, family, builder, default_clip, description)
        return builder

    return decorate


def _ensure_loaded() -> None:
    # Importing the family modules runs their @register_model decorators.
    from dance3d.models import builtin, forecasters, pytorchvideo_zoo, torchvision_zoo  # noqa: F401


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, optionally of one family."""
    _ensure_loaded()
    return sorted(n for n, info in _REGISTRY.items() if family in (None, info.family))


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``, with a clear error listing the choices."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, *, num_classes: int, pretrained: str | None = None, **kwargs: object) -> nn.Module:
    """Build a zoo model that returns logits; ``pretrained`` is a local weights file."""
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    info = model_info(name)
    try:
        model = info.builder(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r} does not take these options {sorted(kwargs)}: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"model {name!r}: bad option value in {kwargs}: {exc}") from exc
    if pretrained is not None:
        from dance3d.models.weights import load_pretrained

        load_pretrained(model, pretrained)
    return model
