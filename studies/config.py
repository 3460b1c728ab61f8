"""Settings of a study: what to optimise, what to search, how to measure, how to store."""

from __future__ import annotations

from dataclasses import dataclass

from dance3d.errors import ConfigError

DEFAULT_STUDY_NAME = "dance3d-study"
SAMPLERS: tuple[str, ...] = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class StudyConfig:
    """One study's settings (``run_study`` and ``dance3d study run``).

    ``objectives`` and ``constraints`` are fixed when the study is created; a later run with
    others is refused. No ``objectives`` means the model's defaults
    (``studies.objectives.DEFAULT_OBJECTIVES``: ``accuracy, mac_fraction`` for a dynamic classifier;
    ``mse, mac_fraction, latency_ms``, plus energy where a meter works, for a co-pruned forecaster).
    ``trials`` is the number of *complete* trials the study should hold in total (a resumed study
    only tops up). Knobs come from the model: a dynamic model's logit offsets range over
    ``knob_low..knob_high``, a co-pruned model's thresholds over ``threshold_low..threshold_high``;
    ``knobs`` restricts the search to some of them (the others stay as trained) and
    ``knob_step`` makes the space a grid. ``execution_modes``/``batch_sizes`` with more than one
    value become categorical parameters of the search.
    """

    objectives: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    trials: int = 60
    sampler: str = "tpe"
    seed: int | None = 0
    population_size: int = 20
    startup_trials: int = 10
    knob_low: float = -8.0
    knob_high: float = 8.0
    knob_step: float | None = None
    threshold_low: float = 0.01
    threshold_high: float = 0.99
    knobs: tuple[str, ...] = ()
    execution_modes: tuple[str, ...] = ("simulate",)
    batch_sizes: tuple[int, ...] = (1,)
    eval_batch_size: int = 32
    device: str = "cpu"
    latency_warmup: int = 2
    latency_repeats: int = 10
    energy: bool | None = None
    energy_estimate: tuple[float, float, float] | None = None
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retry: int = 2

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"trials must be >= 1, got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.startup_trials < 1:
            raise ConfigError(f"startup_trials must be >= 1, got {self.startup_trials}")
        if self.population_size < 2:
            raise ConfigError(f"population_size must be >= 2, got {self.population_size}")
        if not self.knob_low < 0.0 < self.knob_high:
            raise ConfigError(f"the knob range must contain 0, got [{self.knob_low}, {self.knob_high}]")
        if not 0.0 < self.threshold_low < self.threshold_high < 1.0:
            raise ConfigError(
                f"the threshold range must satisfy 0 < threshold_low < threshold_high < 1, "
                f"got [{self.threshold_low}, {self.threshold_high}]"
            )
        if self.knob_step is not None and not self.knob_step > 0:
            raise ConfigError(f"knob_step must be > 0, got {self.knob_step}")
        if not self.execution_modes:
            raise ConfigError("execution_modes must name at least one mode")
        if not self.batch_sizes or min(self.batch_sizes) < 1 or self.eval_batch_size < 1:
            raise ConfigError("batch sizes must be positive integers")
        if self.latency_repeats < 1 or self.latency_warmup < 0:
            raise ConfigError("latency_repeats must be >= 1 and latency_warmup >= 0")
        if self.heartbeat_interval_s < 1 or self.grace_period_s <= self.heartbeat_interval_s:
            raise ConfigError(
                f"need heartbeat_interval_s >= 1 and grace_period_s > heartbeat_interval_s, got "
                f"{self.heartbeat_interval_s} and {self.grace_period_s}"
            )
        if self.max_retry < 0:
            raise ConfigError(f"max_retry must be >= 0, got {self.max_retry}")
        if self.energy_estimate is not None and (len(self.energy_estimate) != 3 or min(self.energy_estimate) < 0):
            raise ConfigError("energy_estimate is (joules_per_mac, joules_per_byte, static_power_w), all >= 0")
