"""Forecasting backbones: shapes for any C/H/W, persistence at start, clear shape errors, overfitting."""

import pytest
import torch
import torch.nn.functional as F

from dance3d.data.forecast.synthetic import SyntheticForecast, default_config
from dance3d.errors import ConfigError, DataError
from dance3d.models import create_model, list_models, model_info

TEST_BACKBONES = ["simvp-test", "convlstm-test", "stformer-test"]


def test_zoo_lists_the_forecasters_with_tiny_and_test_variants():
    names = list_models("forecast")
    for family in ("simvp", "convlstm", "stformer"):
        assert f"{family}-tiny" in names and f"{family}-test" in names


@pytest.mark.parametrize("name", TEST_BACKBONES)
@pytest.mark.parametrize(("channels", "height", "width", "t_in", "t_out"), [(1, 16, 16, 4, 3), (2, 18, 30, 3, 5)])
def test_output_shape_and_persistence_at_start(name, channels, height, width, t_in, t_out):
    model = create_model(name, num_classes=channels, t_in=t_in, t_out=t_out).eval()
    x = torch.randn(2, t_in, channels, height, width)
    y = model(x)
    assert y.shape == (2, t_out, channels, height, width)
    torch.testing.assert_close(y, x[:, -1:].expand_as(y))  # zero-initialised heads: last frame repeated


@pytest.mark.parametrize("name", ["simvp-tiny", "convlstm-tiny", "stformer-tiny"])
def test_tiny_backbones_stay_small(name):
    model = create_model(name, num_classes=2)
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    assert model_info(name).family == "forecast"


@pytest.mark.parametrize("name", TEST_BACKBONES)
def test_wrong_input_shape_names_the_expected_one(name):
    model = create_model(name, num_classes=2, t_in=4, t_out=2)
    with pytest.raises(DataError, match=r"\(batch, 4, 2, H, W\)"):
        model(torch.randn(1, 3, 2, 16, 16))
    with pytest.raises(DataError, match="got \\(4, 2, 16, 16\\)"):
        model(torch.randn(4, 2, 16, 16))


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'simvp-huge'.*simvp-tiny"):
        create_model("simvp-huge", num_classes=1)


@pytest.mark.parametrize("name", TEST_BACKBONES)
def test_each_backbone_overfits_eight_samples(name):
    torch.set_num_threads(1)  # small ops: one thread is fastest, and no slower on a busy machine
    torch.manual_seed(0)
    dataset = SyntheticForecast("train", default_config("storms", t_in=4, t_out=2, height=16, width=16,
                                                      num_train=8, num_val=1, num_test=1))  # fmt: skip
    inputs = torch.stack([dataset[i]["inputs"] for i in range(8)])
    targets = torch.stack([dataset[i]["targets"] for i in range(8)])
    model = create_model(name, num_classes=1, t_in=4, t_out=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    persistence = F.mse_loss(inputs[:, -1:].expand_as(targets), targets).item()
    for _ in range(80):
        loss = F.mse_loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * persistence


@pytest.mark.parametrize("name", TEST_BACKBONES)
def test_mac_count_is_the_same_in_inference_mode(name):
    """No fused inference fast path hides work from the MAC counter (e.g. nn.MultiheadAttention's)."""
    from profiling import count_macs

    model = create_model(name, num_classes=1, t_in=4, t_out=2)
    x = torch.randn(1, 4, 1, 16, 16)
    training = count_macs(model.train(), x).macs_per_clip
    assert training > 0 and count_macs(model.eval(), x).macs_per_clip == training
