"""Adagrad with momentum, dense and row-sparse, in ``keras.ops``.

One update of a parameter ``w`` with gradient ``g``, accumulator ``a`` and
velocity ``v`` (all start at 0)::

    a <- a + g^2
    v <- momentum * v - learning_rate * g / sqrt(a + eps)
    w <- w + v

The row-sparse form updates only the rows of an item table that a step used
(its inputs, targets and negatives). A row used several times in one step gets
the sum of its gradients, applied once; every other row, its accumulator and
its velocity stay untouched. The work per step is proportional to the rows
used, never to the table's size.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from keras import ops

EPSILON = 1e-6


def adagrad_momentum(param, accumulator, velocity, grad, learning_rate, momentum, eps: float = EPSILON):
    """Dense update; returns the new (param, accumulator, velocity).

    With ``momentum`` 0 the velocity is never read, so it is returned as it came (one table less to
    write per step).
    """
    accumulator = accumulator + ops.square(grad)
    if momentum == 0:
        return param - learning_rate * grad / ops.sqrt(accumulator + eps), accumulator, velocity
    velocity = momentum * velocity - learning_rate * grad / ops.sqrt(accumulator + eps)
    return param + velocity, accumulator, velocity


class RowGroups(NamedTuple):
    """A step's row ids, sorted once; every table updated at those ids shares it (:func:`group_rows`)."""

    order: Any  # int [K]: the permutation that sorts the ids
    segment: Any  # int [K]: the group of each sorted entry (0, 1, ... in ascending id order)
    rows: Any  # int [K]: the distinct ids in ascending order, then the first id repeated
    distinct: Any  # bool [K]: True where ``rows`` holds a distinct id (the first n entries)


def group_rows(ids) -> RowGroups:
    """Group equal ids of ``ids`` (int [K]): the sort a row-sparse update needs, done once per set of ids."""
    n = ops.shape(ids)[0]
    order = ops.argsort(ids)
    sorted_ids = ops.take(ids, order)
    starts = ops.concatenate([ops.ones((1,), "int32"), ops.cast(sorted_ids[1:] != sorted_ids[:-1], "int32")])
    segment = ops.cumsum(starts) - 1
    distinct = ops.arange(n) <= segment[-1]
    rows = ops.where(distinct, ops.segment_max(sorted_ids, segment, num_segments=n), sorted_ids[0])
    return RowGroups(order, segment, rows, distinct)


def sum_duplicate_rows(groups: RowGroups, grads, touched):
    """Sum the gradient rows of equal ids: ``(summed [K, ...], used [K])``, entry i for ``groups.rows[i]``.

    ``grads`` [K, ...] and ``touched`` bool [K] (False: the row was not really
    used, e.g. an invalid example's input) follow the grouped ids. ``used`` is
    True where an entry holds a distinct id that at least one touched row had.
    """
    n = ops.shape(groups.order)[0]
    summed = ops.segment_sum(ops.take(grads, groups.order, axis=0), groups.segment, num_segments=n)
    any_touched = ops.segment_max(ops.cast(ops.take(touched, groups.order), "int32"), groups.segment, num_segments=n)
    return summed, ops.logical_and(groups.distinct, any_touched > 0)


def sparse_row_updates(
    param, accumulator, velocity, groups: RowGroups, grads, touched, learning_rate, momentum, eps: float = EPSILON,
):
    """The rows a sparse update writes: ``(indices [K, 1], [param rows, accumulator rows, velocity rows])``.

    Scattering each list entry into its table at ``indices`` applies the
    update (in place, for a variable). An entry that must change nothing (an
    untouched id, or a repeat past the distinct ids) has the index
    ``len(param)``, one past the table: XLA's scatter skips an out-of-range
    index, so the update runs compiled (``jax.jit``, ``tf.function(jit_compile=True)``)
    and no row is read only to be written back unchanged. Without momentum the
    velocity rows are None: the velocity is not kept (see :func:`adagrad_momentum`),
    so nothing is read from or written to it.
    """
    grad, used = sum_duplicate_rows(groups, grads, touched)
    old = [None if table is None else ops.take(table, groups.rows, axis=0)
           for table in (param, accumulator, None if momentum == 0 else velocity)]
    new = adagrad_momentum(*old, grad, learning_rate, momentum, eps)
    indices = ops.where(used, groups.rows, ops.shape(param)[0])
    return ops.expand_dims(indices, 1), [None if before is None else after for before, after in zip(old, new)]


def whole_table_adagrad_momentum(
    param, accumulator, velocity, ids, grads, touched, learning_rate, momentum, eps: float = EPSILON,
):
    """The row-sparse update computed over the whole table: the same result as
    :func:`sparse_row_updates` scattered (duplicates summed, untouched rows left alone).

    No sort and no scatter of rows, only one scatter-add of the gradient rows
    and a pass over the table; cheaper where the table is not much larger than
    the rows a step uses (a small catalogue).
    """
    n = ops.shape(param)[0]
    row_shape = (-1,) + (1,) * (len(ops.shape(param)) - 1)
    if momentum == 0:
        # An untouched row's gradient is 0, and without momentum a zero gradient changes nothing:
        # no mask is needed.
        grads = grads * ops.reshape(ops.cast(touched, grads.dtype), row_shape)
        return adagrad_momentum(param, accumulator, velocity, ops.segment_sum(grads, ids, num_segments=n),
                                learning_rate, momentum, eps)
    summed = ops.segment_sum(grads, ids, num_segments=n)
    used = ops.reshape(ops.segment_max(ops.cast(touched, "int32"), ids, num_segments=n) > 0, row_shape)
    new = adagrad_momentum(param, accumulator, velocity, summed, learning_rate, momentum, eps)
    return tuple(ops.where(used, after, before) for after, before in zip(new, (param, accumulator, velocity)))
