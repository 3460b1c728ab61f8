"""The co-pruned ConvLSTM's whole-map path: exact against simulate, taken when every tile is kept or past a
measured break-even, charged every position with the kept channels, and what it counts is what it runs."""

from __future__ import annotations

import pytest
import torch
from copruning_helpers import make_copruned as _make
from copruning_helpers import mixed, run

from dance3d.copruning.convlstm import CoprunedConvLSTM
from dance3d.copruning.fallback import FallbackCalibration, calibrate_fallback, kept_tile_ladder, with_fallback
from profiling import count_macs


def make_copruned(**settings) -> CoprunedConvLSTM:
    return _make("convlstm-test", **settings)


def whole_map_everywhere(hw: tuple[int, int], tiles: int) -> FallbackCalibration:
    """A table whose whole map is faster at every kept count: every sample with a kept tile runs on it."""
    return FallbackCalibration(device="cpu:test", input_hw=hw, tiles=tiles, tiled_ms={1: 1.0, tiles: 1.0},
                               whole_ms={1: 0.5, tiles: 0.5})  # fmt: skip


@pytest.mark.parametrize(("shape", "tile_size"), [((16, 16), 4), ((20, 28), 8)])  # (20, 28): cut edge tiles
def test_the_whole_map_path_gives_simulates_forecast_and_decisions(shape, tile_size):
    x = torch.randn(4, 3, 2, *shape)
    model = mixed(make_copruned(tile_size=tile_size, channel_threshold=0.5), x)
    simulated = run(model, x, "simulate")
    reference = model.last_decisions
    tiles = reference.tiles.shape[1]
    kept = reference.tiles.sum(dim=1)
    assert ((kept > 0) & (kept < tiles)).any(), "some samples must keep part of their tiles for this test"
    assert (reference.channel_fractions() < 1).any(), "some hidden channels must be pruned for this test"
    model.fallback = whole_map_everywhere(shape, tiles)
    whole = run(model, x, "compact")
    assert model.last_decisions.whole_map.tolist() == (kept > 0).tolist()
    torch.testing.assert_close(whole, simulated, atol=1e-5, rtol=1e-5)
    for a, b in zip(model.last_decisions.channels, reference.channels, strict=True):
        assert torch.equal(a[kept > 0], b[kept > 0])


def test_a_sample_keeping_every_tile_runs_on_the_whole_map_without_a_table_at_the_tiled_paths_macs():
    x = torch.randn(2, 3, 2, 16, 16)
    model = make_copruned(data_threshold=1e-6, channel_threshold=0.7)
    assert model.fallback is None
    whole = run(model, x, "compact")
    assert model.last_decisions.tiles.all() and model.last_decisions.whole_map.all()
    assert (model.last_decisions.channel_fractions() < 1).all()
    whole_macs = model.last_macs.clone()
    model.whole_map_when_all_kept = False
    tiled = run(model, x, "compact")
    assert not model.last_decisions.whole_map.any()
    torch.testing.assert_close(whole, tiled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole, run(model, x, "simulate"), atol=1e-5, rtol=1e-5)
    assert torch.equal(whole_macs, model.last_macs)  # the same positions and channels either way


def test_a_whole_map_sample_is_charged_every_position_with_its_kept_channels_and_runs_what_it_counts():
    x = torch.randn(3, 3, 2, 16, 16)
    model = mixed(make_copruned(tile_size=8, channel_threshold=0.5), x)
    run(model, x, "compact")
    tiled_macs = model.last_macs.clone()
    partial = (model.last_decisions.tiles.sum(dim=1) > 0) & ~model.last_decisions.tiles.all(dim=1)
    assert partial.any()
    model.fallback = whole_map_everywhere((16, 16), model.last_decisions.tiles.shape[1])
    run(model, x, "compact")
    costs, _, generator_macs = model.costs(x)
    everywhere = torch.full((3,), float(costs.positions))
    kept_channels = [c.sum(dim=1) for c in model.last_decisions.channels]
    expected = costs.macs(everywhere, kept_channels) + generator_macs
    assert model.last_macs[partial].tolist() == expected[partial].tolist()
    assert (model.last_macs[partial] > tiled_macs[partial]).all()
    for index in partial.nonzero().flatten().tolist():
        sample = x[index : index + 1]
        assert count_macs(model, sample).macs == model.last_macs.item()  # the forward records last_macs


def test_the_fallback_table_is_measured_on_a_convlstm_and_a_copy_carries_it(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 2, 16, 16)
    model = make_copruned().set_mode("compact")
    measured = calibrate_fallback(model, x, levels=3, warmup=0, repeats=1)
    assert sorted(measured.whole_ms) == kept_tile_ladder(measured.tiles, levels=3)
    assert all(ms > 0 for ms in [*measured.tiled_ms.values(), *measured.whole_ms.values()])
    copy = with_fallback(model, measured)
    assert copy.fallback == measured and model.fallback is None
    assert FallbackCalibration.load(measured.save(tmp_path / "table.json")) == measured
