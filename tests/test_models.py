import pytest
import torch

from dance3d.errors import CheckpointError, ConfigError
from dance3d.models import create_model, list_models, model_info
from dance3d.models.weights import load_pretrained

# Small clips each family accepts; heavyweight models are marked slow.
FAST = {
    "tiny": (8, 32, 32),
    "tiny-deep": (8, 32, 32),
    "tiny-test": (8, 32, 32),
    "tiny-test-deep": (8, 32, 32),
    "r3d_18": (4, 32, 32),
    "mc3_18": (4, 32, 32),
    "r2plus1d_18": (4, 32, 32),
    "x3d_xs": (4, 32, 32),
    "x3d_s": (4, 32, 32),
}
SLOW = {"s3d": (8, 64, 64), "x3d_m": (4, 64, 64), "slow_r50": (4, 64, 64), "r2plus1d_r50": (4, 64, 64)}


def test_registry_lists_every_family():
    names = set(list_models())
    assert set(FAST) | set(SLOW) == names - set(list_models("forecast"))  # forecasters: tests/test_forecast
    assert set(list_models("torchvision")) == {"r3d_18", "mc3_18", "r2plus1d_18", "s3d"}
    assert {"x3d_xs", "x3d_s", "x3d_m", "slow_r50", "r2plus1d_r50"} == set(list_models("pytorchvideo"))


def _forward(name: str, clip: tuple[int, int, int]) -> torch.Tensor:
    model = create_model(name, num_classes=5).eval()
    with torch.no_grad():
        return model(torch.randn(2, 3, *clip))


@pytest.mark.parametrize("name", sorted(FAST))
def test_model_builds_and_returns_logits(name):
    logits = _forward(name, FAST[name])
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    # Logits, not probabilities: a softmax head would give rows summing to one.
    assert not torch.allclose(logits.sum(1), torch.ones(2), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_large_model_builds_and_returns_logits(name):
    logits = _forward(name, SLOW[name])
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()


def test_unknown_model_and_bad_options():
    with pytest.raises(ConfigError, match="unknown model 'r4d'"):
        create_model("r4d", num_classes=3)
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        create_model("tiny", num_classes=0)
    with pytest.raises(ConfigError, match="does not take these options"):
        create_model("r3d_18", num_classes=3, depth=5)
    with pytest.raises(ConfigError, match="bad option value.*inner_multiplier must be > 0"):
        create_model("tiny", num_classes=3, inner_multiplier=0)
    assert model_info("tiny").default_clip == (16, 64, 64)


def test_pretrained_round_trip(tmp_path):
    source = create_model("tiny-test", num_classes=4)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pt")
    loaded = create_model("tiny-test", num_classes=4, pretrained=str(tmp_path / "w.pt"))
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_pretrained_mismatch_is_explained(tmp_path):
    torch.save(create_model("tiny-test", num_classes=4).state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"do not match the model: 2 shape \(e.g. head.weight"):
        create_model("tiny-test", num_classes=7, pretrained=str(tmp_path / "w.pt"))
    model = create_model("tiny-test", num_classes=7)
    load_pretrained(model, tmp_path / "w.pt", skip_mismatched=("head.",))  # new head, rest loaded
    with pytest.raises(CheckpointError, match="weights file not found"):
        create_model("tiny-test", num_classes=4, pretrained=str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        create_model("tiny-test", num_classes=4, pretrained=str(tmp_path / "junk.pt"))
