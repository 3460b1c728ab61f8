"""Estimated energy for devices without a sensor: MACs and bytes times per-device coefficients.

``energy_j = joules_per_mac * macs + joules_per_byte * bytes_moved + static_power_w * latency_s``.
Coefficients come from the user (e.g. a datasheet) or from :meth:`EstimatedEnergyModel.fit`, a
non-negative least-squares fit to measurements taken on a device that has a meter. Every number
it produces is labelled ``energy_source="estimated"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class EstimatedEnergyModel:
    """Linear energy model; ``fitted_rows`` is 0 for hand-set coefficients."""

    joules_per_mac: float
    joules_per_byte: float
    static_power_w: float = 0.0
    device: str = ""
    fitted_rows: int = 0

    source: ClassVar[str] = "estimated"

    def __post_init__(self) -> None:
        for name in ("joules_per_mac", "joules_per_byte", "static_power_w"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def estimate_j(self, *, macs: float, bytes_moved: float, latency_s: float) -> float:
        """Estimated energy of one run that executed ``macs`` and moved ``bytes_moved`` bytes."""
        return self.joules_per_mac * macs + self.joules_per_byte * bytes_moved + self.static_power_w * latency_s

    @classmethod
    def fit(
        cls,
        *,
        macs: Sequence[float],
        bytes_moved: Sequence[float],
        latency_s: Sequence[float],
        energy_j: Sequence[float],
        device: str = "",
        fit_static_power: bool = True,
    ) -> EstimatedEnergyModel:
        """Non-negative least squares over measured runs (one entry per run in each sequence)."""
        import numpy as np
        from scipy.optimize import nnls

        columns = [macs, bytes_moved] + ([latency_s] if fit_static_power else [])
        a = np.asarray(columns, dtype=float).T
        b = np.asarray(energy_j, dtype=float)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"{a.shape[0]} runs of costs but {b.shape[0]} energies")
        if a.shape[0] < a.shape[1]:
            raise ValueError(f"need at least {a.shape[1]} measured runs to fit, got {a.shape[0]}")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise ValueError("costs and energies must be finite (drop failed measurements first)")
        scale = np.abs(a).max(axis=0)
        scale[scale == 0] = 1.0
        coef, _ = nnls(a / scale, b)
        coef = coef / scale
        return cls(
            joules_per_mac=float(coef[0]),
            joules_per_byte=float(coef[1]),
            static_power_w=float(coef[2]) if fit_static_power else 0.0,
            device=device,
            fitted_rows=int(a.shape[0]),
        )
