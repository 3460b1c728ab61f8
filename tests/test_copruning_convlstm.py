"""Co-pruning on the ConvLSTM: kept tiles and hidden channels, simulate vs compact, persistence, MACs, settings."""

from __future__ import annotations

import pytest
import torch
from copruning_helpers import KEEP_ALL, mixed, run
from copruning_helpers import make_copruned as _make

from dance3d.copruning import CopruneConfig
from dance3d.copruning.convlstm import CoprunedConvLSTM
from dance3d.errors import ConfigError, DataError
from dance3d.models import create_model
from profiling import count_macs


def make_copruned(**settings) -> CoprunedConvLSTM:
    return _make("convlstm-test", **settings)


def test_the_dispatch_picks_the_convlstm_wrapper():
    assert isinstance(make_copruned(), CoprunedConvLSTM)


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
    first_step_recurrent = 4 * 5 * (9 * 4 * 8 * 8)  # 20 latent positions; a zero state the compact path skips
    assert model.costs(x)[0].first_step_recurrent() == first_step_recurrent
    assert model.last_macs.tolist() == [dense_macs - first_step_recurrent + generator_macs] * 3


@pytest.mark.parametrize(("shape", "tile_size", "channel_threshold"), [((16, 16), 4, 0.6), ((16, 32), 8, 0.5),
                                                                        ((20, 28), 8, 0.5)])  # fmt: skip
def test_compact_equals_simulate_with_mixed_masks(shape, tile_size, channel_threshold):
    x = torch.randn(4, 3, 2, *shape)
    model = mixed(make_copruned(tile_size=tile_size, channel_threshold=channel_threshold), x)
    simulated = run(model, x, "simulate")
    decisions = model.last_decisions
    kept = decisions.tiles.sum(dim=1)
    assert (kept > 0).any() and (kept < decisions.tiles.shape[1]).any(), "the masks must be mixed for this test"
    assert (decisions.channel_fractions() < 1).any(), "some hidden channels must be pruned for this test"
    compact = run(model, x, "compact")
    torch.testing.assert_close(compact, simulated, atol=1e-5, rtol=1e-5)
    assert torch.equal(model.last_decisions.tiles, decisions.tiles)
    for a, b in zip(model.last_decisions.channels, decisions.channels, strict=True):
        assert torch.equal(a[kept > 0], b[kept > 0])


def test_pruned_positions_forecast_persistence_at_every_step_and_kept_ones_do_not():
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


def test_pruned_hidden_channels_do_not_reach_the_forecast():
    """Negating the recurrent columns and the decoder's input columns of a sample's pruned channels (which
    keeps the weight norms, so the decisions) leaves its forecast unchanged: their state stays 0; negating a
    kept channel's changes it."""
    x = torch.randn(1, 3, 2, 16, 16)
    model = make_copruned(data_threshold=1e-6, channel_threshold=0.6)
    reference = run(model, x, "simulate")
    kept = model.last_decisions.channels[0][0].bool()
    assert kept.any() and (~kept).any()
    cell = model.cells[0]
    for channels, changes in ((~kept).nonzero().flatten(), False), (kept.nonzero().flatten()[:1], True):
        changed = make_copruned(data_threshold=1e-6, channel_threshold=0.6)
        with torch.no_grad():
            changed.cells[0].gates.weight[:, cell.gates.in_channels - cell.hidden + channels] *= -1
            changed.backbone.decoder[0][1][0].weight[:, channels] *= -1
        for mode in ("simulate", "compact"):
            out = run(changed, x, mode)
            assert torch.equal(changed.last_decisions.channels[0][0].bool(), kept)
            assert torch.allclose(out, reference, atol=1e-5) != changes, (mode, changes)


def test_mac_accounting_matches_a_hand_count_on_one_cell():
    """convlstm-test: 2 channels -> encoder 4, 8 features -> one cell of 8 -> decoder 8, 4 -> head 2; 3 -> 2 frames,
    so 4 steps (3 inputs, 1 fed-back prediction) and 2 decoded outputs; 16 x 16 pixels = 16 latent positions."""
    model = make_copruned()
    x = torch.randn(1, 3, 2, 16, 16)
    cost, dense, _ = model.costs(x)
    encoder = 4 * (2 * 9 * 4) + 4 * 9 * 8  # stride-2 conv at the 4 half-resolution positions, then 4 -> 8 channels
    decoder_per_channel = 4 * 9 * 8  # first decoder conv at 4 half-resolution positions, per kept input channel
    decoder_fixed = 16 * (8 * 9 * 4 + 4 * 2)  # second decoder conv and the 1x1 head at 16 full-resolution positions
    assert (cost.positions, cost.encoded_frames, cost.outputs) == (16, 4, 2)
    assert (cost.encoder_per_position, cost.decoder_per_channel, cost.decoder_fixed) == (
        encoder, decoder_per_channel, decoder_fixed)  # fmt: skip

    def hand(kept_positions: int, kept: int) -> int:
        first = 9 * 4 * 8 * 8  # every gate row from the 8 input columns (the state is zero)
        later = 3 * 9 * 4 * kept * (8 + kept)  # the kept channels' rows from the input and kept recurrent columns
        return kept_positions * (4 * encoder + first + later + 2 * (decoder_per_channel * kept + decoder_fixed))

    assert dense == hand(16, 8) + 16 * 9 * 4 * 8 * 8  # the dense first step also multiplies the zero state
    macs = cost.macs(torch.tensor([16.0, 4.0, 0.0]), [torch.tensor([8.0, 2.0, 5.0])])
    assert macs.tolist() == [hand(16, 8), hand(4, 2), 0]


def test_bad_settings_are_refused_with_a_clear_error():
    with pytest.raises(ConfigError, match="CoprunedConvLSTM wraps a ConvLSTMForecaster, got SimVP"):
        CoprunedConvLSTM(create_model("simvp-test", num_classes=1), CopruneConfig(backbone="convlstm-test"))
    with pytest.raises(ConfigError, match="got 'convlstm-huge'"):
        CopruneConfig(backbone="convlstm-huge")
    with pytest.raises(ConfigError, match="copruning.tile_size must be a multiple of 4"):
        CopruneConfig(backbone="convlstm-test", tile_size=6)
    model = make_copruned()
    with pytest.raises(ConfigError, match="execution mode must be one of simulate, compact"):
        model.set_mode("sparse")
    with pytest.raises(DataError, match=r"expects inputs of shape \(batch, 3, 2, H, W\)"):
        run(model, torch.randn(1, 4, 2, 16, 16), "compact")
