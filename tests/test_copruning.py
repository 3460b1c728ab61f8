"""Co-pruning (Dyna-Pruner) on SimVP: coupled masks, simulate vs compact, MAC accounting, settings."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from copruning_helpers import KEEP_ALL, mixed, run
from copruning_helpers import make_copruned as _make

from dance3d.copruning import CopruneConfig, CoprunedSimVP
from dance3d.copruning.accounting import DenseMacs, GatedLayer, dense_layer_macs, sample_macs
from dance3d.copruning.generator import frame_features
from dance3d.copruning.training import mac_penalty
from dance3d.errors import ConfigError
from dance3d.models import create_model
from profiling import count_macs


def make_copruned(**settings) -> CoprunedSimVP:
    return _make("simvp-test", **settings)


def test_keeping_everything_reproduces_the_dense_model():
    model = make_copruned(**KEEP_ALL)
    x = torch.randn(3, 3, 2, 16, 16)
    with torch.no_grad():
        dense = model.backbone(x)
    assert torch.equal(run(model, x, "simulate"), dense)
    assert model.last_decisions.tiles.all() and all(c.all() for c in model.last_decisions.channels)
    torch.testing.assert_close(run(model, x, "compact"), dense, atol=1e-5, rtol=1e-5)
    dense_macs = count_macs(model.backbone, x[:1]).macs
    assert model.last_macs.tolist() == pytest.approx([dense_macs + model.dense_macs(x)[1]
                                                      + model.channel_decision_macs()] * 3)  # fmt: skip


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


def test_pruned_tiles_forecast_persistence_and_kept_tiles_do_not():
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


def test_mac_accounting_matches_a_hand_count_on_one_layer():
    conv = nn.Conv2d(2, 4, 3, padding=1)
    dense = dense_layer_macs(conv, torch.randn(1, 2, 8, 8))
    assert dense.total == 8 * 8 * 4 * 2 * 9  # output positions x out channels x in channels x kernel
    (name,) = dense.layers
    macs = sample_macs(
        dense,
        {name: GatedLayer(0, "out")},
        position_fraction=torch.tensor([0.25, 1.0, 0.0]),
        channel_fractions=torch.tensor([[0.5], [1.0], [0.5]]),
        generator_macs=10,
        decision_macs=3,
    )
    assert macs.tolist() == [4608 * 0.25 * 0.5 + 13, 4608 + 13, 10]
    both = sample_macs(DenseMacs({"a": 100, "b": 50}), {"a": GatedLayer(0, "both")},
                       position_fraction=torch.tensor([0.5]), channel_fractions=torch.tensor([[0.5]]),
                       generator_macs=0)  # fmt: skip
    assert both.tolist() == [(100 * 0.25 + 50) * 0.5]


def test_the_generator_features_are_the_last_frame_the_mean_change_and_the_std_over_time():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 8, 8)
    features = frame_features(x)
    assert torch.equal(features[:, :3], x[:, -1])
    torch.testing.assert_close(features[:, 3:6], (x[:, 1:] - x[:, :-1]).abs().mean(dim=1))
    torch.testing.assert_close(features[:, 6:], x.std(dim=1, unbiased=False), rtol=1e-5, atol=1e-6)


def test_the_generator_costs_under_two_percent_of_simvp_tiny():
    torch.manual_seed(0)
    model = CoprunedSimVP(create_model("simvp-tiny", num_classes=1), CopruneConfig())
    x = torch.randn(1, 6, 1, 32, 32)
    dense, generator_macs = model.dense_macs(x)
    assert generator_macs + model.channel_decision_macs() <= 0.02 * dense.total


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"target_mac_fraction": 0.0}, "target_mac_fraction must be > 0"),
        ({"target_mac_fraction": 1.5}, "target_mac_fraction must be > 0 and <= 1"),
        ({"tile_size": 6}, "tile_size must be a multiple of 4"),
        ({"tile_size": 2}, "tile_size must be >= 4"),
        ({"data_threshold": 1.0}, "data_threshold must be > 0 and < 1"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"backbone": "convlstm-huge"}, "stformer-test, convlstm-tiny, convlstm-test; got 'convlstm-huge'"),
        ({"backbone": "no-such-model"}, "got 'no-such-model'"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        CopruneConfig(**settings)


def test_an_unknown_execution_mode_is_refused():
    with pytest.raises(ConfigError, match="execution mode must be one of simulate, compact"):
        make_copruned().set_mode("sparse")


def test_the_mac_penalty_drives_the_masks_towards_the_target():
    """A few generator steps on the penalty alone lower the hard MAC fraction from everything-kept."""
    model = make_copruned(channel_threshold=0.3).train()
    x = torch.randn(4, 3, 2, 16, 16)
    optimizer = torch.optim.Adam(model.generator.parameters(), lr=0.05)
    fractions = []
    for _ in range(15):
        model(x)
        fractions.append(float(model.last_mac_fraction.detach().mean()))
        loss = torch.relu(model.last_mac_fraction.mean() - 0.3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert fractions[0] > 0.9  # S starts above the threshold: every tile kept
    assert fractions[-1] < 0.6


def collapsed(model: CoprunedSimVP) -> CoprunedSimVP:
    """Lower the generator's output bias until ``S`` is under the data threshold everywhere: every tile skipped."""
    with torch.no_grad():
        model.generator.score.bias.fill_(-1.0)
    return model


def test_the_forecast_loss_gives_a_skipped_everything_model_almost_no_gradient():
    """The mechanism of the collapse: with every tile skipped at every stage, the forecast loss's
    straight-through gradient on the generator is far smaller than with the tiles kept."""
    x, y = torch.randn(4, 3, 2, 16, 16), torch.randn(4, 2, 2, 16, 16)
    norms = {}
    for name, bias in (("kept", 1.0), ("skipped", -1.0)):
        model = make_copruned().train()
        with torch.no_grad():
            model.generator.score.bias.fill_(bias)
        torch.nn.functional.mse_loss(model(x), y).backward()
        norms[name] = float(model.generator.score.weight.grad.norm())
        expected = 1.0 if name == "kept" else 0.0
        assert float(model.last_decisions.position_fraction().detach().mean()) == pytest.approx(expected)
    assert norms["skipped"] < 0.1 * norms["kept"]


def test_the_mac_penalty_pulls_a_model_that_skips_everything_back_to_its_target():
    """From the persistence state (every tile skipped), forecast loss + MAC penalty raises the MAC
    fraction to near the target; a ceiling-only hinge leaves it at zero."""
    x, y = torch.randn(4, 3, 2, 16, 16), torch.randn(4, 2, 2, 16, 16)
    final = {}
    for name, penalty in (("two-sided", mac_penalty), ("hinge", lambda f, t: torch.relu(f.mean() - t))):
        model = collapsed(make_copruned()).train()
        optimizer = torch.optim.Adam(model.generator.parameters(), lr=0.05)
        fractions = []
        for _ in range(20):
            prediction = model(x)
            fractions.append(float(model.last_mac_fraction.detach().mean()))
            loss = torch.nn.functional.mse_loss(prediction, y) + 2.0 * penalty(model.last_mac_fraction, 0.5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert fractions[0] < 0.05  # collapsed: only the generator's own MACs
        final[name] = fractions[-1]
    assert final["hinge"] < 0.05
    assert 0.25 < final["two-sided"] < 0.75


def test_the_mac_penalty_is_the_distance_to_the_target_on_both_sides():
    assert float(mac_penalty(torch.tensor([0.1, 0.3]), 0.5)) == pytest.approx(0.3)
    assert float(mac_penalty(torch.tensor([0.7, 0.9]), 0.5)) == pytest.approx(0.3)
