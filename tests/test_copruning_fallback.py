"""Dense fallback of a co-pruned SimVP's compact execution: break-even rule, calibration, exact outputs."""

from __future__ import annotations

import pytest
import torch
from test_copruning import make_copruned, mixed

from dance3d.copruning.fallback import FallbackCalibration, calibrate_fallback, kept_tile_ladder
from dance3d.errors import ConfigError


def calibration(tiled: dict[int, float], whole: dict[int, float], *, hw=(16, 16), tiles=16) -> FallbackCalibration:
    return FallbackCalibration(device="cpu:test", input_hw=hw, tiles=tiles, tiled_ms=tiled, whole_ms=whole)


def test_the_break_even_is_where_the_whole_map_stays_faster_up_to_all_tiles():
    ladder = {2: 1.0, 4: 2.0, 8: 3.0, 16: 4.0}
    assert calibration(ladder, {2: 3.0, 4: 2.5, 8: 2.9, 16: 3.0}).break_even_tiles == 8
    assert calibration(ladder, {2: 0.5, 4: 2.5, 8: 2.9, 16: 3.0}).break_even_tiles == 8  # a faster blip below
    assert calibration(ladder, {k: 0.1 for k in ladder}).break_even_tiles == 2
    assert calibration(ladder, {k: 9.0 for k in ladder}).break_even_tiles is None
    rule = calibration(ladder, {2: 3.0, 4: 2.5, 8: 2.9, 16: 3.0})
    assert not rule.runs_whole_map(7, height=16, width=16)
    assert rule.runs_whole_map(8, height=16, width=16)


def test_a_calibration_for_another_input_size_is_refused():
    rule = calibration({4: 1.0}, {4: 0.5})
    with pytest.raises(ConfigError, match="measured on 16x16 inputs, not 32x32"):
        rule.runs_whole_map(4, height=32, width=32)


def test_the_ladder_spreads_distinct_counts_up_to_all_tiles():
    assert kept_tile_ladder(64, levels=8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert kept_tile_ladder(3, levels=8) == [1, 2, 3]


def test_the_whole_map_path_gives_the_tiled_paths_forecast_and_is_charged_the_dense_macs():
    torch.manual_seed(1)
    x = torch.randn(3, 3, 2, 16, 16)
    model = mixed(make_copruned(), x).set_mode("compact")
    with torch.inference_mode():
        tiled = model(x)
        tiled_macs = model.last_macs.clone()
        model.fallback = calibration({1: 1.0, 16: 1.0}, {1: 0.5, 16: 0.5})  # whole map for every kept count
        whole = model(x)
        assert model.last_decisions.whole_map.tolist() == [bool(c) for c in (model.last_decisions.tiles.sum(1) >= 1)]
        torch.testing.assert_close(whole, tiled, rtol=1e-4, atol=1e-4)
        kept = model.last_decisions.whole_map
        dense_total, generator = model.dense_macs(x)
        full = dense_total.total + generator + model.channel_decision_macs()
        assert model.last_macs[kept].tolist() == pytest.approx([full] * int(kept.sum()))
        assert (model.last_macs[kept] > tiled_macs[kept]).all()
        model.set_mode("simulate")
        torch.testing.assert_close(model(x), whole, rtol=1e-4, atol=1e-4)


def test_calibration_times_both_paths_at_every_count_and_round_trips(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 2, 16, 16)
    model = make_copruned().set_mode("compact")
    measured = calibrate_fallback(model, x, levels=3, warmup=0, repeats=1)
    assert sorted(measured.tiled_ms) == sorted(measured.whole_ms) == kept_tile_ladder(measured.tiles, levels=3)
    assert all(ms > 0 for ms in [*measured.tiled_ms.values(), *measured.whole_ms.values()])
    assert measured.input_hw == (16, 16)
    loaded = FallbackCalibration.load(measured.save(tmp_path / "fallback.json"))
    assert loaded == measured
    with pytest.raises(ConfigError, match="one sample"):
        calibrate_fallback(model, torch.randn(2, 3, 2, 16, 16))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="is not a dance3d compact fallback table"):
        FallbackCalibration.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text('{"format": "dance3d-compact-fallback", "format_version": 1}')
    with pytest.raises(ConfigError, match="a broken compact fallback table"):
        FallbackCalibration.load(tmp_path / "broken.json")
