"""The quickstart's co-pruning stage settings: bad values are refused up front, with the setting's name."""

from __future__ import annotations

import pytest

from dance3d.copruning.quickstart_stage import CopruningStageSettings
from dance3d.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("target_mac_fraction", 1.5, "target_mac_fraction"),
        ("epochs", 0, "train.epochs"),
        ("tile_size", 6, "tile_size"),
        ("latency_samples", 0, "latency_samples"),
        ("latency_repeats", 0, "latency_repeats"),
    ],  # fmt: skip
)
def test_bad_stage_settings_are_refused_when_built(field, value, name):
    with pytest.raises((ConfigError, ValueError), match=name):
        CopruningStageSettings(**{field: value})


def test_the_stage_settings_become_the_copruning_run():
    run = CopruningStageSettings(target_mac_fraction=0.4, epochs=2, generator_lr=0.05).run_config()
    assert run.copruning.target_mac_fraction == 0.4 and run.train.epochs == 2 and run.train.generator_lr == 0.05
    assert not run.train.progress
