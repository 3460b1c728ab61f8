"""Baselines of Transformer co-pruning: uniform attention and MLP widths, matched widths, static tile sets."""

from __future__ import annotations

import pytest
import torch

from dance3d.copruning.baselines import (
    StaticTilesSTFormer,
    match_stformer_width,
    prune_stformer,
    static_tiles_model,
    uniform_width_baseline,
)
from dance3d.errors import ConfigError
from dance3d.models.forecast_backbones import SpatioTemporalTransformer
from profiling import count_macs


def trained_like(seed: int = 0) -> SpatioTemporalTransformer:
    """A small Transformer with every weight random (the zero-initialised head too)."""
    torch.manual_seed(seed)
    model = SpatioTemporalTransformer(1, t_in=3, t_out=2, dim=16, depth=2, heads=2)
    for parameter in model.head.parameters():
        parameter.data.normal_(0, 0.1)
    return model.eval()


def test_pruning_to_full_width_is_the_dense_model():
    dense = trained_like()
    x = torch.randn(2, 3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(prune_stformer(dense, head_dim=8, hidden=32)(x), dense(x), atol=1e-6, rtol=1e-5)


def test_pruning_keeps_the_largest_norm_widths_and_runs():
    dense = trained_like()
    narrow = prune_stformer(dense, head_dim=3, hidden=10)
    block, source = narrow.blocks[0], dense.blocks[0]
    assert block.space.qkv.out_features == 3 * 2 * 3 and block.time.proj.in_features == 6
    norms = source.mlp[0].weight.norm(dim=1) * source.mlp[2].weight.norm(dim=0)
    kept = norms.topk(10).indices.sort().values
    assert torch.equal(block.mlp[0].weight, source.mlp[0].weight[kept])
    q_norm = source.space.qkv.weight.reshape(3, 2, 8, 16)[:2].norm(dim=-1).prod(dim=0)  # (heads, head_dim)
    first_head = q_norm[0].topk(3).indices.sort().values
    assert torch.equal(block.space.qkv.weight[:3], source.space.qkv.weight[first_head])
    x = torch.randn(1, 3, 1, 16, 16)
    assert narrow(x).shape == (1, 2, 1, 16, 16)
    assert count_macs(narrow, x).macs < 0.5 * count_macs(dense, x).macs
    with pytest.raises(ConfigError, match="head_dim in \\[1, 8\\] and hidden in \\[1, 32\\], got 9, 4"):
        prune_stformer(dense, head_dim=9, hidden=4)


def test_matched_width_counts_what_the_pruned_model_executes():
    dense = trained_like()
    x = torch.randn(1, 3, 1, 16, 16)
    dense_macs = count_macs(dense, x).macs_per_clip
    target = 0.4 * dense_macs
    choice = match_stformer_width(dense, x, target)
    narrow = prune_stformer(dense, head_dim=choice.head_dim, hidden=choice.hidden)
    assert count_macs(narrow, x).macs_per_clip == choice.macs
    assert abs(choice.macs - target) <= 0.02 * dense_macs
    baseline = uniform_width_baseline(dense, x, target)
    assert baseline.widths == {"head_dim": choice.head_dim, "hidden": choice.hidden} and baseline.macs == choice.macs


def test_static_tiles_are_matched_through_the_token_mac_count():
    """The tile count is chosen on the MAC fraction (quadratic attention included), not the kept share."""
    dense = trained_like()
    x = torch.rand(2, 3, 1, 32, 32)  # 8 x 8 tokens, 16 tiles of 2 x 2 tokens
    model = static_tiles_model(dense, target_fraction=0.25, layout="crop", sample=x).eval()
    out = model(x)
    fractions = {k: model.mac_fraction_at(x, k / 16) for k in range(1, 17)}
    assert model.tiles == min(fractions, key=lambda k: abs(fractions[k] - 0.25))
    assert fractions[model.tiles] < model.tiles / 16  # attention's K^2: fewer MACs than the kept share
    assert model.last_mac_fraction[0].item() == pytest.approx(fractions[model.tiles])
    kept = model.last_decisions.tiles
    assert torch.equal(kept[0], kept[1])
    compact = model.set_mode("compact")(x)
    torch.testing.assert_close(compact, out, atol=1e-5, rtol=1e-5)
    assert count_macs(model, x[:1]).macs == model.last_macs[0].item()


def test_random_drop_draws_per_sample_and_repeats_after_reseed():
    model = StaticTilesSTFormer(trained_like(), tiles=5, layout="drop", seed=3).eval()
    x = torch.rand(4, 3, 1, 32, 32)
    first = model(x)
    tiles = model.last_decisions.tiles
    assert (tiles.sum(dim=1) == 5).all() and len({tuple(row.tolist()) for row in tiles}) > 1
    model.reseed()
    assert torch.equal(model(x), first) and torch.equal(model.last_decisions.tiles, tiles)
