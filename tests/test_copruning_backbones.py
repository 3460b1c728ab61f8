"""What every co-pruned backbone (SimVP, Transformer, ConvLSTM) must do alike: masks that follow the input,
gradients that reach the mask generator through either mask, a mask switched off keeping its axis whole, a sample
with no kept tile costing the generator alone, and compact execution running the MACs it counts."""

from __future__ import annotations

import pytest
import torch
from copruning_helpers import make_copruned, mixed, run

from profiling import count_macs

CHANNEL_THRESHOLDS = {"simvp-test": 0.3, "stformer-test": 0.3, "convlstm-test": 0.5}
"""A channel threshold that prunes some of each random tiny backbone's hidden channels and keeps some."""
BACKBONES = list(CHANNEL_THRESHOLDS)
ONLY = {"data": {"model_mask": False}, "model": {"data_mask": False}}


def make(backbone: str, **settings):  # noqa: ANN201
    return make_copruned(backbone, channel_threshold=CHANNEL_THRESHOLDS[backbone], **settings)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_masks_change_with_the_input(backbone):
    calm = torch.zeros(1, 3, 2, 16, 16)
    storm = torch.zeros(1, 3, 2, 16, 16)
    storm[:, :, :, :8, :8] = torch.randn(1, 3, 2, 8, 8) * 3  # a moving, changing cell in one corner
    x = torch.cat([calm, storm])
    model = mixed(make(backbone), x)
    run(model, x, "simulate")
    tiles, channels = model.last_decisions.tiles, model.last_decisions.channels[0]
    assert not torch.equal(tiles[0], tiles[1])
    assert not torch.equal(channels[0], channels[1])
    assert model.last_mac_fraction[0] != model.last_mac_fraction[1]


@pytest.mark.parametrize("axis", ["data", "model"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_forecast_loss_reaches_the_mask_generator_through_either_mask(backbone, axis):
    """Through the data mask alone, and through the model mask alone (both read the same S)."""
    x, target = torch.randn(4, 3, 2, 16, 16), torch.randn(4, 2, 2, 16, 16)
    model = mixed(make(backbone, **ONLY[axis]), x).train()
    ((model.set_mode("simulate")(x) - target) ** 2).mean().backward()  # the forecast loss alone, no MAC term
    grad = model.generator.features.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("axis", ["data", "model"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_mac_fraction_is_differentiable_in_either_mask(backbone, axis):
    x = torch.randn(2, 3, 2, 16, 16)
    model = mixed(make(backbone, **ONLY[axis]), x).train()
    model(x)
    model.last_mac_fraction.mean().backward()
    assert model.generator.score.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_switching_a_mask_off_keeps_everything_on_its_axis(backbone):
    x = torch.randn(2, 3, 2, 16, 16)
    data_only = mixed(make(backbone, model_mask=False), x)
    run(data_only, x, "simulate")
    assert data_only.last_decisions.channels is None and not data_only.last_decisions.tiles.all()
    model_only = make(backbone, data_mask=False)
    run(model_only, x, "compact")
    assert model_only.last_decisions.tiles.all() and (model_only.last_decisions.channel_fractions() < 1).any()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_a_sample_with_no_kept_tile_costs_the_generator_only(backbone):
    model = make(backbone, data_threshold=0.999)
    x = torch.randn(2, 3, 2, 16, 16)
    for mode in ("simulate", "compact"):
        out = run(model, x, mode)
        assert not model.last_decisions.tiles.any()
        assert torch.equal(out, x[:, -1:].expand_as(out))
    generator_macs = count_macs(model.generator, x[:1]).macs
    assert model.last_macs.tolist() == [generator_macs, generator_macs]
    assert count_macs(model, x[:1]).macs == generator_macs


@pytest.mark.parametrize(("backbone", "tile_size", "shape"), [
    ("simvp-test", 4, (16, 16)), ("simvp-test", 8, (20, 28)), ("stformer-test", 8, (16, 16)),
    ("stformer-test", 8, (20, 28)), ("convlstm-test", 8, (16, 16)), ("convlstm-test", 8, (20, 28)),
])  # fmt: skip
def test_compact_executes_the_counted_macs(backbone, tile_size, shape):
    x = torch.randn(3, 3, 2, *shape)
    model = mixed(make(backbone, tile_size=tile_size), x)
    run(model, x, "compact")
    for sample in x.split(1):
        executed = count_macs(model, sample).macs  # also runs the forward, which records last_macs
        assert 0 < executed < count_macs(model.backbone, sample).macs
        assert model.last_macs.item() == pytest.approx(executed, rel=1e-6)  # float32 fractions of the dense count
