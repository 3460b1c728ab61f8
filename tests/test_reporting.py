import numpy as np
import pytest

from dance3d.reporting import redundancy_spearman


def test_redundancy_spearman_is_zero_for_equal_costs_and_signed_otherwise():
    redundancy = np.linspace(0.0, 1.0, 800)
    equal = np.full(800, 0.285)
    assert equal.std() > 0  # float rounding: a std test would call these costs different
    assert redundancy_spearman(redundancy, equal) == 0.0
    assert redundancy_spearman(redundancy, 1.0 - redundancy) == pytest.approx(-1.0)
    assert redundancy_spearman(redundancy, redundancy**2) == pytest.approx(1.0)
