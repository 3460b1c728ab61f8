"""``dance3d fallback-table`` and ``--calibration`` on a co-pruned SimVP: measured, applied, exact, refused clearly."""

from __future__ import annotations

import pytest
from copruning_helpers import fallback_table_and_eval
from test_copruning_cli import copruned, dense_checkpoint  # noqa: F401 - module fixtures: a tiny co-pruned SimVP

from dance3d.copruning.fallback import FallbackCalibration


def test_the_table_is_measured_and_eval_with_it_scores_alike(run_cli, copruned, tmp_path):  # noqa: F811
    report, measured, scores = fallback_table_and_eval(run_cli, copruned / "model.pt", tmp_path)
    assert report["break_even_tiles"] == measured.break_even_tiles and measured.input_hw == (16, 16)
    assert len(measured.tiled_ms) == 3 and set(measured.tiled_ms) == set(measured.whole_ms)
    assert scores["whole"]["mse_normalised"] == pytest.approx(scores["tiles"]["mse_normalised"], rel=1e-5)
    assert scores["whole"]["mac_fraction"] > scores["tiles"]["mac_fraction"]  # whole maps are charged in full


def test_bad_uses_exit_2_with_one_line(run_cli, copruned, dense_checkpoint, tmp_path):  # noqa: F811
    model = str(copruned / "model.pt")
    code, _, err = run_cli("fallback-table", "--checkpoint", str(dense_checkpoint), "--out", str(tmp_path / "a.json"))
    assert code == 2 and "must be a co-pruned SimVP or ConvLSTM" in err
    other = FallbackCalibration("cpu:x", (32, 32), 16, {4: 1.0}, {4: 0.5}).save(tmp_path / "other.json")
    code, _, err = run_cli("eval", "--checkpoint", model, "--calibration", str(other))
    assert code == 2 and "needs --execution compact" in err
    code, _, err = run_cli("eval", "--checkpoint", model, "--execution", "compact", "--calibration", str(other))
    assert code == 2 and "measured on 32x32 inputs, not 16x16" in err
    (tmp_path / "bad.json").write_text("[")
    code, _, err = run_cli(
        "eval", "--checkpoint", model, "--execution", "compact", "--calibration", str(tmp_path / "bad.json")
    )
    assert code == 2 and "is not JSON" in err
