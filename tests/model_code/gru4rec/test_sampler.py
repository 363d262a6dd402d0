"""The popularity sampler draws items in proportion to count ** alpha."""
import numpy as np
import pytest
from scipy import stats

from model_code.gru4rec.sampler import PopularitySampler, log_item_counts


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_distribution_matches_popularity_power(alpha):
    counts = np.array([1, 2, 5, 10, 50, 0, 200])
    sampler = PopularitySampler(counts, alpha, seed=4)
    draws = sampler.draw(100, 2000)
    assert draws.shape == (100, 2000) and draws.dtype == np.int32
    observed = np.bincount(draws.ravel(), minlength=len(counts))
    assert observed[5] == 0, "an item never seen in training is never drawn"
    expected = np.where(counts > 0, counts.astype(float) ** alpha, 0)
    expected = expected / expected.sum() * draws.size
    keep = expected > 0
    _, p_value = stats.chisquare(observed[keep], expected[keep])
    assert p_value > 1e-3
    np.testing.assert_allclose(sampler.probabilities, expected / draws.size)


def test_blocks_are_reproducible_and_resumable():
    counts = np.arange(1, 20)
    first = PopularitySampler(counts, 0.5, seed=1)
    a, b = first.draw(3, 50), first.draw(3, 50)
    assert not np.array_equal(a, b)
    again = PopularitySampler(counts, 0.5, seed=1)
    np.testing.assert_array_equal(again.draw(3, 50), a)
    resumed = PopularitySampler(counts, 0.5, seed=99)
    resumed.set_state(again.get_state())
    np.testing.assert_array_equal(resumed.draw(3, 50), b)


def test_log_item_counts_are_finite():
    logs = log_item_counts(np.array([0, 3, 2]))
    assert logs.dtype == np.float32
    np.testing.assert_allclose(logs, np.log([2.0, 3.0, 2.0]), rtol=1e-6)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="not all be zero"):
        PopularitySampler(np.zeros(3), 0.5)
    with pytest.raises(ValueError, match=">= 0"):
        PopularitySampler(np.array([1, -1]), 0.5)
