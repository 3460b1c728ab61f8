"""Paired comparisons of forecasters over the same test samples, and the co-pruning benchmark's targets.

Each method's per-sample squared error (MSE over a sample's pixels and lead times, physical units)
is paired with the co-pruned model's on the same sample: a two-sided Wilcoxon signed-rank test and
a paired bootstrap 95% interval of the mean difference (baseline minus coupled: positive means the
co-pruned model is more accurate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class PairedTest:
    """``baseline`` vs ``reference`` over paired samples (differences are baseline - reference)."""

    reference: str
    baseline: str
    samples: int
    mean_difference: float
    ci95: tuple[float, float]
    wilcoxon_p: float

    @property
    def reference_ahead(self) -> bool:
        """The reference's error is lower on average and the difference is significant."""
        return self.mean_difference > 0 and self.wilcoxon_p < SIGNIFICANCE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ci95": list(self.ci95), "reference_ahead": self.reference_ahead}


def paired_test(
    reference: np.ndarray, baseline: np.ndarray, *, names: tuple[str, str], resamples: int = 2000, seed: int = 0
) -> PairedTest:
    """Compare per-sample errors ``baseline`` against ``reference`` (same samples, same order)."""
    reference, baseline = np.asarray(reference, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if reference.shape != baseline.shape or reference.ndim != 1 or not len(reference):
        raise ValueError(f"paired errors must be two equal-length 1-D arrays, got {reference.shape}, {baseline.shape}")
    difference = baseline - reference
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), size=(resamples, len(difference)))].mean(axis=1)
    p = 1.0 if not np.any(difference) else float(stats.wilcoxon(difference).pvalue)
    return PairedTest(
        reference=names[0],
        baseline=names[1],
        samples=len(difference),
        mean_difference=float(difference.mean()),
        ci95=(float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))),
        wilcoxon_p=p,
    )


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


@dataclass(frozen=True)
class TargetThresholds:
    """Where the benchmark's targets sit (see docs/experiments/2026-12-07-dyna-forecast-design.md)."""

    max_mac_fraction: float = 0.4  # at least 60% fewer MACs than dense
    max_mse_increase: float = 0.01  # test MSE at most 1% above dense's
    max_csi_drop: float = 0.01  # CSI at VIL 74 at most 1% (relative) below dense's
    mac_match_tolerance: float = 0.02  # a "matched" rival may use at most this much more MAC fraction
    min_calm_spearman: float = 0.5  # -Spearman(MAC fraction, calm fraction)
    min_speedup: float = 2.0  # dense / co-pruned compact latency, CPU batch 1


def dyna_targets(
    summary: dict[str, dict[str, float]],
    tests: dict[str, PairedTest],
    *,
    static: list[str],
    single_masks: list[str],
    calm_spearman: float,
    speedup: float,
    thresholds: TargetThresholds = TargetThresholds(),
) -> dict[str, bool]:
    """The benchmark's pass/fail targets from its numbers.

    ``summary[method]`` holds ``mac_fraction`` (mean over test samples), ``mse`` and ``csi74``;
    methods ``dense`` and ``coupled`` must be present; ``tests[method]`` compares it with coupled.
    A rival counts as beaten when coupled uses no more than its MAC fraction (+ the tolerance) and
    coupled's error is significantly lower on paired samples.
    """
    dense, coupled = summary["dense"], summary["coupled"]

    def beaten(name: str) -> bool:
        rival = summary[name]
        return coupled["mac_fraction"] <= rival["mac_fraction"] + thresholds.mac_match_tolerance and (
            tests[name].reference_ahead
        )

    csi_ok = not (dense["csi74"] > 0) or coupled["csi74"] >= (1 - thresholds.max_csi_drop) * dense["csi74"]
    return {
        "mac_reduction_at_least_60pct": coupled["mac_fraction"] <= thresholds.max_mac_fraction,
        "metric_degradation_below_1pct": coupled["mse"] <= (1 + thresholds.max_mse_increase) * dense["mse"] and csi_ok,
        "ahead_of_static_at_matched_macs": bool(static) and all(beaten(name) for name in static),
        "coupled_ahead_of_single_masks": bool(single_masks) and all(beaten(name) for name in single_masks),
        "spearman_calm_fraction_at_least_0.5": bool(-calm_spearman >= thresholds.min_calm_spearman),
        "cpu_batch1_speedup_at_least_2x": bool(speedup >= thresholds.min_speedup),
    }


__all__ = ["PairedTest", "TargetThresholds", "dyna_targets", "paired_test", "spearman"]
