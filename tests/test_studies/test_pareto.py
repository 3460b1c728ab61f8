"""Plot data: Pareto set, hypervolume and its series, feasibility, keep-rate matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from studies.pareto import front_data, hypervolume, hypervolume_series, keep_rate_matrix, pareto_mask, reference_point

MAX_MIN = ["maximize", "minimize"]


def test_pareto_mask_respects_directions_and_keeps_ties():
    values = np.array([[0.9, 0.5], [0.8, 0.3], [0.7, 0.6], [0.9, 0.5], [0.95, 0.9]])
    assert pareto_mask(values, MAX_MIN).tolist() == [True, True, False, True, True]
    assert pareto_mask(values, ["minimize", "minimize"]).tolist() == [False, True, True, False, False]


def test_hypervolume_known_areas_and_volume():
    staircase = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.5, 3.5]])  # last one dominated
    assert hypervolume(staircase, [4.0, 4.0], ["minimize", "minimize"]) == pytest.approx(6.0)
    # accuracy maximised: reference accuracy 0.5, MAC fraction 1.0 -> rectangles 0.4x0.5 and 0.2x0.2 overlap
    assert hypervolume(np.array([[0.9, 0.5], [0.7, 0.3]]), [0.5, 1.0], MAX_MIN) == pytest.approx(0.2 + 0.04)
    cube = np.array([[0.0, 0.0, 0.0]])
    assert hypervolume(cube, [2.0, 3.0, 4.0], ["minimize"] * 3) == pytest.approx(24.0)
    two = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # boxes of 2 and 4 overlapping in 1
    assert hypervolume(two, [2.0, 2.0, 2.0], ["minimize"] * 3) == pytest.approx(5.0)
    assert hypervolume(np.array([[5.0, 5.0]]), [4.0, 4.0], ["minimize", "minimize"]) == 0.0


def test_reference_point_is_beyond_the_worst_values():
    ref = reference_point(np.array([[0.9, 0.2], [0.5, 0.6]]), MAX_MIN)
    assert ref == pytest.approx([0.46, 0.64])


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": "trial",
            "number": [0, 1, 2, 3, 4],
            "state": ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"],
            "feasible": [True, True, True, False, True],
            "accuracy": [0.6, 0.8, np.nan, 0.99, 0.9],
            "mac_fraction": [0.5, 0.6, np.nan, 0.2, 0.7],
            "keep.g1.frame_keep": [1.0, 0.5, np.nan, 0.25, 0.75],
            "keep.g0.tile_keep": [1.0, 1.0, np.nan, 1.0, 0.5],
            "keep.g0.frame_keep": [0.5, 0.5, np.nan, 0.5, 0.25],
        }
    )


def test_hypervolume_series_is_non_decreasing_and_skips_infeasible_and_failed():
    series = hypervolume_series(_frame(), ["accuracy", "mac_fraction"], MAX_MIN, reference=[0.5, 1.0])
    assert series["number"].tolist() == [0, 1, 4]
    expected_last = hypervolume(np.array([[0.6, 0.5], [0.8, 0.6], [0.9, 0.7]]), [0.5, 1.0], MAX_MIN)
    assert series["hypervolume"].iloc[-1] == pytest.approx(expected_last)
    assert np.all(np.diff(series["hypervolume"]) > 0)


def test_front_data_marks_feasible_front_only():
    data = front_data(_frame(), "mac_fraction", "accuracy", x_direction="minimize", y_direction="maximize")
    assert data["number"].tolist() == [3, 0, 1, 4]  # sorted by x, failed trial dropped
    assert data.set_index("number")["on_front"].to_dict() == {3: False, 0: True, 1: True, 4: True}
    assert not data.set_index("number").loc[3, "feasible"]


def test_keep_rate_matrix_orders_blocks_then_axes():
    matrix, rows, columns = keep_rate_matrix(_frame(), [4, 1])
    assert columns == ["g0.frame_keep", "g0.tile_keep", "g1.frame_keep"]
    assert rows == [4, 1]
    assert matrix.tolist() == [[0.25, 0.5, 0.75], [0.5, 1.0, 0.5]]
