"""The DANCE comparison rules on small synthetic per-clip records: pairing, McNemar p, target booleans."""

from math import comb

import pytest

from dance3d.dance.compare import (
    MAC_MATCH,
    ava_helps,
    beats_static_baselines,
    dance_targets,
    paired_comparisons,
    static_kinds,
)
from dance3d.dance.experiment import ComparisonSettings


def clips(correct: list[bool]) -> list[dict]:
    return [{"index": i, "correct": c} for i, c in enumerate(correct)]


def two_models(only_a: int, only_b: int, both: int, neither: int) -> tuple[list[dict], list[dict]]:
    """Records of models a and b with the given counts of clips only a / only b / both / neither get right."""
    a = [True] * only_a + [False] * only_b + [True] * both + [False] * neither
    b = [False] * only_a + [True] * only_b + [True] * both + [False] * neither
    return clips(a), clips(b)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p by hand: twice the binomial(n, 1/2) tail of the smaller count, capped at 1."""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


@pytest.mark.parametrize(("only_a", "only_b"), [(8, 2), (5, 0), (3, 3), (0, 7)])
def test_mcnemar_p_matches_the_hand_computed_binomial_tail(only_a, only_b):
    a, b = two_models(only_a, only_b, both=10, neither=4)
    records = {"dance": a, "dense": b}
    gap = paired_comparisons(records, static_targets=())["dance_vs_dense"]
    assert gap["only_a_correct"] == only_a and gap["only_b_correct"] == only_b
    assert gap["mcnemar_p"] == pytest.approx(mcnemar_exact(only_a, only_b))
    assert gap["top1_diff_points"] == pytest.approx(100 * (only_a - only_b) / (only_a + only_b + 14))


def test_mcnemar_p_of_8_against_2_is_112_over_1024():
    a, b = two_models(8, 2, both=0, neither=0)
    assert paired_comparisons({"dance": a, "dense": b}, ())["dance_vs_dense"]["mcnemar_p"] == pytest.approx(112 / 1024)


def test_pairs_each_run_with_its_own_static_baselines_and_retargeted_models_with_their_reference():
    record = clips([True, False, True])
    names = [
        "dense",
        "dance",
        "dance_without_ava",
        "dance_target_0.2",
        "static_at_dance",
        "static_frames_at_dance",
        "static_unrounded_at_dance",
        "static_at_dance_target_0.2",
        "dance_retargeted_to_static_at_dance",
        "dance_retargeted_to_dance_target_0.2",
    ]
    paired = paired_comparisons({name: record for name in names}, ("dance", "dance_target_0.2"))
    assert set(paired) == {
        "dance_vs_dense",
        "dance_vs_dance_without_ava",
        "dance_vs_static_at_dance",
        "dance_vs_static_frames_at_dance",
        "dance_vs_static_unrounded_at_dance",
        "dance_target_0.2_vs_static_at_dance_target_0.2",
        "dance_retargeted_to_static_at_dance_vs_static_at_dance",
        "dance_retargeted_to_dance_target_0.2_vs_dance_target_0.2",
    }


def test_pairs_with_a_missing_model_are_left_out():
    record = clips([True, False])
    assert set(paired_comparisons({"dance": record, "static_at_dance": record}, ("dance",))) == {
        "dance_vs_static_at_dance"
    }


def test_models_on_different_clips_are_refused():
    with pytest.raises(ValueError, match="same clips"):
        paired_comparisons({"dance": clips([True]), "dense": clips([True, False])}, ())


def run(top1: float, macs: float) -> dict:
    return {"top1": top1, "mean_mac_fraction": macs}


def test_a_baseline_counts_only_where_it_spends_at_least_the_runs_macs_less_the_match_margin():
    runs = {"dance": run(0.90, 0.40), "static_at_dance": run(0.85, 0.39)}
    cheaper = 0.40 - MAC_MATCH - 0.005  # cannot reach DANCE's MACs: left out, however accurate
    runs["static_frames_at_dance"] = run(0.99, cheaper)
    assert beats_static_baselines(runs, "dance", ["static", "static_frames"])
    runs["static_frames_at_dance"] = run(0.99, 0.40 - MAC_MATCH + 0.005)  # within the margin: counts
    assert not beats_static_baselines(runs, "dance", ["static", "static_frames"])
    runs["static_frames_at_dance"] = run(0.99, 0.60)  # spends more: counts
    assert not beats_static_baselines(runs, "dance", ["static", "static_frames"])


def test_a_tie_or_no_matched_baseline_is_not_a_win():
    runs = {"dance": run(0.90, 0.40), "static_at_dance": run(0.90, 0.40)}
    assert not beats_static_baselines(runs, "dance", ["static"])
    runs["static_at_dance"] = run(0.50, 0.20)
    assert not beats_static_baselines(runs, "dance", ["static"])


def test_ava_helps_when_no_worse_on_either_axis_and_better_on_one():
    assert ava_helps(run(0.91, 0.40), run(0.90, 0.40))
    assert ava_helps(run(0.90, 0.38), run(0.90, 0.40))
    assert not ava_helps(run(0.90, 0.395), run(0.90, 0.40))  # fewer MACs by less than 1 point
    assert not ava_helps(run(0.95, 0.41), run(0.90, 0.40))  # more accurate but dearer
    assert not ava_helps(run(0.90, 0.40), run(0.90, 0.40))


def dance_run(top1: float, macs: float, *, spread: float, rho: float) -> dict:
    return {
        **run(top1, macs),
        "mac_reduction": 1 - macs,
        "mac_fraction_p90_minus_p10": spread,
        "spearman_mac_fraction_vs_redundancy": rho,
    }


def test_target_booleans():
    runs = {
        "dance": dance_run(0.995, 0.40, spread=0.15, rho=-0.5),
        "dance_without_ava": run(0.98, 0.40),
        "dance_target_0.2": run(0.90, 0.20),
        "static_at_dance": run(0.97, 0.41),
        "static_at_dance_target_0.2": run(0.95, 0.21),
    }
    targets = dance_targets(runs, dense_top1=1.0, static_targets=("dance", "dance_target_0.2"), kinds=["static"])
    assert targets == {
        "top1_drop_at_most_1_point": True,
        "mac_reduction_at_least_60pct": True,
        "spread_p90_minus_p10_at_least_15_points": True,
        "abs_spearman_at_least_0.5": True,
        "dance_beats_static_baseline_at_dance": True,
        "dance_beats_static_baseline_at_dance_target_0.2": False,
        "dance_beats_static_baseline": False,
        "ava_helps": True,
    }
    runs["dance"] = dance_run(0.985, 0.41, spread=0.149, rho=0.49)
    targets = dance_targets(runs, dense_top1=1.0, static_targets=("dance",), kinds=["static"])
    assert targets["dance_beats_static_baseline_at_dance"] and targets["dance_beats_static_baseline"]
    assert not any(v for k, v in targets.items() if not k.startswith("dance_beats_static_baseline"))
    assert all(isinstance(v, bool) for v in targets.values())


def test_static_kinds_round_like_dance_except_the_unrounded_reference():
    kinds = static_kinds(frame_keep=0.5, extra_frame_keeps=(0.25,), channel_multiple=16)
    assert [(k.name, k.frame_keep_fraction, k.channel_multiple, k.rounded) for k in kinds] == [
        ("static", 1.0, 16, True),
        ("static_frames", 0.5, 16, True),
        ("static_unrounded", 1.0, 1, False),
        ("static_frames_0.25", 0.25, 16, True),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"static_targets": ("dance_target_0.3",)}, "not runs"),
        ({"extra_static_frame_keeps": (1.0,)}, r"\(0, 1\)"),
        ({"test_clips": 0}, ">= 1"),
    ],
)
def test_comparison_settings_refuse_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        ComparisonSettings(**changes)
