"""The profile report: one call's MACs, bytes, latency and energy, plus per-layer/operator tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from profiling.energy import EnergyResult
from profiling.latency import LatencyStats
from profiling.macs import LayerCost, MacCount, records
from profiling.memory import ANALYTIC

_NULLABLE_INT = ("macs_analytic", "bytes_read_analytic", "bytes_written_analytic")


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def layer_table(layers: tuple[LayerCost, ...]) -> pd.DataFrame:
    table = pd.DataFrame.from_records(records(layers), columns=[f.name for f in fields(LayerCost)])
    return table.astype({name: "Int64" for name in _NULLABLE_INT})


@dataclass(eq=False)
class ProfileReport:
    """Costs of one call of ``model`` on the given inputs (``batch_size`` clips) on ``device``.

    ``macs``/``bytes_*`` come from the executed ops (``bytes_source``), ``analytic_*`` from module
    shapes (``analytic_source``); ``latency_ms`` is the median, ``latency_p90_ms`` the 90th
    percentile; ``energy_j`` is NaN unless ``energy_status == "ok"``, and ``energy_source`` says
    whether it was measured or estimated.
    """

    model: str
    device: str
    batch_size: int
    params: int
    macs: int
    bytes_read: int
    bytes_written: int
    bytes_source: str
    analytic_macs: int
    analytic_bytes_read: int
    analytic_bytes_written: int
    analytic_source: str
    latency_ms: float
    latency_p90_ms: float
    latency_mean_ms: float
    latency_repeats: int
    timer: str
    energy_j: float
    dynamic_energy_j: float
    power_w: float
    idle_power_w: float
    energy_source: str
    energy_status: str
    meter: str
    energy_window_s: float
    energy_window_iterations: int
    per_layer: pd.DataFrame = field(repr=False)
    per_operator: pd.DataFrame = field(repr=False)

    @classmethod
    def build(
        cls,
        *,
        model: str,
        device: str,
        params: int,
        counts: MacCount,
        latency: LatencyStats,
        energy: EnergyResult,
    ) -> ProfileReport:
        return cls(
            model=model,
            device=device,
            batch_size=counts.batch_size,
            params=params,
            macs=counts.macs,
            bytes_read=counts.bytes_read,
            bytes_written=counts.bytes_written,
            bytes_source=counts.bytes_source,
            analytic_macs=counts.analytic_macs,
            analytic_bytes_read=counts.analytic_bytes_read,
            analytic_bytes_written=counts.analytic_bytes_written,
            analytic_source=ANALYTIC,
            latency_ms=latency.median_ms,
            latency_p90_ms=latency.p90_ms,
            latency_mean_ms=latency.mean_ms,
            latency_repeats=latency.repeats,
            timer=latency.timer,
            energy_j=energy.energy_j,
            dynamic_energy_j=energy.dynamic_energy_j,
            power_w=energy.power_w,
            idle_power_w=energy.idle_power_w,
            energy_source=energy.energy_source,
            energy_status=energy.energy_status,
            meter=energy.meter,
            energy_window_s=energy.window_s,
            energy_window_iterations=energy.window_iterations,
            per_layer=layer_table(counts.layers),
            per_operator=pd.DataFrame.from_records(
                records(counts.operators), columns=["op", "calls", "macs", "bytes_read", "bytes_written"]
            ),
        )

    def to_dict(self, *, tables: bool = True) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None); ``tables=False`` leaves out the per-layer/operator rows."""
        out = {
            f.name: _json_safe(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("per_layer", "per_operator")
        }
        if tables:
            for name in ("per_layer", "per_operator"):
                table = getattr(self, name)
                out[name] = [
                    {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in table.to_dict("records")
                ]
        return out
