"""Data–model co-pruning of forecasters (Dyna-Pruner): one importance map per sample drives a data mask
over tiles and a model mask over channels; simulate and compact execution; training to a MAC target."""

from dance3d.copruning.base import EXECUTION_MODES, CoprunedForecaster
from dance3d.copruning.config import SUPPORTED_BACKBONES, CopruneConfig, CopruneRunConfig, CopruneTrainConfig
from dance3d.copruning.decisions import Decisions
from dance3d.copruning.model import CoprunedSimVP
from dance3d.copruning.transformer import CoprunedSTFormer
from dance3d.copruning.wrappers import coprune_model

__all__ = [
    "EXECUTION_MODES",
    "SUPPORTED_BACKBONES",
    "CopruneConfig",
    "CopruneRunConfig",
    "CopruneTrainConfig",
    "CoprunedForecaster",
    "CoprunedSTFormer",
    "CoprunedSimVP",
    "Decisions",
    "coprune_model",
]
