"""The benchmark's front arithmetic: 2-D hypervolume and dominance of (latency ms, top-1) points."""

from __future__ import annotations

import pytest

from dance3d.dance.device_aware import dominated, hypervolume_2d


def test_hypervolume_is_the_dominated_area_under_the_reference_latency():
    assert hypervolume_2d([(5.0, 0.8)], reference_ms=10.0) == pytest.approx(4.0)
    # a second point: faster but less accurate adds the strip in front of the first
    assert hypervolume_2d([(5.0, 0.8), (2.0, 0.5)], reference_ms=10.0) == pytest.approx(4.0 + 3 * 0.5)
    # a dominated point adds nothing; one slower than the reference counts for nothing
    assert hypervolume_2d([(5.0, 0.8), (6.0, 0.7), (12.0, 1.0)], reference_ms=10.0) == pytest.approx(4.0)
    assert hypervolume_2d([], reference_ms=10.0) == 0.0


def test_dominated_needs_a_point_at_least_as_good_on_both_and_better_on_one():
    assert dominated((5.0, 0.8), [(4.0, 0.8)])
    assert dominated((5.0, 0.8), [(5.0, 0.9)])
    assert not dominated((5.0, 0.8), [(5.0, 0.8)])
    assert not dominated((5.0, 0.8), [(4.0, 0.7), (6.0, 0.9)])


def _point(name: str, hits: list[bool], ms: float):
    from dance3d.dance.device_aware import Point

    return Point(name, "dance_latency", None, None, sum(hits) / len(hits), 0.4, ms, measured_ms=ms, hits=hits)


def test_twin_comparison_needs_a_significant_lead_or_a_real_latency_cut():
    from dance3d.dance.device_aware import twin_comparison

    right, wrong = [True] * 80, [False] * 20
    macs = _point("macs", right + wrong, 10.0)
    better = _point("lat", [True] * 100, 10.0)  # 20 clips only it gets right: +20 points, p < 0.05
    row = twin_comparison(better, macs)
    assert row["top1_diff_points"] == pytest.approx(20.0) and row["mcnemar_p"] < 0.05 and row["ahead"]
    assert not twin_comparison(_point("lat", [True] * 100, 10.5), macs)["ahead"]  # slower: not at equal latency
    same_faster = _point("lat", right + wrong, 8.4)
    assert twin_comparison(same_faster, macs)["ahead"]  # 16% less latency, same clips right
    assert not twin_comparison(_point("lat", right + wrong, 8.6), macs)["ahead"]  # 14% less: not enough
    worse_faster = _point("lat", [True] * 60 + [False] * 40, 5.0)
    assert not twin_comparison(worse_faster, macs)["ahead"]  # faster, but significantly less accurate
