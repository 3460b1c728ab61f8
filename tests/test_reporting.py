import numpy as np
import pytest

from dance3d.data.moving_digits import CLIP_FACTORS, MovingDigits, MovingDigitsConfig
from dance3d.reporting import paired_accuracy, plot_redundancy, redundancy_spearman, redundancy_table


def test_redundancy_spearman_is_zero_for_equal_costs_and_signed_otherwise():
    redundancy = np.linspace(0.0, 1.0, 800)
    equal = np.full(800, 0.285)
    assert equal.std() > 0  # float rounding: a std test would call these costs different
    assert redundancy_spearman(redundancy, equal) == 0.0
    assert redundancy_spearman(redundancy, 1.0 - redundancy) == pytest.approx(-1.0)
    assert redundancy_spearman(redundancy, redundancy**2) == pytest.approx(1.0)


def _records(correct: list[bool]) -> list[dict]:
    return [{"index": i, "correct": c} for i, c in enumerate(correct)]


def test_paired_accuracy_counts_discordant_clips_and_tests_them():
    a = _records([True] * 90 + [False] * 10)
    b = _records([True] * 80 + [False] * 20)
    result = paired_accuracy(a, b)
    assert result["top1_diff_points"] == pytest.approx(10.0)
    assert (result["only_a_correct"], result["only_b_correct"]) == (10, 0)
    assert result["mcnemar_p"] == pytest.approx(2 * 0.5**10)  # exact binomial, two-sided
    one_clip = paired_accuracy(_records([True] * 100), _records([True] * 99 + [False]))
    assert one_clip["mcnemar_p"] == 1.0  # one discordant clip proves nothing
    assert paired_accuracy(a, a) == {"top1_diff_points": 0.0, "only_a_correct": 0, "only_b_correct": 0,
                                     "mcnemar_p": 1.0}  # fmt: skip


def test_paired_accuracy_rejects_different_clips():
    with pytest.raises(ValueError, match="same clips"):
        paired_accuracy(_records([True, False]), _records([True]))


def test_redundancy_table_and_histograms_cover_every_clip_factor_the_clips_carry(tmp_path):
    config = MovingDigitsConfig(num_frames=8, height=32, width=32, num_test=40, max_moving_distractors=2)
    metas = [MovingDigits("test", config)[i]["meta"] for i in range(40)]
    table = redundancy_table(metas)
    assert list(table.index) == [*CLIP_FACTORS, "redundancy"]
    assert list(table.columns) == ["min", "p10", "p50", "p90", "max"]
    assert table.loc["num_moving_distractors", "max"] == 2
    assert (table["min"] <= table["p50"]).all() and (table["p50"] <= table["max"]).all()
    assert list(redundancy_table([{"redundancy": 0.5, "noise_std": 0.1}]).index) == ["noise_std", "redundancy"]
    path = plot_redundancy(metas, tmp_path / "redundancy.png")
    assert path.stat().st_size > 0
