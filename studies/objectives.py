"""Objectives and constraints: names, directions, units, parsing, and values from a trial's measurements."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from dance3d.errors import ConfigError

MAXIMIZE, MINIMIZE = "maximize", "minimize"


@dataclass(frozen=True)
class Metric:
    """A measured quantity a study can optimise or constrain."""

    name: str
    direction: str
    label: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", MAXIMIZE, "top-1 accuracy"),
        Metric("mse", MINIMIZE, "forecast MSE (physical units)"),
        Metric("mac_fraction", MINIMIZE, "MACs / dense MACs (mean per clip)"),
        Metric("macs", MINIMIZE, "MACs per clip (mean)"),
        Metric("latency_ms", MINIMIZE, "latency per batch (ms, median)"),
        Metric("latency_per_clip_ms", MINIMIZE, "latency per clip (ms, median)"),
        Metric("energy_j", MINIMIZE, "energy per batch (J)"),
        Metric("energy_per_clip_j", MINIMIZE, "energy per clip (J)"),
    )
}
ENERGY_METRICS = ("energy_j", "energy_per_clip_j")
CLASSIFY, FORECAST = "classify", "forecast"
QUALITY: dict[str, str] = {CLASSIFY: "accuracy", FORECAST: "mse"}
"""The quality metric of each task: what a study trades against the costs."""
DEFAULT_OBJECTIVES: dict[str, tuple[str, ...]] = {
    CLASSIFY: ("accuracy", "mac_fraction"),
    FORECAST: ("mse", "mac_fraction", "latency_ms"),
}
"""Objectives of a study that names none (``StudyConfig.objectives == ()``), by task."""
ENERGY_OBJECTIVE = "energy_per_clip_j"


def with_energy_objective(objectives: tuple[str, ...], *, meter_works: bool) -> tuple[str, ...]:
    """``objectives`` plus energy per clip where a meter works (the front is then energy-accuracy); else unchanged."""
    if not meter_works or any(name in ENERGY_METRICS for name in objectives):
        return objectives
    return (*objectives, ENERGY_OBJECTIVE)


def parse_objectives(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"accuracy,energy_j"`` -> ``("accuracy", "energy_j")``; unknown or repeated names are errors."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise ConfigError(f"no objectives given; choose from {', '.join(METRICS)}")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ConfigError(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"objectives repeat a name: {', '.join(names)}")
    return tuple(names)


def default_objectives(task: str, *, meter_works: bool) -> tuple[str, ...]:
    """The objectives a study of a ``task`` model gets when it names none; a forecaster's add energy per clip
    where a meter works."""
    if task == FORECAST:
        return with_energy_objective(DEFAULT_OBJECTIVES[task], meter_works=meter_works)
    return DEFAULT_OBJECTIVES[task]


def check_task(objectives: tuple[str, ...], constraints: tuple[Constraint, ...], task: str) -> None:
    """Refuse the other task's quality metric (``accuracy`` for a forecaster, ``mse`` for a classifier)."""
    used = [*objectives, *(c.metric for c in constraints)]
    for other, quality in QUALITY.items():
        if other != task and quality in used:
            model = "a forecaster (co-pruned checkpoint)" if task == FORECAST else "a classifier (dynamic checkpoint)"
            raise ConfigError(
                f"{quality!r} does not apply to {model}: its quality objective is {QUALITY[task]!r} "
                f"({METRICS[QUALITY[task]].label}, {METRICS[QUALITY[task]].direction})"
            )


def quality_metric(objectives: list[str] | tuple[str, ...]) -> str:
    """The quality metric of a study with ``objectives`` (``mse`` for a forecaster's, else ``accuracy``)."""
    return "mse" if "mse" in objectives else "accuracy"


def directions(objectives: tuple[str, ...]) -> list[str]:
    """Optuna directions of ``objectives``."""
    return [METRICS[name].direction for name in objectives]


def is_feasible(violations: Mapping[str, float]) -> bool:
    """Every constraint met (each :meth:`Constraint.violation` <= 0); true without constraints."""
    return all(v <= 0 for v in violations.values())


@dataclass(frozen=True)
class Constraint:
    """``metric <= bound`` or ``metric >= bound``; feasible when :meth:`violation` <= 0."""

    metric: str
    op: str
    bound: float

    def violation(self, measurements: Mapping[str, float]) -> float:
        """Optuna's constraint value: how far past the bound (<= 0: satisfied); NaN counts as violated."""
        value = float(measurements[self.metric])
        if math.isnan(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|=|<|>)\s*(\S+)\s*$")


def parse_constraint(text: str) -> Constraint:
    """Parse ``"accuracy>=0.95"`` or ``"latency_ms <= 20"``."""
    match = _CONSTRAINT.match(text)
    if match is None:
        raise ConfigError(f"cannot parse constraint {text!r}: expected METRIC<=NUMBER or METRIC>=NUMBER")
    metric, op, raw = match.groups()
    if metric not in METRICS:
        raise ConfigError(f"constraint {text!r}: unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if op not in ("<=", ">="):
        raise ConfigError(f"constraint {text!r}: use <= or >= (got {op!r})")
    try:
        bound = float(raw)
    except ValueError:
        raise ConfigError(f"constraint {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(bound):
        raise ConfigError(f"constraint {text!r}: the bound must be finite")
    return Constraint(metric, op, bound)


def parse_constraints(items: list[str] | tuple[str, ...]) -> tuple[Constraint, ...]:
    """Each item may hold several constraints separated by commas."""
    out = [parse_constraint(part) for item in items for part in item.split(",") if part.strip()]
    if len({c.metric + c.op for c in out}) != len(out):
        raise ConfigError(f"constraints repeat a bound: {', '.join(map(str, out))}")
    return tuple(out)


def objective_values(measurements: Mapping[str, float], objectives: tuple[str, ...]) -> list[float]:
    """The objective vector of one trial, in ``objectives`` order."""
    return [float(measurements[name]) for name in objectives]


def needs_energy(objectives: tuple[str, ...], constraints: tuple[Constraint, ...]) -> bool:
    """Whether energy must be measured for these objectives and constraints."""
    used = set(objectives) | {c.metric for c in constraints}
    return any(name in used for name in ENERGY_METRICS)
