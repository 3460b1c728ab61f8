"""Energy meters behind one interface (``begin``/``end``, ``with meter.window() as w``).

Each meter either measures or reports why it cannot (``probe()`` / :class:`MeterError`); estimated
energy lives apart in :class:`EstimatedEnergyModel` and is always labelled as an estimate.
"""

from profiling.meters.base import Availability, EnergyMeter, EnergyReading, EnergyWindow, MeterError
from profiling.meters.estimated import EstimatedEnergyModel
from profiling.meters.idle import IdleBaseline, measure_idle_power
from profiling.meters.jetson import JetsonRailMeter, discover_rails, total_power_w
from profiling.meters.jtop_meter import JtopMeter
from profiling.meters.nvml import NvmlEnergyMeter, NvmlPowerMeter
from profiling.meters.polling import PollingMeter
from profiling.meters.rapl import RaplMeter, discover_packages
from profiling.meters.select import MeterSelection, candidate_meters, select_meter

__all__ = [
    "Availability",
    "EnergyMeter",
    "EnergyReading",
    "EnergyWindow",
    "EstimatedEnergyModel",
    "IdleBaseline",
    "JetsonRailMeter",
    "JtopMeter",
    "MeterError",
    "MeterSelection",
    "NvmlEnergyMeter",
    "NvmlPowerMeter",
    "PollingMeter",
    "RaplMeter",
    "candidate_meters",
    "discover_packages",
    "discover_rails",
    "measure_idle_power",
    "select_meter",
    "total_power_w",
]
