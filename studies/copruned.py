"""Studies of a co-pruned forecaster: its threshold knobs as a search space, trials and baselines measured.

Knobs: ``data_threshold`` and ``channel_threshold`` (:mod:`dance3d.copruning.knobs`), applied over
the trained settings, so a knob left out of the search keeps its trained value. Baselines: the
dense model (both masks keep everything: the backbone alone, whose output is the co-pruned model's
with every tile and channel kept), persistence (the last input frame, no MACs) and any other
forecast checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dance3d.copruning import EXECUTION_MODES, CopruneConfig, CoprunedForecaster
from dance3d.copruning.knobs import apply_thresholds, threshold_knobs
from dance3d.errors import ConfigError
from dance3d.forecast.metrics import ForecastScores
from dance3d.loading import LoadedModel, load_model
from studies.config import StudyConfig
from studies.forecast import ForecastMeasurer, ForecastSet
from studies.search import MeasurePoint
from studies.space import Point, SearchSpace, check_execution_modes, select_knobs


def build_threshold_space(model: CoprunedForecaster, config: StudyConfig) -> SearchSpace:
    """The model's thresholds (all, or those in ``config.knobs``) over ``threshold_low..threshold_high``."""
    check_execution_modes(config.execution_modes, available=EXECUTION_MODES)
    knobs = threshold_knobs(model.config, low=config.threshold_low, high=config.threshold_high)
    knobs = select_knobs(knobs, config.knobs)
    if not knobs:
        raise ConfigError("this co-pruned model has no thresholds to search (both of its masks are off)")
    return SearchSpace(tuple(knobs), config.knob_step, tuple(config.execution_modes), tuple(config.batch_sizes))


def configure_copruned(model: CoprunedForecaster, point: Point, *, trained: CopruneConfig) -> CoprunedForecaster:
    """Apply ``point``'s thresholds over the ``trained`` settings and its execution mode."""
    apply_thresholds(model, point.knobs, base=trained)
    return model.set_mode(point.execution_mode)


def dense_macs(model: CoprunedForecaster, data: ForecastSet) -> float:
    """MACs of the dense backbone per sample of ``data``."""
    return float(model.dense_total_macs(data.inputs[:1]))


def copruned_point_measurer(model: CoprunedForecaster, measurer: ForecastMeasurer) -> MeasurePoint:
    """Measure ``model`` at a point of its threshold space."""
    trained = model.config
    dense = dense_macs(model, measurer.data)

    def measure_point(point: Point) -> dict[str, Any]:
        forward = configure_copruned(model, point, trained=trained)
        return measurer.measure(forward, module=model, batch_size=point.batch_size, copruned=model, dense_macs=dense)

    return measure_point


def persistence_baseline(data: ForecastSet) -> dict[str, Any]:
    """Persistence (the last input frame repeated): its MSE on the same samples; it computes no MACs."""
    scores = ForecastScores(data.variables, lat=data.lat)
    last = data.inputs[:, -1:].expand_as(data.targets)
    scores.update(last.double().cpu().numpy() * data.std + data.mean,
                  data.targets.double().cpu().numpy() * data.std + data.mean)  # fmt: skip
    squared = float(((last - data.targets) ** 2).mean(dim=(1, 2, 3, 4)).sum())
    return {"mse": scores.summary()["mse"], "mse_normalised": squared / len(data), "num_clips": len(data),
            "macs": 0.0, "mac_fraction": 0.0, "position_fraction": 0.0, "keep_rates": {}}  # fmt: skip


def measure_copruned_baselines(
    loaded: LoadedModel,
    measurer: ForecastMeasurer,
    point: Point,
    baseline_checkpoints: Mapping[str, str | Path],
) -> dict[str, dict[str, Any]]:
    """The dense backbone, persistence and any other forecast checkpoints, measured like the trials."""
    model: CoprunedForecaster = loaded.model
    dense = dense_macs(model, measurer.data)
    out = {
        "dense": measurer.measure(
            model.backbone, module=model.backbone, batch_size=point.batch_size, copruned=None, dense_macs=dense
        ),
        "persistence": persistence_baseline(measurer.data),
    }
    for name, path in baseline_checkpoints.items():
        other_loaded = load_model(path)
        if other_loaded.checkpoint.model.get("options", {}).get("t_in") is None:
            raise ConfigError(f"baseline {name}: {path} is a {other_loaded.kind!r} checkpoint, not a forecaster")
        other = other_loaded.model.to(measurer.device).eval()
        copruned = other if isinstance(other, CoprunedForecaster) else None
        if copruned is not None:
            copruned.set_mode(point.execution_mode)
        out[name] = measurer.measure(
            other, module=other, batch_size=point.batch_size, copruned=copruned, dense_macs=dense
        )
        out[name]["checkpoint"] = str(other_loaded.path)
    for name, values in out.items():
        if name != "persistence":  # persistence runs no model
            values["execution_mode"] = point.execution_mode
    return out
