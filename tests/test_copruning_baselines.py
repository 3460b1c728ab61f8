"""Static baselines of co-pruning: L1 uniform channel pruning, matched widths, static tile sets and their MACs."""

from __future__ import annotations

import pytest
import torch

from dance3d.copruning.baselines import (
    StaticTilesSimVP,
    match_width,
    prune_simvp,
    static_tiles_model,
    tile_budget,
)
from dance3d.dynamic.decisions import TileGrid
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import SimVP
from profiling import count_macs


def trained_like(seed: int = 0) -> SimVP:
    """A small SimVP with every weight random (the zero-initialised head too), so outputs depend on all of it."""
    torch.manual_seed(seed)
    model = SimVP(1, t_in=6, t_out=6, hidden_spatial=8, hidden_temporal=16, translator_blocks=2)
    for parameter in model.head.parameters():
        parameter.data.normal_(0, 0.1)
    return model.eval()


def test_pruning_to_full_width_is_the_dense_model():
    dense = trained_like()
    x = torch.randn(2, 6, 1, 16, 16)
    same = prune_simvp(dense, hidden_spatial=8, hidden_temporal=16).eval()
    assert torch.equal(same(x), dense(x))


def test_pruning_keeps_the_largest_l1_filters_and_runs():
    dense = trained_like()
    narrow = prune_simvp(dense, hidden_spatial=4, hidden_temporal=6).eval()
    norms = dense.stem[0].weight.abs().flatten(1).sum(dim=1)
    kept = norms.topk(2).indices.sort().values
    assert torch.equal(narrow.stem[0].weight, dense.stem[0].weight[kept])
    expand = dense.translator[1].mlp[0]
    assert narrow.translator[1].mlp[0].out_channels == 12
    assert narrow.translator[1].mlp[0].in_channels == 6 and expand.in_channels == 16
    out = narrow(torch.randn(1, 6, 1, 16, 16))
    assert out.shape == (1, 6, 1, 16, 16) and torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="even hidden_spatial"):
        prune_simvp(dense, hidden_spatial=3, hidden_temporal=6)


@pytest.mark.parametrize("fraction", [0.5])
def test_matched_width_counts_what_the_pruned_model_executes(fraction):
    dense = trained_like()
    x = torch.randn(1, 6, 1, 16, 16)
    dense_macs = count_macs(dense, x).macs_per_clip
    target = fraction * dense_macs
    choice = match_width(dense, x, target)
    narrow = prune_simvp(dense, hidden_spatial=choice.hidden_spatial, hidden_temporal=choice.hidden_temporal)
    assert count_macs(narrow, x).macs_per_clip == choice.macs
    every = [
        count_macs(prune_simvp(dense, hidden_spatial=s, hidden_temporal=t), x).macs_per_clip
        for s in (2, 4, 6, 8)
        for t in range(1, 17)
    ]
    best = min(abs(macs - target) for macs in every)
    assert abs(choice.macs - target) <= best + 0.02 * dense_macs  # within the tolerance of the best pair
    assert match_width(dense, x, dense_macs).macs == dense_macs


def test_tile_budget_is_the_closest_count_of_tiles():
    grid = TileGrid(16, 16, 8, 8)  # 64 tiles of 2x2 cells
    assert tile_budget(grid, 0.35) == 22  # 22/64 = 0.344 is closer than 23/64 = 0.359
    assert tile_budget(grid, 1.0) == 64 and tile_budget(grid, 0.0) == 1
    cut = TileGrid(5, 5, 3, 3)  # 2x2-cell tiles, the last row and column cut to 1 cell
    assert tile_budget(cut, 4 / 25) == 1  # the centre tile covers 4 of 25 cells


def test_static_crop_costs_its_tiles_and_forecasts_persistence_elsewhere():
    dense = trained_like()
    x = torch.rand(2, 6, 1, 32, 32)
    model = static_tiles_model(dense, target_fraction=0.25, layout="crop", sample=x).eval()
    assert model.tiles == 4  # 4 of the 16 tiles of the 8x8 latent map
    out = model(x)
    assert torch.allclose(model.last_mac_fraction, torch.full((2,), 0.25))
    kept = model.last_decisions.tiles
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[0].reshape(4, 4)[1:3, 1:3], torch.ones(2, 2))
    assert torch.equal(out[:, :, :, :8], x[:, -1:, :, :8].expand(-1, 6, -1, -1, -1))  # the skipped top rows
    assert not torch.equal(out[:, :, :, 8:24, 8:24], x[:, -1:, :, 8:24, 8:24].expand(-1, 6, -1, -1, -1))
    compact = model.set_mode("compact")(x)
    assert torch.allclose(compact, out, atol=1e-5)
    assert count_macs(model, x[:1]).macs_per_clip == pytest.approx(float(model.last_macs[0]), rel=1e-6)


def test_random_drop_draws_per_sample_and_repeats_after_reseed():
    model = StaticTilesSimVP(trained_like(), tiles=5, layout="drop", seed=3).eval()
    x = torch.rand(4, 6, 1, 32, 32)
    first = model(x)
    tiles = model.last_decisions.tiles
    assert (tiles.sum(dim=1) == 5).all() and len({tuple(row.tolist()) for row in tiles}) > 1
    model.reseed()
    assert torch.equal(model(x), first) and torch.equal(model.last_decisions.tiles, tiles)
    with pytest.raises(ConfigError, match="layout"):
        StaticTilesSimVP(trained_like(), tiles=5, layout="ring")
