"""Latency model selection by held-out (leave-one-out) error, its use by predict_ms and the solver, JSON I/O."""

import json

import numpy as np
import pytest

from dance3d.mdp.calibration import select_predictor, summarize_validation
from dance3d.mdp.lut import LatencyPredictor, LatencyRuntime, LatencyTable, LayerTable
from dance3d.mdp.plan import PrunePlan
from dance3d.mdp.solver import MdpProblem, solve

ENTRIES = [40.0, 10.0, 16.0, 22.0, 28.0, 34.0]  # the dense model first


def _points(measured: list[float]) -> list[dict]:
    return [
        {"plan": "dense" if i == 0 else f"random-{i}", "dense": i == 0, "entries_ms": e, "measured_ms": m}
        for i, (e, m) in enumerate(zip(ENTRIES, measured, strict=True))
    ]


def test_raw_sum_wins_when_the_fit_over_corrects():
    # pruned models measure their entries (+-1%); the dense model alone is much slower than its entries,
    # so a scale + overhead fit through it over-predicts every pruned model it has not seen
    noise = [1.0, 1.01, 0.99, 1.0, 1.01, 0.99]
    measured = [e * n for e, n in zip(ENTRIES, noise, strict=True)]
    measured[0] = 52.0
    best, candidates = select_predictor(_points(measured), additive_overhead_ms=12.0)
    assert best.name == "entries" and best.scale == 1.0 and best.offset_ms == 0.0
    scores = {c.name: c.cv_mean_abs_error_pct for c in candidates}
    assert set(scores) == {"entries", "additive", "overhead", "calibrated"}
    assert scores["entries"] < 1.5 < scores["calibrated"] and scores["entries"] < scores["additive"]
    assert all(c.cv_points == 5 and c.cv_max_abs_error_pct >= c.cv_mean_abs_error_pct for c in candidates)


def test_calibrated_fit_wins_when_layers_run_slower_in_the_model():
    measured = [1.3 * e + 2.0 for e in ENTRIES]  # exactly linear: the fit is exact held out too
    measured[3] += 0.2
    best, candidates = select_predictor(_points(measured), additive_overhead_ms=measured[0] - ENTRIES[0])
    assert best.name == "calibrated"
    assert best.scale == pytest.approx(1.3, abs=0.02) and best.offset_ms == pytest.approx(2.0, abs=0.5)
    assert best.cv_mean_abs_error_pct < min(c.cv_mean_abs_error_pct for c in candidates if c.name != "calibrated")


def test_overhead_only_fit_and_degenerate_cases():
    measured = [e + 3.0 for e in ENTRIES]
    measured[0] = ENTRIES[0] + 8.0  # the dense model's overhead says 8 ms, the pruned ones 3 ms
    best, _ = select_predictor(_points(measured), additive_overhead_ms=8.0)
    # the median gap: the dense model's larger one does not pull it
    assert best.name == "overhead" and best.scale == 1.0 and best.offset_ms == pytest.approx(3.0)
    # one pruned model: the calibrated fit has a single point in each fold, so it is not a candidate
    best, candidates = select_predictor(_points(measured)[:2], additive_overhead_ms=8.0)
    assert "calibrated" not in {c.name for c in candidates} and best is not None
    assert select_predictor(_points(measured)[:1], additive_overhead_ms=8.0) == (None, [])


def test_one_disturbed_measurement_does_not_move_the_overhead_fit():
    # a slow spell of the machine during one pruned model's timing: +50%
    measured = [e + 0.5 for e in ENTRIES]
    measured[4] *= 1.5
    best, candidates = select_predictor(_points(measured), additive_overhead_ms=0.5)
    overhead = next(c for c in candidates if c.name == "overhead")
    assert overhead.offset_ms == pytest.approx(0.5)
    assert best.name in ("overhead", "additive") and best.offset_ms == pytest.approx(0.5)


def _table(**kwargs) -> LatencyTable:
    layers = {
        "l1": LayerTable(("a",), ((8, 16),), np.array([4.0, 8.0])),
        "l2": LayerTable(("a", "b"), ((8, 16), (4, 8)), np.array([[1.0, 2.0], [2.0, 4.0]]), "blk"),
    }
    return LatencyTable({"name": "m", "num_classes": 3}, (3, 4, 8, 8), LatencyRuntime(threads=1), layers, 15.0,
                        {"a": (8, 16), "b": (4, 8)}, **kwargs)  # fmt: skip


def test_predict_ms_and_the_solver_use_the_selected_model(tmp_path):
    plan = PrunePlan({"a": 8, "b": 4})
    chosen = LatencyPredictor("overhead", 1.0, 0.5, 2.0, 3.5, 4)
    table = _table(scale=1.5, overhead_ms=1.0, predictor=chosen, predictor_candidates=[chosen])
    assert table.entries_ms(plan) == 5.0
    assert table.predict_ms(plan) == pytest.approx(5.5)  # not 1.5 x 5 + 1 (the calibrated fit)
    choices = {"a": (8, 16), "b": (0, 4, 8)}
    values = {"a": (0.1, 0.5), "b": (0.0, 0.3, 0.4)}
    problem = MdpProblem(choices, values, {"blk": ("b",)}, {"blk": 0.2}, table, budget_ms=10.6)
    solution = solve(problem)
    # the budget fits a=16 with b=4 (8 + 2 + 0.5 = 10.5) under the selected model, not under the calibrated one
    assert solution.plan.widths == {"a": 16, "b": 4} and solution.predicted_ms == pytest.approx(10.5)
    calibrated = MdpProblem(choices, values, {"blk": ("b",)}, {"blk": 0.2}, _table(scale=1.5, overhead_ms=1.0), 10.6)
    assert solve(calibrated).plan.widths == {"a": 8, "b": 8}  # 1.5 x 6 + 1 = 10


def test_json_round_trip_of_the_selection(tmp_path):
    chosen = LatencyPredictor("entries", 1.0, 0.0, 1.25, 2.5, 5)
    others = [chosen, LatencyPredictor("calibrated", 1.2, 0.7, 9.0, 20.0, 5)]
    table = _table(scale=1.2, overhead_ms=0.7, predictor=chosen, predictor_candidates=others)
    path = table.save(tmp_path / "lut.json")
    assert json.loads(path.read_text())["predictor"]["name"] == "entries"
    loaded = LatencyTable.load(path)
    assert loaded.predictor == chosen and loaded.predictor_candidates == others
    assert loaded.selected == chosen and (loaded.scale, loaded.overhead_ms) == (1.2, 0.7)
    plan = PrunePlan({"a": 16, "b": 8})
    assert loaded.predict_ms(plan) == table.predict_ms(plan) == pytest.approx(12.0)


def test_tables_written_before_the_selection_keep_predicting_as_before(tmp_path):
    data = _table(scale=2.0, overhead_ms=1.0).to_dict()
    del data["predictor"], data["predictor_candidates"], data["runtime"]["rounds"]
    data["format_version"] = 1
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = LatencyTable.load(tmp_path / "old.json")
    plan = PrunePlan({"a": 16, "b": 8})
    assert old.predictor is None and old.selected.name == "calibrated" and old.runtime.rounds == 1
    assert old.predict_ms(plan) == pytest.approx(2.0 * 12.0 + 1.0)
    assert _table().selected.name == "additive" and _table().predict_ms(plan) == pytest.approx(15.0)


def test_the_additive_offset_is_never_negative():
    # entries summing to more than the measured dense model: no negative offset, the raw sum
    table = _table()
    table.dense_latency_ms = 5.0
    assert table.dense_entries_ms == pytest.approx(12.0) and table.additive_overhead_ms == 0.0
    assert table.predict_ms(PrunePlan({"a": 8, "b": 4})) == pytest.approx(5.0)


def test_validation_summary_names_the_selected_model():
    rows = [
        {"selected_model": "entries", "entries_error_pct": -2.0, "calibrated_error_pct": 10.0,
         "selected_error_pct": -2.0},
        {"selected_model": "entries", "entries_error_pct": 4.0, "calibrated_error_pct": 20.0,
         "selected_error_pct": 4.0},
    ]  # fmt: skip
    summary = summarize_validation(rows)
    assert summary["selected_model"] == "entries"
    assert summary["entries_mean_abs_error_pct"] == 3.0 and summary["calibrated_max_abs_error_pct"] == 20.0
    assert summary["selected_max_abs_error_pct"] == 4.0
