import numpy as np
import pytest
import torch

from controllers import keep_counts, keep_mask_host, level_counts, ste_mask, topk_mask


def test_level_counts_round_channels_up_to_multiples():
    assert level_counts(64, (0.25, 0.5, 0.75, 1.0), multiple=16) == (16, 32, 48, 64)
    assert level_counts(32, (0.25, 0.5, 0.75, 1.0), multiple=16) == (16, 32)
    assert level_counts(16, (0.25, 0.5), multiple=1) == (4, 8, 16)
    with pytest.raises(ValueError):
        level_counts(8, (0.0,))


def test_keep_counts_round_wanted_up_to_a_level():
    logits = torch.tensor([[1.0, -1, -1, -1, -1, -1, -1, -1], [1.0, 1, 1, -1, -1, -1, -1, -1], [-1.0] * 8])
    assert keep_counts(logits, (2, 4, 8)).tolist() == [2, 4, 2]


def test_topk_mask_keeps_largest_logits():
    logits = torch.tensor([[0.1, 0.9, -0.3, 0.5]])
    assert topk_mask(logits, torch.tensor([2])).tolist() == [[0.0, 1.0, 0.0, 1.0]]


def test_host_keep_mask_matches_the_tensor_decision_including_ties():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 12, generator=generator).round(decimals=0)  # many ties, some rows all negative
    levels = (3, 6, 9, 12)
    expected = topk_mask(logits, keep_counts(logits, levels)).bool().numpy()
    got = keep_mask_host(logits.numpy(), levels)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, expected)
    assert set(got.sum(axis=1).tolist()) <= set(levels)


def test_ste_mask_is_hard_forward_and_sigmoid_backward():
    logits = torch.tensor([[0.0, 2.0]], requires_grad=True)
    hard = torch.tensor([[0.0, 1.0]])
    mask = ste_mask(hard, logits)
    assert torch.equal(mask.detach(), hard)
    mask.sum().backward()
    expected = torch.sigmoid(logits.detach()) * (1 - torch.sigmoid(logits.detach()))
    assert torch.allclose(logits.grad, expected)


def test_controllers_package_is_a_leaf():
    import subprocess
    import sys

    code = (
        "import sys, controllers, controllers.stem_controller, controllers.primitives\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dance3d', 'profiling', 'studies')]\n"
        "assert not bad, bad\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
