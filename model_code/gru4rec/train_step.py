"""One GRU4Rec training step's arithmetic, in ``keras.ops``, compiled by the engine.

The host side (:mod:`model_code.gru4rec.trainer`) and the engine
(:mod:`model_code.gru4rec.trainer_jax`) import from
here; nothing here imports them, so the imports point one way. ``trainer``
below is the :class:`model_code.gru4rec.trainer.Trainer` (its settings and model).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from keras import ops

from model_code.gru4rec import losses, optimizer
from model_code.gru4rec.model import gru_step, recurrent_columns

SPARSE = ("item_table", "item_bias", "input_table")
TABLE_UPDATES = ("auto", "rows", "whole")
RECURRENT_PARTS = ("gates", "candidate")
WHOLE_TABLE_RATIO = 4
"""``auto`` updates an item table as a whole while it has at most this many rows per row a step uses."""


class Products(NamedTuple):
    """How a step computes its matrix products: ``matmul(a, b)`` is ``a @ b``, ``matmul_t(a, b)`` is ``a @ b.T``."""

    matmul: Callable
    matmul_t: Callable


def _matmul_t(a, b):
    return ops.matmul(a, ops.transpose(b))


FLOAT32_PRODUCTS = Products(ops.matmul, _matmul_t)


def dropout_plan(model) -> list[tuple[float, int]]:
    """(rate, width) of the step's dropout masks: the input first, then each GRU layer's output.

    With one-hot input (``embedding="none"``) the first GRU layer plays the
    embedding, as in the reference: the embedding dropout applies to that
    layer's output, the input gets no mask and that layer no hidden dropout.
    """
    hidden = [(model.dropout_hidden, units) for units in model.layer_sizes]
    if model.embedding == "none":
        return [(0.0, 1), (model.dropout_embedding, model.layer_sizes[0])] + hidden[1:]
    return [(model.dropout_embedding, model.input_weights().shape[1])] + hidden


def split_recurrent(weights: dict) -> dict:
    """``weights`` by name, each GRU layer's recurrent kernel (``recurrent_i``) as its two column blocks.

    They become ``recurrent_i/gates`` and ``recurrent_i/candidate``
    (:func:`model_code.gru4rec.model.recurrent_columns`): the dense weights as
    :func:`step_loss` reads them. An engine that keeps the blocks apart across
    steps (and their optimizer slots: Adagrad works element by element) slices
    no kernel and pads no gradient per step.
    """
    split = {}
    for name, value in weights.items():
        if name.startswith("recurrent_"):
            split.update(zip((f"{name}/{part}" for part in RECURRENT_PARTS), recurrent_columns(value)))
        else:
            split[name] = value
    return split


def join_recurrent(split: dict) -> dict:
    """The inverse of :func:`split_recurrent`."""
    joined = {}
    for name, value in split.items():
        kernel, _, part = name.partition("/")
        if not part:
            joined[name] = value
        elif part == "gates":
            joined[kernel] = ops.concatenate([value, split[f"{kernel}/candidate"]], 1)
    return joined


def candidate_log_q(trainer, log_counts, targets, negatives):
    """The logQ correction's ``[C]`` vector of a step's candidates (targets, then negatives)."""
    return losses.logq_correction(log_counts, targets, negatives, trainer.sample_alpha, trainer.logq_form)


def step_loss(trainer, input_rows, output_rows, bias_rows, dense: dict, states, masks, valid, log_q_rows,
              products: Products = FLOAT32_PRODUCTS):
    """Mean loss of one step and the new states, from gathered rows and the dense weights.

    ``dense``: the GRU weights as :func:`split_recurrent` gives them; ``masks``
    (see :func:`dropout_plan`): the dropout masks, already scaled by 1 / keep,
    or None entries where a rate is 0; ``log_q_rows`` is
    :func:`candidate_log_q`; ``products`` computes every matrix product. Returns ``(batch mean, (summed row losses, new
    states))``.
    """
    model = trainer.model
    x = input_rows if masks[0] is None else input_rows * masks[0]
    new_states = []
    for i, state in enumerate(states):
        if i == 0 and model.embedding == "none":
            projection = x + dense["bias_0"]
        else:
            projection = products.matmul(x, dense[f"kernel_{i}"]) + dense[f"bias_{i}"]
        x = gru_step(projection, state, *(dense[f"recurrent_{i}/{part}"] for part in RECURRENT_PARTS),
                     products.matmul)
        if masks[i + 1] is not None:
            x = x * masks[i + 1]
        new_states.append(ops.stop_gradient(x))
    scores = products.matmul_t(x, output_rows) + ops.expand_dims(bias_rows, 0)
    if trainer.loss == "cross-entropy":
        row_loss = losses.cross_entropy(scores, valid, log_q_rows, trainer.logq)
    else:
        row_loss = losses.bpr_max(scores, valid, trainer.bpreg, trainer.elu)
    return losses.batch_mean(row_loss), (ops.sum(row_loss), new_states)


def sparse_gradients(trainer, inputs, candidates, valid, grad_input, grad_output, grad_bias) -> dict:
    """{table name: (row ids, gradient rows, touched)} of the step's item-table gradients.

    The item bias gets the item table's row ids (with the shared embedding, the
    inputs' entries carry a zero gradient and are not touched), so that one
    sort serves both (:func:`sparse_table_updates`). A step with no valid row
    (padding at an epoch's tail) touches no row.
    """
    any_valid = ops.any(valid)
    column_used = ops.logical_and(losses.candidate_mask(valid, ops.shape(candidates)[0]), any_valid)
    if trainer.model.embedding == "shared":
        ids = ops.concatenate([inputs, candidates], 0)
        not_inputs = ops.zeros(ops.shape(inputs), "bool")
        return {
            "item_table": (ids, ops.concatenate([grad_input, grad_output], 0),
                           ops.concatenate([ops.cast(valid, "bool"), column_used], 0)),
            "item_bias": (ids, ops.concatenate([ops.zeros(ops.shape(inputs), grad_bias.dtype), grad_bias], 0),
                          ops.concatenate([not_inputs, column_used], 0)),
        }
    return {
        "item_table": (candidates, grad_output, column_used),
        "input_table": (inputs, grad_input, ops.cast(valid, "bool")),
        "item_bias": (candidates, grad_bias, column_used),
    }


def updates_whole_table(mode: str, table_rows: int, step_rows: int) -> bool:
    """Whether a step's item-table update runs over the whole table instead of the rows it used.

    Both give the same weights (see :func:`model_code.gru4rec.optimizer.whole_table_adagrad_momentum`). The
    row form costs a sort and scatters per step, the whole-table form a few passes over the table:
    on a small catalogue (yoochoose100k: 2,933 items, 2,100 rows a step) the latter is faster, on a
    large one (diginetica: 43,097 items) far slower. ``mode``: one of :data:`TABLE_UPDATES`.
    """
    if mode == "auto":
        return table_rows <= WHOLE_TABLE_RATIO * step_rows
    return mode == "whole"


ROW_IDS_OF = {"item_bias": "item_table"}
"""Tables updated at another table's row ids (:func:`sparse_gradients`), grouped once for both."""


def sparse_table_updates(trainer, tables: dict, updates: dict):
    """Adagrad-momentum updates of the item tables, each ``(name, whole, result)``.

    ``tables``: {name: (param, accumulator, velocity)}; ``updates``: :func:`sparse_gradients`.
    Where ``whole`` (:func:`updates_whole_table`), ``result`` is the new
    ``(param, accumulator, velocity)``, else the ``(indices, rows)`` to
    scatter (:func:`model_code.gru4rec.optimizer.sparse_row_updates`; without momentum
    the velocity is kept as it is).
    """
    groups = {}
    for name, (param, accumulator, velocity) in tables.items():
        ids, grads, touched = updates[name]
        args = (grads, touched, trainer.learning_rate, trainer.momentum)
        if updates_whole_table(trainer.table_update, ops.shape(param)[0], ops.shape(ids)[0]):
            yield name, True, optimizer.whole_table_adagrad_momentum(param, accumulator, velocity, ids, *args)
            continue
        key = ROW_IDS_OF.get(name, name)
        if key not in groups:
            groups[key] = optimizer.group_rows(ids)
        yield name, False, optimizer.sparse_row_updates(param, accumulator, velocity, groups[key], *args)


def dense_update(param, accumulator, velocity, grad, valid, learning_rate, momentum):
    """Adagrad with momentum on a dense weight; a step with no valid row leaves all three as they are.

    (Its gradient is 0, but momentum alone would still move the weight; without momentum a zero
    gradient changes nothing, and no choice is made.) The choice is a branch, not a per-element
    select: XLA then fuses the update into fewer passes over the weight.
    """
    def update():
        return optimizer.adagrad_momentum(param, accumulator, velocity, grad, learning_rate, momentum)

    if momentum == 0:
        return update()
    return ops.cond(ops.any(valid), update, lambda: (param, accumulator, velocity))
