"""Data–model co-pruning of forecasters (Dyna-Pruner): one importance map per sample drives a data mask
over tiles and a model mask over channels; simulate and compact execution; training to a MAC target."""

from dance3d.copruning.config import SUPPORTED_BACKBONES, CopruneConfig, CopruneRunConfig, CopruneTrainConfig
from dance3d.copruning.decisions import Decisions
from dance3d.copruning.model import EXECUTION_MODES, CoprunedSimVP

__all__ = [
    "EXECUTION_MODES",
    "SUPPORTED_BACKBONES",
    "CopruneConfig",
    "CopruneRunConfig",
    "CopruneTrainConfig",
    "CoprunedSimVP",
    "Decisions",
]
