"""Taylor importance of channel groups and blocks, and the latency targets."""

import pytest
import torch
from mdp_helpers import randomize_bn

from dance3d.errors import ConfigError
from dance3d.mdp.graph import extract_structure
from dance3d.mdp.importance import taylor_importance
from dance3d.mdp.targets import budget_ms
from dance3d.models import create_model


def test_taylor_importance_scores_dead_channels_zero_and_ranks_the_rest():
    torch.manual_seed(0)
    model = randomize_bn(create_model("tiny-test", num_classes=8)).eval()
    with torch.no_grad():
        model.blocks[0].bn_a.weight[3] = 0.0
        model.blocks[0].bn_a.bias[3] = 0.0
    structure = extract_structure(model, (3, 8, 32, 32))
    batches = [(torch.randn(4, 3, 8, 32, 32), torch.randint(0, 8, (4,))) for _ in range(2)]
    importance = taylor_importance(structure, batches, progress=False)
    scores = importance.channels["blocks.0.conv_a"]
    assert scores[3] == 0 and (scores[torch.arange(len(scores)) != 3] > 0).all()
    keep = importance.keep_indices({"blocks.0.conv_a": 7})["blocks.0.conv_a"]
    assert 3 not in keep.tolist() and keep.tolist() == sorted(keep.tolist())
    assert set(importance.blocks) == set(structure.blocks) and all(v > 0 for v in importance.blocks.values())
    assert importance.kept_value("blocks.0.conv_a", 8) == pytest.approx(float(scores.sum()))
    assert all(p.grad is None for p in model.parameters())  # gradients cleaned up


def test_latency_targets():
    assert budget_ms("0.5", 20.0) == 10.0
    assert budget_ms("1", 20.0) == 20.0
    assert budget_ms("12ms", 20.0) == 12.0
    assert budget_ms(" 7.5MS ", 20.0) == 7.5


@pytest.mark.parametrize(
    ("target", "message"),
    [("0", r"must be in \(0, 1\]"), ("-0.2", r"must be in \(0, 1\]"), ("1.5", "absolute target with a unit"),
     ("0ms", "> 0 ms"), ("fast", "fraction of the dense latency")],
)  # fmt: skip
def test_bad_targets_are_clear_errors(target, message):
    with pytest.raises(ConfigError, match=message):
        budget_ms(target, 20.0)
