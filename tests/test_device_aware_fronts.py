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
