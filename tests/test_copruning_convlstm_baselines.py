"""Baselines of ConvLSTM co-pruning: uniform hidden widths, matched widths, static tile sets."""

from __future__ import annotations

import pytest
import torch

from dance3d.copruning.baselines import (
    StaticTilesConvLSTM,
    match_convlstm_width,
    prune_convlstm,
    static_tiles_model,
    uniform_width_baseline,
)
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import ConvLSTMForecaster
from profiling import count_macs


def trained_like(seed: int = 0, hidden: tuple[int, ...] = (8, 6)) -> ConvLSTMForecaster:
    """A small two-cell ConvLSTM with every weight random (the zero-initialised head too)."""
    torch.manual_seed(seed)
    model = ConvLSTMForecaster(1, t_in=3, t_out=2, hidden=hidden, features=8)
    for parameter in model.head.parameters():
        parameter.data.normal_(0, 0.1)
    return model.eval()


def test_pruning_to_full_width_is_the_dense_model():
    dense = trained_like()
    x = torch.randn(2, 3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(prune_convlstm(dense, hidden=(8, 6))(x), dense(x))


def test_pruning_keeps_the_largest_norm_channels_and_runs():
    dense = trained_like()
    narrow = prune_convlstm(dense, hidden=(3, 2))
    assert [cell.hidden for cell in narrow.cells] == [3, 2]
    assert narrow.cells[1].gates.in_channels == 3 + 2 and narrow.decoder[0][1][0].in_channels == 2
    src = dense.cells[0].gates.weight.detach()
    norms = src.abs().flatten(1).sum(dim=1).reshape(4, 8).sum(dim=0)
    kept = norms.topk(3).indices.sort().values
    rows = torch.cat([part * 8 + kept for part in range(4)])
    assert torch.equal(narrow.cells[0].gates.weight[:, :8], src[rows, :8])  # every encoder channel read
    assert torch.equal(narrow.cells[0].gates.weight[:, 8:], src[rows][:, 8 + kept])  # kept recurrent columns
    x = torch.randn(2, 3, 1, 16, 16)
    with torch.no_grad():
        assert narrow(x).shape == (2, 2, 1, 16, 16)
    assert count_macs(narrow, x[:1]).macs < count_macs(dense, x[:1]).macs
    with pytest.raises(ConfigError, match=r"one per cell, each in \[1, the cell's width \[8, 6\]\], got \[9, 2\]"):
        prune_convlstm(dense, hidden=(9, 2))
    with pytest.raises(ConfigError, match="got \\[4\\]"):
        prune_convlstm(dense, hidden=(4,))


def test_matched_width_counts_what_the_pruned_model_executes():
    dense = trained_like()
    x = torch.randn(1, 3, 1, 16, 16)
    dense_macs = count_macs(dense, x).macs
    choice = match_convlstm_width(dense, x, 0.6 * dense_macs)
    assert choice.macs == count_macs(prune_convlstm(dense, hidden=choice.hidden), x).macs
    others = [count_macs(prune_convlstm(dense, hidden=(n, max(1, round(n / 8 * 6)))), x).macs for n in range(1, 9)]
    assert abs(choice.macs - 0.6 * dense_macs) == min(abs(m - 0.6 * dense_macs) for m in others)
    baseline = uniform_width_baseline(dense, x, 0.6 * dense_macs)
    assert baseline.widths == {"hidden_0": choice.hidden[0], "hidden_1": choice.hidden[1]}
    assert baseline.macs == choice.macs


def test_static_tiles_are_matched_through_the_mac_count_and_compute_only_their_tiles():
    dense = trained_like(hidden=(8,))
    x = torch.randn(2, 3, 1, 32, 32)  # 8 x 8 latent cells, tiles of 2 x 2 cells: 16 tiles
    model = static_tiles_model(dense, target_fraction=0.4, layout="crop", sample=x, tile_size=8)
    assert isinstance(model, StaticTilesConvLSTM) and 1 <= model.tiles <= 16
    fractions = [model.mac_fraction_at(x, k / 16) for k in range(1, 17)]
    assert abs(fractions[model.tiles - 1] - 0.4) == min(abs(f - 0.4) for f in fractions)
    with torch.no_grad():
        simulated = model.set_mode("simulate").eval()(x)
        assert (model.last_decisions.tiles.sum(dim=1) == model.tiles).all()
        assert torch.equal(model.last_decisions.tiles[0], model.last_decisions.tiles[1])  # the same crop
        compact = model.set_mode("compact")(x)
    torch.testing.assert_close(compact, simulated, atol=1e-5, rtol=1e-5)
    assert count_macs(model, x[:1]).macs == model.last_macs.item() < count_macs(dense, x[:1]).macs


def test_random_drop_draws_per_sample_and_repeats_after_reseed():
    dense = trained_like(hidden=(8,))
    x = torch.randn(3, 3, 1, 32, 32)
    model = StaticTilesConvLSTM(dense, tiles=5, layout="drop", tile_size=8, seed=3).eval()
    with torch.no_grad():
        first = model(x)
        tiles = model.last_decisions.tiles.clone()
        assert not (torch.equal(tiles[0], tiles[1]) and torch.equal(tiles[1], tiles[2]))
        again = model.reseed()(x)
    assert torch.equal(model.last_decisions.tiles, tiles) and torch.equal(first, again)
