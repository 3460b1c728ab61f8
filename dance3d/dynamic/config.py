"""Settings of a dynamic (gated) model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DynamicConfig:
    """How decisions are quantised and how the controller is sized.

    Kept counts are discrete levels: ``ceil(fraction * n)`` for each keep fraction, channel counts
    rounded up to ``channel_multiple`` (16 for CPU/oneDNN, 8 for GPU), so compact execution sees
    a few shapes. Tiles are at least ``tile_size`` x ``tile_size`` block-output positions (the
    whole map when it is smaller).
    """

    frame_keep_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    channel_keep_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    tile_keep_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    channel_multiple: int = 16
    tile_size: int = 16
    controller_hidden: int = 64
    init_logit: float = 3.0
    prior_weight: float = 3.0
    ste_temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("frame_keep_fractions", "channel_keep_fractions", "tile_keep_fractions"):
            values = getattr(self, name)
            if not values or any(not 0.0 < v <= 1.0 for v in values):
                raise ValueError(f"{name} must be a non-empty list of fractions in (0, 1]")
        if self.channel_multiple < 1 or self.tile_size < 1:
            raise ValueError("channel_multiple and tile_size must be >= 1")
        if self.controller_hidden < 1 or not self.ste_temperature > 0:
            raise ValueError("controller_hidden must be >= 1 and ste_temperature > 0")
