"""Co-pruning on the spatio-temporal Transformer: token dropping, simulate vs compact, MACs, settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from copruning_helpers import KEEP_ALL, mixed, run
from copruning_helpers import make_copruned as _make

from dance3d.copruning import CopruneConfig, CoprunedSTFormer, coprune_model
from dance3d.copruning.baselines import StaticTilesSTFormer
from dance3d.copruning.token_compact import KeptTokens
from dance3d.copruning.transformer import masked_attention
from dance3d.errors import ConfigError
from dance3d.models import create_model
from dance3d.models.forecast_backbones import SpatioTemporalTransformer
from profiling import count_macs


def make_copruned(**settings) -> CoprunedSTFormer:
    return _make("stformer-test", **settings)


ATTENTION_OPS = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                 "_scaled_dot_product_efficient_attention")  # fmt: skip


def test_the_dispatch_picks_the_token_dropping_wrapper():
    assert isinstance(make_copruned(), CoprunedSTFormer)


def test_keeping_everything_reproduces_the_dense_model():
    model = make_copruned(**KEEP_ALL)
    x = torch.randn(3, 3, 2, 16, 20)
    with torch.no_grad():
        dense = model.backbone(x)
    assert torch.equal(run(model, x, "simulate"), dense)
    assert model.last_decisions.tiles.all() and all(c.all() for c in model.last_decisions.channels)
    torch.testing.assert_close(run(model, x, "compact"), dense, atol=1e-5, rtol=1e-5)
    generator_macs = count_macs(model.generator, x[:1]).macs
    dense_macs = count_macs(model.backbone, x[:1]).macs
    assert model.last_macs.tolist() == [dense_macs + generator_macs + model.channel_decision_macs()] * 3


@pytest.mark.parametrize(("shape", "tile_size"), [((16, 16), 4), ((16, 32), 8), ((20, 28), 8)])
def test_compact_equals_simulate_with_mixed_masks(shape, tile_size):
    x = torch.randn(4, 3, 2, *shape)
    model = mixed(make_copruned(tile_size=tile_size, channel_threshold=0.3), x)
    simulated = run(model, x, "simulate")
    decisions = model.last_decisions
    kept = decisions.tiles.sum(dim=1)
    assert (kept > 0).any() and (kept < decisions.tiles.shape[1]).any(), "the masks must be mixed for this test"
    assert (decisions.channel_fractions() < 1).any()
    compact = run(model, x, "compact")
    torch.testing.assert_close(compact, simulated, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.last_decisions.tiles, decisions.tiles)
    for a, b in zip(model.last_decisions.channels, decisions.channels, strict=True):
        assert torch.equal(a[kept > 0], b[kept > 0])


def test_a_sample_forecasts_the_same_in_a_batch_as_alone():
    """The batch runs together (kept counts differ, one sample keeps nothing): each sample's forecast and
    channel masks equal those of the sample run alone."""
    x = torch.randn(5, 3, 2, 16, 20)
    x[2] = 0.0  # an input with nothing in it: the generator's S is flat, the sample keeps no tile
    model = mixed(make_copruned(channel_threshold=0.3), x).set_mode("compact")
    together = run(model, x, "compact")
    decisions = model.last_decisions
    kept = decisions.tiles.sum(dim=1)
    assert len(set(kept.tolist())) > 2 and kept[2] == 0, "the kept counts must differ for this test"
    for b in range(len(x)):
        alone = run(model, x[b : b + 1], "compact")
        torch.testing.assert_close(together[b : b + 1], alone, atol=1e-5, rtol=1e-5)
        for batch_mask, own in zip(decisions.channels, model.last_decisions.channels, strict=True):
            assert torch.equal(batch_mask[b : b + 1], own)
    assert torch.equal(together[2], x[2, -1:].expand(2, -1, -1, -1)), "a sample keeping nothing forecasts persistence"
    with torch.no_grad():
        executed = count_macs(model, x).macs
    assert executed == model.last_macs.sum().item()  # the batch executes exactly the MACs counted per sample


def test_kept_tokens_lay_the_rows_out_sample_by_sample():
    keep = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    kept = KeptTokens.of(keep)
    assert kept.samples.tolist() == [0, 0, 2, 2, 2] and kept.positions.tolist() == [1, 2, 0, 1, 2]
    assert kept.computed.tolist() == [0, 2] and kept.counts == [2, 3] and not kept.uniform
    assert kept.owner.tolist() == [0, 0, 1, 1, 1]
    assert kept.flat(4).tolist() == [1, 2, 8, 9, 10]
    assert KeptTokens.of(keep[[0, 0]]).uniform and not KeptTokens.of(keep[[1]]).counts


def test_a_batch_keeping_no_token_forecasts_persistence():
    x = torch.randn(2, 3, 2, 16, 16)
    model = make_copruned(data_threshold=1 - 1e-7)
    out = run(model, x, "compact")
    assert torch.equal(out, x[:, -1:].expand_as(out))
    assert not model.last_decisions.tiles.any() and not any(c.any() for c in model.last_decisions.channels)


def test_dropped_positions_forecast_persistence_and_kept_ones_do_not():
    x = torch.randn(2, 3, 2, 16, 16)
    model = mixed(make_copruned(), x)
    for mode in ("simulate", "compact"):
        out = run(model, x, mode)
        grid, tiles = model.last_decisions.grid, model.last_decisions.tiles
        positions = grid.expand(tiles).repeat_interleave(4, 1).repeat_interleave(4, 2).bool()  # (B, 16, 16)
        assert (~positions).any() and positions.any()
        persistence = x[:, -1:].expand_as(out)
        skipped = ~positions[:, None, None].expand_as(out)
        assert torch.equal(out[skipped], persistence[skipped])
        assert not torch.allclose(out[~skipped], persistence[~skipped])


def test_kept_tokens_attend_only_to_kept_tokens():
    """The masked attention over all tokens equals plain attention over the kept ones, and the dropped
    tokens' values do not reach the kept ones."""
    torch.manual_seed(0)
    attention = create_model("stformer-test", num_classes=1).blocks[0].space
    x = torch.randn(2, 10, 16)
    keep = torch.tensor([[1, 0, 1, 1, 0, 0, 1, 0, 1, 1], [0, 1, 0, 0, 0, 1, 1, 1, 0, 0]], dtype=torch.float)
    with torch.no_grad():
        masked = masked_attention(attention, x, keep)
        changed = x.clone()
        changed[keep == 0] = torch.randn(int((keep == 0).sum()), 16) * 10
        masked_changed = masked_attention(attention, changed, keep)
        for b in range(2):
            idx = keep[b].nonzero().flatten()
            alone = attention(x[b : b + 1, idx])
            torch.testing.assert_close(masked[b : b + 1, idx], alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(masked[keep == 1], masked_changed[keep == 1], atol=1e-6, rtol=1e-5)


def test_mac_accounting_matches_a_hand_count_on_one_block():
    """stformer-test has one block: width 16, 2 heads, MLP 32, patch 4; 2 channels, 3 -> 2 frames."""
    model = make_copruned(channel_threshold=0.3)
    x = torch.randn(1, 3, 2, 16, 16)  # 4 x 4 = 16 tokens per frame
    cost, dense, _ = model.costs(x)
    t_in, t_out, d, hidden, values = 3, 2, 16, 32, 2 * 4 * 4
    per_token = (t_in * values * d  # patch embedding
                 + 2 * t_in * 4 * d * d  # q/k/v and output projections, space and time
                 + 2 * t_in * t_in * d  # time attention
                 + d * t_in * t_out + t_out * d * values)  # to_future, head  # fmt: skip
    mlp = 2 * t_in * d * hidden
    pair = 2 * t_in * d  # space attention per pair of kept tokens
    assert (cost.tokens, cost.per_token, cost.mlp_per_token, cost.per_token_pair) == (16, per_token, (mlp,), pair)
    assert dense == cost.dense == 16 * (per_token + mlp) + 16**2 * pair
    macs = cost.macs(torch.tensor([16.0, 4.0, 0.0]), torch.tensor([[1.0], [0.25], [0.5]]))
    assert macs.tolist() == [dense, 4 * (per_token + 0.25 * mlp) + 16 * pair, 0]


def test_token_dropping_shrinks_the_attention_quadratically():
    """The compact forward's counted MACs fall with the kept tiles; its space attention as K^2."""
    torch.manual_seed(0)
    dense = create_model("stformer-test", num_classes=1, t_in=3, t_out=2).eval()
    x = torch.randn(1, 3, 1, 16, 16)  # 16 tokens, tiles of 2 x 2 tokens: 4 tiles
    total, attention = [], []
    for tiles in range(1, 5):
        model = StaticTilesSTFormer(dense, tiles=tiles, layout="crop").set_mode("compact")
        counted = count_macs(model, x)
        total.append(counted.macs)
        attention.append(sum(op.macs for op in counted.operators if op.op in ATTENTION_OPS))
        kept = 4 * tiles
        space, time = 3 * kept * kept * 2 * 16, kept * 3 * 3 * 2 * 16
        assert attention[-1] == space + time
        assert counted.macs == model.last_macs.item()
    assert total == sorted(total) and len(set(total)) == 4
    assert total[-1] == count_macs(dense, x).macs


def test_a_patch_size_other_than_4_is_refused():
    dense = SpatioTemporalTransformer(1, t_in=3, t_out=2, patch=8, dim=16, depth=1, heads=2)
    with pytest.raises(ConfigError, match="needs patch size 4 .*got patch 8"):
        coprune_model(dense, CopruneConfig(backbone="stformer-test"))


def test_a_forecaster_co_pruning_is_not_built_for_is_refused_with_a_clear_error():
    with pytest.raises(ConfigError, match="the spatio-temporal Transformer and the ConvLSTM, not Conv2d"):
        coprune_model(nn.Conv2d(1, 1, 3), CopruneConfig())
