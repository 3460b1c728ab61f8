"""Latency table: interpolation (exact at grid points, linear/bilinear between, errors outside), JSON, prediction."""

import time

import numpy as np
import pytest
import torch

from dance3d.errors import ConfigError
from dance3d.mdp.lut import LatencyRuntime, LatencyTable, LayerTable
from dance3d.mdp.lut_measure import measure_models_ms
from dance3d.mdp.plan import PrunePlan, width_grid


def _table_2d() -> LayerTable:
    # latency = in + 10 * out at the grid points, but with one bent point so bilinear != planar.
    values = np.array([[8 + 80, 8 + 160], [16 + 80, 16 + 160 + 4.0]])
    return LayerTable(("a", "b"), ((8, 16), (8, 16)), values)


def test_exact_at_grid_points():
    table = _table_2d()
    assert table.lookup({"a": 8, "b": 8}) == 88
    assert table.lookup({"a": 16, "b": 16}) == 180


def test_bilinear_between_grid_points():
    table = _table_2d()
    # Centre: mean of the four corners.
    assert table.lookup({"a": 12, "b": 12}) == pytest.approx((88 + 168 + 96 + 180) / 4)
    # On an edge: linear along one axis only.
    assert table.lookup({"a": 10, "b": 16}) == pytest.approx(0.75 * 168 + 0.25 * 180)
    # Generic point: (1-t)(1-u) v00 + (1-t)u v01 + t(1-u) v10 + t u v11.
    t, u = (13 - 8) / 8, (9 - 8) / 8
    expected = (1 - t) * (1 - u) * 88 + (1 - t) * u * 168 + t * (1 - u) * 96 + t * u * 180
    assert table.lookup({"a": 13, "b": 9}) == pytest.approx(expected)


def test_one_axis_and_scalar_tables():
    line = LayerTable(("a",), ((16, 32, 48),), np.array([1.0, 3.0, 4.0]))
    assert line.lookup({"a": 24}) == pytest.approx(2.0)
    assert line.lookup({"a": 40}) == pytest.approx(3.5)
    assert LayerTable((), (), np.asarray(2.5)).lookup({}) == 2.5


def test_width_zero_costs_nothing_and_outside_the_grid_is_an_error():
    table = _table_2d()
    assert table.lookup({"a": 0, "b": 16}) == 0.0
    with pytest.raises(ConfigError, match="outside the latency table's grid 8..16"):
        table.lookup({"a": 4, "b": 8})
    with pytest.raises(ConfigError, match="outside"):
        table.lookup({"a": 8, "b": 17})


def test_width_grid():
    assert width_grid(64, step=16, max_points=8) == (16, 32, 48, 64)
    assert width_grid(45, step=16, max_points=8) == (16, 32, 45)
    assert width_grid(8, step=16, max_points=8) == (8,)
    coarse = width_grid(512, step=8, max_points=16)
    assert len(coarse) <= 16 and coarse[-1] == 512 and all(w % 8 == 0 for w in coarse)


def test_json_round_trip_and_prediction(tmp_path):
    layers = {"l1": _table_2d(), "l2": LayerTable(("a",), ((8, 16),), np.array([1.0, 2.0]), "blk")}
    table = LatencyTable({"name": "m", "num_classes": 3}, (3, 4, 8, 8), LatencyRuntime(threads=1), layers, 200.0,
                         {"a": (8, 16), "b": (8, 16)})  # fmt: skip
    assert table.dense_entries_ms == pytest.approx(182.0)
    assert table.offset_ms == pytest.approx(18.0)  # additive overhead before calibration
    plan = PrunePlan({"a": 8, "b": 16}, ("blk",))
    assert table.predict_ms(plan) == pytest.approx(168 + 18.0)  # l2 belongs to the removed block
    table.scale, table.overhead_ms = 2.0, 1.0
    loaded = LatencyTable.load(table.save(tmp_path / "lut.json"))
    assert loaded.runtime.threads == 1 and loaded.clip_shape == (3, 4, 8, 8)
    assert loaded.predict_ms(plan) == pytest.approx(2.0 * 168 + 1.0)
    assert loaded.layers["l1"].lookup({"a": 12, "b": 12}) == table.layers["l1"].lookup({"a": 12, "b": 12})


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="not a dance3d latency table"):
        LatencyTable.load(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="not found"):
        LatencyTable.load(tmp_path / "missing.json")


class _Scripted(torch.nn.Module):
    """Sleeps ``delays_s[r]`` per call in round ``r`` (``calls_per_round`` calls each); logs its name."""

    log: list[str] = []  # a class attribute: shared by the copies the measurement makes

    def __init__(self, name: str, delays_s: list[float], calls_per_round: int) -> None:
        super().__init__()
        self.name, self.delays_s, self.calls_per_round, self.calls = name, delays_s, calls_per_round, 0

    def forward(self, x):
        time.sleep(self.delays_s[self.calls // self.calls_per_round])
        self.calls += 1
        _Scripted.log.append(self.name)
        return x


def test_model_latency_is_the_lowest_round_median_with_rounds_interleaved():
    runtime = LatencyRuntime(threads=1, warmup=1, repeats=3, rounds=3)
    calls = runtime.warmup + runtime.repeats
    _Scripted.log.clear()
    slow_spell = _Scripted("a", [0.030, 0.004, 0.012], calls)  # a slow spell in round 1, then quiet
    steady = _Scripted("b", [0.008, 0.008, 0.008], calls)
    a_ms, b_ms = measure_models_ms([slow_spell, steady], (3, 1, 2, 2), runtime)
    assert 4.0 <= a_ms < 8.0 and 8.0 <= b_ms < 12.0
    assert _Scripted.log == (["a"] * calls + ["b"] * calls) * 3  # round by round, not model by model


def test_runtime_rejects_bad_counts():
    for bad in ({"repeats": 0}, {"rounds": 0}, {"warmup": -1}):
        with pytest.raises(ConfigError, match="rounds >= 1"):
            LatencyRuntime(**bad)
