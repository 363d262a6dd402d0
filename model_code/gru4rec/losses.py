"""GRU4Rec's losses over sampled candidates, in ``keras.ops``.

``scores`` is ``[B, C]``: row i is one example, the first B columns are the
batch's own targets (column i is row i's target) and the remaining columns
are the extra negatives shared by the batch. ``valid`` ``[B]`` marks the rows
that are real examples: an invalid row has no loss, and its target column is
no candidate for any other row.

Both functions return the loss of each row (0 for invalid rows); the training
loss is their mean over the batch (:func:`batch_mean`), as in the reference
implementation, whose learning rates assume that scale.
"""
from __future__ import annotations

from keras import ops

from model_code.gru4rec.params import LOGQ_FORMS

_MASKED = -1e9


def logq_correction(log_counts, targets, negatives, alpha: float, form: str = "reference"):
    """The ``[C]`` log sampling probabilities (up to a constant) of a step's candidates.

    The candidates are the batch's own targets ``[B]`` followed by the extra
    negatives ``[N]``; ``log_counts`` ``[n_items]`` is the log of each item's
    training count. ``form``:

    - ``"reference"``: a target column comes from the data, so it goes with
      ``log(count)``; an extra negative is drawn by popularity ** alpha, so
      with ``alpha * log(count)``;
    - ``"sampling"``: every column with ``alpha * log(count)``, as if the
      targets were drawn by the sampler too.

    A constant added to all columns leaves the softmax unchanged, so the
    normalising sums are left out.
    """
    if form not in LOGQ_FORMS:
        raise ValueError(f"logq form must be one of {LOGQ_FORMS}, got {form!r}")
    target_weight = 1.0 if form == "reference" else alpha
    return ops.concatenate([
        target_weight * ops.take(log_counts, targets, axis=0),
        alpha * ops.take(log_counts, negatives, axis=0),
    ], axis=0)


def candidate_mask(valid, n_columns: int):
    """bool [C]: the columns that are candidates (valid rows' targets and every extra negative)."""
    n_rows = ops.shape(valid)[0]
    extra = ops.ones((n_columns - n_rows,), dtype="bool")
    return ops.concatenate([ops.cast(valid, "bool"), extra], axis=0)


def _target_scores(scores):
    n_rows = ops.shape(scores)[0]
    return ops.diagonal(scores[:, :n_rows])


def cross_entropy(scores, valid, log_sample_probability=None, logq: float = 0.0):
    """Softmax cross-entropy of each row's target against all candidates, with logQ correction.

    With ``logq > 0``, ``logq * log_sample_probability[c]`` (the log of the
    candidate's sampling probability, ``[C]``, see :func:`logq_correction`)
    is subtracted from column c.
    """
    if logq and log_sample_probability is not None:
        scores = scores - logq * ops.expand_dims(log_sample_probability, 0)
    columns = candidate_mask(valid, ops.shape(scores)[1])
    scores = ops.where(ops.expand_dims(columns, 0), scores, _MASKED)
    loss = ops.logsumexp(scores, axis=1) - _target_scores(scores)
    return ops.where(ops.cast(valid, "bool"), loss, 0.0)


def bpr_max(scores, valid, bpreg: float = 1.0, elu: float = 0.0):
    """BPR-max: -log(sum_j s_j sigmoid(r_i - r_j)) + bpreg * sum_j s_j r_j^2.

    j runs over the row's negatives (every candidate but its own target),
    ``s_j`` is the softmax of the negatives' scores. With ``elu > 0`` the
    scores pass through ELU(alpha=elu) first.
    """
    if elu:
        scores = ops.elu(scores, alpha=elu)
    n_rows, n_columns = ops.shape(scores)[0], ops.shape(scores)[1]
    columns = candidate_mask(valid, n_columns)
    not_target = ops.logical_not(ops.eye(n_rows, n_columns, dtype="bool"))
    negative = ops.logical_and(ops.expand_dims(columns, 0), not_target)
    weights = ops.softmax(ops.where(negative, scores, _MASKED), axis=1)
    weights = ops.where(negative, weights, 0.0)
    target = ops.expand_dims(_target_scores(scores), 1)
    ranking = -ops.log(ops.sum(weights * ops.sigmoid(target - scores), axis=1) + 1e-24)
    regulariser = bpreg * ops.sum(weights * ops.square(scores), axis=1)
    return ops.where(ops.cast(valid, "bool"), ranking + regulariser, 0.0)


def batch_mean(row_losses):
    """Sum of the rows' losses over the batch size B.

    Invalid rows (empty slots at the tail of an epoch) count as 0, so a step
    with few valid rows does not give each of them a larger weight.
    """
    return ops.sum(row_losses) / ops.cast(ops.shape(row_losses)[0], row_losses.dtype)
