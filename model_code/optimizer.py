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


def sum_duplicate_rows(ids, grads, touched):
    """Sum the gradient rows of equal ids.

    ``ids`` int [K], ``grads`` [K, ...], ``touched`` bool [K] (False: the row
    was not really used, e.g. an invalid example's input). Returns
    ``(unique_ids [K], summed [K, ...], used [K])``: the first n entries are
    the distinct ids in ascending order; ``used`` is True where an entry holds
    a distinct id that at least one touched row had. Entries past n repeat the
    first id with ``used`` False.
    """
    n = ops.shape(ids)[0]
    order = ops.argsort(ids)
    sorted_ids = ops.take(ids, order)
    starts = ops.concatenate([ops.ones((1,), "int32"), ops.cast(sorted_ids[1:] != sorted_ids[:-1], "int32")])
    segment = ops.cumsum(starts) - 1
    summed = ops.segment_sum(ops.take(grads, order, axis=0), segment, num_segments=n)
    exists = ops.arange(n) <= segment[-1]
    unique_ids = ops.where(exists, ops.segment_max(sorted_ids, segment, num_segments=n), sorted_ids[0])
    any_touched = ops.segment_max(ops.cast(ops.take(touched, order), "int32"), segment, num_segments=n)
    used = ops.logical_and(exists, any_touched > 0)
    return unique_ids, summed, used


def sparse_adagrad_momentum(
    param, accumulator, velocity, ids, grads, touched, learning_rate, momentum, eps: float = EPSILON,
):
    """Row-sparse update of a table ``[N, ...]`` from gradient rows ``grads [K, ...]`` of rows ``ids [K]``.

    Returns the new (param, accumulator, velocity); only the touched rows change.
    """
    indices, rows = sparse_row_updates(param, accumulator, velocity, ids, grads, touched, learning_rate, momentum, eps)
    return tuple(table if new is None else ops.scatter_update(table, indices, new)
                 for table, new in zip((param, accumulator, velocity), rows))


def sparse_row_updates(
    param, accumulator, velocity, ids, grads, touched, learning_rate, momentum, eps: float = EPSILON,
):
    """The rows a sparse update writes: ``(indices [K, 1], [param rows, accumulator rows, velocity rows])``.

    Scattering each list entry into its table at ``indices`` applies the
    update (in place, for a variable). Indices may repeat, always with equal rows.
    Without momentum the velocity rows are None: the velocity is not kept (see
    :func:`adagrad_momentum`), so nothing is read from or written to it.
    """
    unique_ids, grad, used = sum_duplicate_rows(ids, grads, touched)
    old = [None if table is None else ops.take(table, unique_ids, axis=0)
           for table in (param, accumulator, None if momentum == 0 else velocity)]
    new = adagrad_momentum(*old, grad, learning_rate, momentum, eps)
    row_shape = (-1,) + (1,) * (len(ops.shape(param)) - 1)
    used = ops.reshape(used, row_shape)
    # Entries past the distinct ids repeat the first id: give them the first
    # entry's row, so that duplicate indices in the scatter carry equal values.
    n = ops.shape(unique_ids)[0]
    repeat = ops.reshape(ops.logical_and(ops.arange(n) > 0, unique_ids == unique_ids[0]), row_shape)
    rows = []
    for before, after in zip(old, new):
        if before is None:
            rows.append(None)
            continue
        row = ops.where(used, after, before)
        rows.append(ops.where(repeat, row[:1], row))
    return ops.expand_dims(unique_ids, 1), rows


def whole_table_adagrad_momentum(
    param, accumulator, velocity, ids, grads, touched, learning_rate, momentum, eps: float = EPSILON,
):
    """The row-sparse update computed over the whole table: the same result as
    :func:`sparse_adagrad_momentum` (duplicates summed, untouched rows left alone).

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
