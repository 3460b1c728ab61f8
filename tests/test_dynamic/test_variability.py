import torch
from dynamic_helpers import CLIP, dynamic_tiny_test

from dance3d.dance.ava import AvaSettings, train_ava
from dance3d.dance.data import ClipCache
from dance3d.dance.variability import cv_across_clips, cv_within_clip, unit_statistics, variability_terms
from dance3d.dynamic.decisions import TileGrid


def test_unit_statistics_shapes_and_tile_means():
    grid = TileGrid.for_map(16, 16, 8)
    inner = torch.zeros(2, 4, 3, 16, 16)
    inner[0, :, :, :8, :8] = 2.0  # only the first tile of clip 0 is active
    stats = unit_statistics(inner, grid)
    assert stats["channel"].shape == (2, 4) and stats["frame"].shape == (2, 3) and stats["tile"].shape == (2, 4)
    assert torch.allclose(stats["tile"][0], torch.tensor([2.0, 0, 0, 0]))


def test_cv_is_scale_free_and_measures_spread():
    stats = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    assert torch.allclose(cv_across_clips(stats), torch.tensor([0.5, 0.5]))
    assert torch.allclose(cv_within_clip(stats), torch.tensor([0.5, 0.5]))
    assert torch.allclose(cv_across_clips(10 * stats), cv_across_clips(stats))
    assert torch.allclose(cv_within_clip(torch.ones(2, 3)), torch.zeros(2))


def test_ava_fine_tune_raises_activation_variability():
    torch.manual_seed(0)
    model = dynamic_tiny_test()
    clips = torch.rand(16, 3, *CLIP).half()
    cache = ClipCache(clips, torch.arange(16) % 8, [{} for _ in range(16)])
    grids = [g.grid for g in model.gated]

    def mean_cv() -> float:
        model.eval()
        model.record_inner(True)
        with torch.no_grad():
            model(clips.float(), decisions=model.full_decisions(16))
        model.record_inner(False)
        return float(torch.stack(list(variability_terms(model.inner_activations(), grids).values())).mean())

    before = mean_cv()
    settings = AvaSettings(epochs=4, batch_size=8, lr=3e-3, variability_weight=5.0, progress=False)
    history = train_ava(model, cache, settings, log=lambda _: None)
    assert len(history) == 4 and all(row["cv"] > 0 for row in history)
    assert mean_cv() > before
