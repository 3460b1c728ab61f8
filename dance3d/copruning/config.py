"""Settings of data–model co-pruning (Dyna-Pruner) and of its training, as checked dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from dance3d.config import check_range
from dance3d.errors import ConfigError

SUPPORTED_BACKBONES = ("simvp-tiny", "simvp-test", "stformer-tiny", "stformer-test", "convlstm-tiny", "convlstm-test")
"""Zoo forecasters co-pruning is built for: the SimVP CNN, the spatio-temporal Transformer, the ConvLSTM."""


def check_backbone(name: str) -> None:
    """Refuse a backbone co-pruning does not support, naming the ones it does."""
    if name not in SUPPORTED_BACKBONES:
        raise ConfigError(f"co-pruning supports the backbones {', '.join(SUPPORTED_BACKBONES)}; got {name!r}")


@dataclass(frozen=True)
class CopruneConfig:
    """How one importance map ``S`` per sample becomes a data mask and a model mask.

    ``tile_size``: side of a data-mask tile in input pixels (a multiple of 4: a tile is
    ``tile_size / 4`` cells of the SimVP or ConvLSTM latent map, or tokens of the Transformer's patch-4
    grid). A tile is computed when its mean ``S`` exceeds ``data_threshold``; a hidden channel (of
    SimVP's translator MLPs, the Transformer's MLPs, the ConvLSTM's cells) when its normalised
    ``S``-weighted response exceeds ``channel_threshold``. ``temperature`` scales the soft masks'
    sigmoid (training only).
    ``data_mask`` / ``model_mask`` switch either mask off (everything kept on that axis).
    """

    backbone: str = "simvp-tiny"
    target_mac_fraction: float = 0.5
    tile_size: int = 8
    data_threshold: float = 0.5
    channel_threshold: float = 0.2
    temperature: float = 0.1
    generator_width: int = 8
    data_mask: bool = True
    model_mask: bool = True

    def __post_init__(self) -> None:
        check_backbone(self.backbone)
        check_range("copruning.target_mac_fraction", self.target_mac_fraction, low=0, low_open=True, high=1)
        check_range("copruning.tile_size", self.tile_size, low=4)
        if self.tile_size % 4:
            raise ConfigError(
                f"copruning.tile_size must be a multiple of 4 (the latent map's stride), got {self.tile_size}"
            )
        for name in ("data_threshold", "channel_threshold"):
            check_range(f"copruning.{name}", getattr(self, name), low=0, high=1, low_open=True, high_open=True)
        check_range("copruning.temperature", self.temperature, low=0, low_open=True)
        check_range("copruning.generator_width", self.generator_width, low=1)


MAC_PENALTIES = ("target", "ceiling")


@dataclass(frozen=True)
class CopruneTrainConfig:
    """Fine-tuning a dense forecaster into a co-pruned one.

    Loss = forecast MSE + ``sparsity_weight`` x MAC penalty + ``distill_weight`` x MSE to the
    dense model's forecast. ``amplify_epochs`` > 0 first fine-tunes the dense model for that many
    epochs to amplify the variability of the units the masks gate (:mod:`dance3d.copruning.amplify`,
    weighted by ``amplify_weight``, each CV capped at ``amplify_cv_cap``; 0: no such stage).
    ``mac_penalty``: ``"target"`` (default) is |mean MAC fraction - target|,
    which holds the MAC fraction at the target from both sides; ``"ceiling"`` is
    max(0, mean MAC fraction - target), the first design's hinge, which lets a model fall into
    skipping everything (kept to reproduce that run).
    """

    epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-3  # backbone fine-tuning
    generator_lr: float = 1e-2
    sparsity_weight: float = 2.0
    mac_penalty: str = "target"
    distill_weight: float = 0.0
    train_backbone: bool = True
    amplify_epochs: int = 0
    amplify_weight: float = 0.1
    amplify_cv_cap: float = 2.0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_range(f"train.{name}", getattr(self, name), low=1)
        check_range("train.amplify_epochs", self.amplify_epochs, low=0)
        check_range("train.amplify_weight", self.amplify_weight, low=0)
        check_range("train.amplify_cv_cap", self.amplify_cv_cap, low=0, low_open=True)
        for name in ("lr", "generator_lr"):
            check_range(f"train.{name}", getattr(self, name), low=0, low_open=True)
        for name in ("sparsity_weight", "distill_weight"):
            check_range(f"train.{name}", getattr(self, name), low=0)
        if self.mac_penalty not in MAC_PENALTIES:
            raise ConfigError(f"train.mac_penalty must be one of {', '.join(MAC_PENALTIES)}, got {self.mac_penalty!r}")


@dataclass(frozen=True)
class CopruneRunConfig:
    """A ``dance3d copruning`` run: the masks' settings and the training's."""

    copruning: CopruneConfig = field(default_factory=CopruneConfig)
    train: CopruneTrainConfig = field(default_factory=CopruneTrainConfig)
