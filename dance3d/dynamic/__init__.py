"""Dynamic (input-adaptive) 3D CNNs: gated residual blocks, decisions, MAC accounting, compact execution."""

from dance3d.dynamic.compact_calibration import CompactCalibration
from dance3d.dynamic.config import DynamicConfig
from dance3d.dynamic.decisions import BlockDecision, GateLevels, TileGrid
from dance3d.dynamic.knobs import Knob, apply_knobs, current_knobs, knob_space
from dance3d.dynamic.margins import decision_margins
from dance3d.dynamic.model import EXECUTION_MODES, DynamicModel, GatedBlock, convert_model, set_execution_mode

__all__ = [
    "EXECUTION_MODES",
    "BlockDecision",
    "CompactCalibration",
    "DynamicConfig",
    "DynamicModel",
    "GateLevels",
    "GatedBlock",
    "Knob",
    "TileGrid",
    "apply_knobs",
    "convert_model",
    "current_knobs",
    "decision_margins",
    "knob_space",
    "set_execution_mode",
]
