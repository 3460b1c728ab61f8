"""Objective names and constraint parsing: values, directions, clear errors."""

from __future__ import annotations

import math

import pytest

from dance3d.errors import ConfigError
from studies import parse_constraint, parse_constraints, parse_objectives
from studies.objectives import directions, needs_energy, objective_values


def test_objectives_parse_in_order_with_directions():
    assert parse_objectives("accuracy, energy_j") == ("accuracy", "energy_j")
    assert directions(("accuracy", "latency_ms", "mac_fraction")) == ["maximize", "minimize", "minimize"]
    assert objective_values({"accuracy": 0.9, "macs": 5.0, "x": 1}, ("macs", "accuracy")) == [5.0, 0.9]


@pytest.mark.parametrize(
    ("text", "message"),
    [("accuracy,joules", "unknown objective"), ("accuracy,accuracy", "repeat"), (" , ", "no objectives")],
)
def test_bad_objectives_are_rejected(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_objectives(text)


def test_constraints_give_optuna_violations():
    low = parse_constraint("accuracy>=0.95")
    high = parse_constraint(" latency_ms <= 20 ")
    assert (low.metric, low.op, low.bound, str(low)) == ("accuracy", ">=", 0.95, "accuracy>=0.95")
    assert low.violation({"accuracy": 0.97}) == pytest.approx(-0.02)  # feasible: <= 0
    assert low.violation({"accuracy": 0.90}) == pytest.approx(0.05)
    assert high.violation({"latency_ms": 25.0}) == pytest.approx(5.0)
    assert high.violation({"latency_ms": math.nan}) == math.inf  # unmeasured counts as violated
    assert [str(c) for c in parse_constraints(["accuracy>=0.9,mac_fraction<=0.5", "energy_j<=1e-3"])] == [
        "accuracy>=0.9",
        "mac_fraction<=0.5",
        "energy_j<=0.001",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("accuracy>0.9", "use <= or >="),
        ("accuracy=0.9", "use <= or >="),
        ("speed<=3", "unknown metric 'speed'"),
        ("accuracy>=high", "not a number"),
        ("accuracy>=inf", "finite"),
        ("0.9<=accuracy", "cannot parse"),
        ("accuracy", "cannot parse"),
    ],
)
def test_bad_constraints_have_clear_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_constraint(text)


def test_repeated_bounds_and_energy_needs():
    with pytest.raises(ConfigError, match="repeat"):
        parse_constraints(["accuracy>=0.9", "accuracy>=0.8"])
    assert needs_energy(("accuracy", "mac_fraction"), parse_constraints(["energy_per_clip_j<=1"]))
    assert not needs_energy(("accuracy", "latency_ms"), ())
