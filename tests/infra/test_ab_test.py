"""The A/B comparison (infra/ab_test.py) checked against hand-computed examples; scipy as a second reference."""
from __future__ import annotations

import pytest
from scipy.stats import norm

from infra.ab_test import CLEAR, NO_CLEAR_DIFFERENCE, TOO_SMALL, Arm, compare


def test_two_proportions_by_hand():
    """A 120 / 1000, B 150 / 1000. Difference 0.03; unpooled SE sqrt(.12 * .88 / 1000 + .15 * .85 / 1000)
    = sqrt(0.0002331) = 0.0152676; 95% CI 0.03 -+ 1.959964 * 0.0152676 = (0.0000760, 0.0599240): clear.
    Pooled rate 270 / 2000 = 0.135, SE sqrt(.135 * .865 * (2 / 1000)) = 0.0152823, z = 1.96305, p = 0.0496."""
    result = compare(Arm("A", 120, 1000), Arm("B", 150, 1000))
    assert result.difference == pytest.approx(0.03)
    assert (result.low, result.high) == (pytest.approx(0.0000760, abs=1e-7), pytest.approx(0.0599240, abs=1e-7))
    assert result.p_value == pytest.approx(0.0496, abs=1e-4)
    assert result.p_value == pytest.approx(2 * norm.sf(0.03 / 0.0152823), rel=1e-4)
    assert result.verdict == CLEAR and result.better == "B"
    assert "B is clearly better" in result.sentence()


def test_a_smaller_sample_of_the_same_rates_is_no_clear_difference():
    """A 12 / 100, B 15 / 100: SE 0.0482805, CI 0.03 -+ 0.0946282 holds 0."""
    result = compare(Arm("A", 12, 100), Arm("B", 15, 100))
    assert (result.low, result.high) == (pytest.approx(-0.0646282, abs=1e-6), pytest.approx(0.1246282, abs=1e-6))
    assert result.verdict == NO_CLEAR_DIFFERENCE and result.better is None


def test_a_worse_challenger_is_named():
    result = compare(Arm("A", 300, 1000), Arm("B", 200, 1000))
    assert result.verdict == CLEAR and result.better == "A"


@pytest.mark.parametrize("a, b", [(Arm("A", 3, 20), Arm("B", 9, 20)), (Arm("A", 0, 0), Arm("B", 5, 10)),
                                  (Arm("A", 2, 1000), Arm("B", 6, 1000))])
def test_too_few_hits_or_misses_is_too_small(a, b):
    """3 + 9 of 40 pools to 0.3: 20 * 0.3 = 6 expected hits per arm, under 10, however wide the gap looks."""
    result = compare(a, b)
    assert result.verdict == TOO_SMALL and "too small" in result.sentence()


def test_impossible_counts_are_refused_by_name():
    with pytest.raises(ValueError, match="B: hits"):
        compare(Arm("A", 1, 10), Arm("B", 11, 10))
