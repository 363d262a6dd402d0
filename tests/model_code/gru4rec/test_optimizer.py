"""Adagrad with momentum against a NumPy reference; the sparse forms touch only the used rows."""
import jax
import numpy as np
import pytest
from keras import ops

from model_code.gru4rec import optimizer


def _numpy_step(param, acc, vel, grad, lr, momentum, eps=1e-6):
    acc = acc + grad ** 2
    vel = momentum * vel - lr * grad / np.sqrt(acc + eps)
    return param + vel, acc, vel


def _tables(rng, shape):
    return (rng.normal(size=shape).astype(np.float32), rng.random(shape).astype(np.float32),
            rng.normal(size=shape).astype(np.float32))


@pytest.mark.parametrize("momentum", [0.3, 0.0])
def test_dense_step_matches_numpy(momentum):
    rng = np.random.default_rng(0)
    param, acc, vel = _tables(rng, (4, 3))
    grad = rng.normal(size=(4, 3)).astype(np.float32)
    got = optimizer.adagrad_momentum(param, acc, vel, grad, 0.1, momentum)
    want = list(_numpy_step(param, acc, vel, grad, 0.1, momentum))
    if momentum == 0:
        want[2] = vel  # never read without momentum: not kept
    for g, w in zip(got, want):
        np.testing.assert_allclose(ops.convert_to_numpy(g), w, rtol=1e-5, atol=1e-6)


def _compiled(function):
    """``function`` compiled by XLA, as the engine runs the updates."""
    return jax.jit(function, static_argnums=(6, 7))


def _row_update(param, acc, vel, ids, grads, touched, learning_rate, momentum):
    """The row form as the engine applies it: group, compute the rows, scatter them."""
    def update(param, acc, vel, ids, grads, touched, learning_rate, momentum):
        indices, rows = optimizer.sparse_row_updates(param, acc, vel, optimizer.group_rows(ids), grads, touched,
                                                     learning_rate, momentum)
        return [table if row is None else ops.scatter_update(table, indices, row)
                for table, row in zip((param, acc, vel), rows)]
    return _compiled(update)(param, acc, vel, ids, grads, touched, learning_rate, momentum)


ROW_UPDATES = pytest.mark.parametrize("update", [_row_update, optimizer.whole_table_adagrad_momentum],
                                      ids=["rows", "whole-table"])


@ROW_UPDATES
@pytest.mark.parametrize("momentum", [0.4, 0.0])
def test_sparse_step_sums_duplicates_and_leaves_other_rows_alone(update, momentum):
    rng = np.random.default_rng(1)
    param, acc, vel = _tables(rng, (10, 3))
    ids = np.array([7, 2, 7, 5, 2, 7, 9], np.int32)
    touched = np.array([True, True, True, True, True, True, False])
    grads = rng.normal(size=(7, 3)).astype(np.float32)
    got = [ops.convert_to_numpy(t) for t in update(param, acc, vel, ids, grads, touched, 0.2, momentum)]
    want = [param.copy(), acc.copy(), vel.copy()]
    for row in (2, 5, 7):
        summed = grads[(ids == row) & touched].sum(axis=0)
        new = _numpy_step(param[row], acc[row], vel[row], summed, 0.2, momentum)
        for table, value in zip(want, new):
            table[row] = value
    if momentum == 0:
        want[2] = vel  # never read without momentum: not kept
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    untouched = [0, 1, 3, 4, 6, 8, 9]  # 9 appears only with touched=False
    for g, original in zip(got, (param, acc, vel)):
        np.testing.assert_array_equal(g[untouched], original[untouched])


@ROW_UPDATES
def test_sparse_step_on_a_vector_with_all_ids_equal(update):
    param, acc, vel = np.arange(4, dtype=np.float32), np.ones(4, np.float32), np.zeros(4, np.float32)
    ids = np.array([3, 3, 3], np.int32)
    grads = np.array([1.0, 2.0, -0.5], np.float32)
    new_param, new_acc, _ = (ops.convert_to_numpy(t) for t in update(
        param, acc, vel, ids, grads, np.ones(3, bool), 1.0, 0.0))
    np.testing.assert_allclose(new_acc, [1, 1, 1, 1 + 2.5 ** 2])
    np.testing.assert_allclose(new_param, [0, 1, 2, 3 - 2.5 / np.sqrt(1 + 2.5 ** 2 + 1e-6)], rtol=1e-6)


def test_without_momentum_the_row_form_reads_and_writes_no_velocity():
    param, acc, vel = _tables(np.random.default_rng(2), (6, 2))
    groups = optimizer.group_rows(np.array([1, 4, 1], np.int32))
    _, rows = optimizer.sparse_row_updates(
        param, acc, vel, groups, np.ones((3, 2), np.float32), np.ones(3, bool), 0.1, 0.0
    )
    assert rows[2] is None and rows[0] is not None and rows[1] is not None


def test_grouping_lists_each_id_once_in_order_then_repeats_the_first():
    groups = optimizer.group_rows(np.array([7, 2, 7, 5, 2, 7, 9], np.int32))
    ids = np.array([7, 2, 7, 5, 2, 7, 9])
    np.testing.assert_array_equal(ops.convert_to_numpy(groups.rows), [2, 5, 7, 9, 2, 2, 2])
    np.testing.assert_array_equal(ops.convert_to_numpy(groups.distinct), [True] * 4 + [False] * 3)
    order, segment = ops.convert_to_numpy(groups.order), ops.convert_to_numpy(groups.segment)
    np.testing.assert_array_equal(ids[order], [2, 2, 5, 7, 7, 7, 9])
    np.testing.assert_array_equal(segment, [0, 0, 1, 2, 2, 2, 3])


def test_rows_that_change_nothing_are_sent_past_the_table():
    """Untouched ids and the repeats past the distinct ids get index len(table): the scatter skips them."""
    param, acc, vel = _tables(np.random.default_rng(3), (10, 2))
    groups = optimizer.group_rows(np.array([7, 2, 7, 9], np.int32))
    touched = np.array([True, True, True, False])
    indices, _ = optimizer.sparse_row_updates(param, acc, vel, groups, np.ones((4, 2), np.float32), touched, 0.1, 0.5)
    np.testing.assert_array_equal(ops.convert_to_numpy(indices)[:, 0], [2, 7, 10, 10])
