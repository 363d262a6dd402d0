"""The sampled losses against plain NumPy formulas."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import ops

from model_code.gru4rec import losses


def _numpy_cross_entropy(scores, valid, log_q, logq):
    n_rows = scores.shape[0]
    out = np.zeros(n_rows)
    columns = np.concatenate([valid, np.ones(scores.shape[1] - n_rows, bool)])
    for i in range(n_rows):
        if not valid[i]:
            continue
        corrected = scores[i] - logq * log_q
        kept = corrected[columns]
        out[i] = np.log(np.exp(kept - kept.max()).sum()) + kept.max() - corrected[i]
    return out


def _numpy_bpr_max(scores, valid, bpreg, elu):
    if elu > 0:
        scores = np.where(scores > 0, scores, elu * (np.exp(scores) - 1))
    n_rows = scores.shape[0]
    out = np.zeros(n_rows)
    for i in range(n_rows):
        if not valid[i]:
            continue
        negatives = [j for j in range(scores.shape[1]) if j != i and (j >= n_rows or valid[j])]
        r = scores[i, negatives]
        s = np.exp(r - r.max())
        s /= s.sum()
        sigmoid = 1 / (1 + np.exp(-(scores[i, i] - r)))
        out[i] = -np.log((s * sigmoid).sum()) + bpreg * (s * r ** 2).sum()
    return out


def _case(seed, n_rows, n_extra):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 2, (n_rows, n_rows + n_extra)).astype(np.float32)
    valid = rng.random(n_rows) < 0.7
    valid[0] = True
    log_q = np.log(rng.dirichlet(np.ones(n_rows + n_extra))).astype(np.float32)
    return scores, valid, log_q


@settings(max_examples=25)
@given(
    seed=st.integers(0, 10_000),
    n_rows=st.integers(1, 6),
    n_extra=st.integers(0, 5),
    logq=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_cross_entropy_matches_numpy(seed, n_rows, n_extra, logq):
    scores, valid, log_q = _case(seed, n_rows, n_extra)
    got = ops.convert_to_numpy(losses.cross_entropy(scores, valid, log_q, logq))
    np.testing.assert_allclose(
        got, _numpy_cross_entropy(scores.astype(np.float64), valid, log_q, logq), rtol=1e-4, atol=1e-4
    )


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), n_rows=st.integers(1, 6), n_extra=st.integers(1, 5),
       bpreg=st.sampled_from([0.0, 0.9, 1.95]), elu=st.sampled_from([0.0, 0.5, 1.0]))
def test_bpr_max_matches_numpy(seed, n_rows, n_extra, bpreg, elu):
    scores, valid, _ = _case(seed, n_rows, n_extra)
    got = ops.convert_to_numpy(losses.bpr_max(scores, valid, bpreg, elu))
    np.testing.assert_allclose(got, _numpy_bpr_max(scores.astype(np.float64), valid, bpreg, elu), rtol=1e-4, atol=1e-4)


def test_invalid_target_column_is_no_negative():
    """Changing the score of an invalid row's target column changes nobody's loss."""
    scores, _, log_q = _case(3, 4, 3)
    valid = np.array([True, False, True, True])
    bumped = scores.copy()
    bumped[:, 1] += 50.0
    for loss in (lambda s: losses.cross_entropy(s, valid, log_q, 1.0), lambda s: losses.bpr_max(s, valid, 1.0, 1.0)):
        np.testing.assert_allclose(ops.convert_to_numpy(loss(bumped)), ops.convert_to_numpy(loss(scores)), rtol=1e-5)
    # a valid row's column does act as a negative
    bumped[:, 1] -= 50.0
    bumped[:, 2] += 50.0
    assert not np.allclose(
        ops.convert_to_numpy(losses.cross_entropy(bumped, valid))[0],
        ops.convert_to_numpy(losses.cross_entropy(scores, valid))[0],
    )


@pytest.mark.parametrize("form", ["reference", "sampling"])
def test_logq_correction_column_by_column(form):
    """Column c < B is row c's target, by log(count) (reference) or alpha * log(count); the rest alpha * log(count)."""
    rng = np.random.default_rng(4)
    counts = rng.integers(1, 1000, 50).astype(np.float64)
    targets, negatives, alpha = rng.integers(0, 50, 6), rng.integers(0, 50, 9), 0.3
    got = ops.convert_to_numpy(
        losses.logq_correction(np.log(counts).astype(np.float32), targets, negatives, alpha, form)
    )
    assert got.shape == (15,)
    for column in range(15):
        if column < 6:
            want = np.log(counts[targets[column]]) * (1.0 if form == "reference" else alpha)
        else:
            want = alpha * np.log(counts[negatives[column - 6]])
        assert got[column] == pytest.approx(want, rel=1e-5), column


def test_logq_correction_refuses_an_unknown_form():
    with pytest.raises(ValueError, match="logq form must be one of"):
        losses.logq_correction(np.zeros(3, np.float32), np.array([0]), np.array([1]), 0.5, "uniform")


def test_batch_mean_divides_by_the_batch_size():
    row_losses = np.array([1.0, 0.0, 3.0, 0.0], np.float32)
    assert float(losses.batch_mean(row_losses)) == pytest.approx(1.0)
