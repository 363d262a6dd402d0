"""The compiled training and evaluation loops (Keras's JAX backend, the one training engine).

A block of steps is one ``jax.jit`` call over a ``lax.scan`` whose carry is
the weights, the optimizer slots, the hidden states and the loss sum. The
gradient is taken with respect to the gathered item rows, never the whole
table, and the Adagrad-momentum update is scattered into the touched rows
only (:func:`model_code.gru4rec.train_step.sparse_table_updates`). Inside the call
each recurrent kernel and its slots are kept as two column blocks
(:func:`model_code.gru4rec.train_step.split_recurrent`). The weights and slots are
donated to the call, so on an accelerator they are updated in place.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from model_code.gru4rec import bfloat16_jax
from model_code.gru4rec.model import forward_step, item_scores
from model_code.gru4rec.train_step import (
    FLOAT32_PRODUCTS,
    SPARSE,
    candidate_log_q,
    dense_update,
    dropout_plan,
    join_recurrent,
    sparse_gradients,
    sparse_table_updates,
    split_recurrent,
    step_loss,
)


class JaxEngine:
    def __init__(self, trainer):
        self.trainer = trainer
        self.model = trainer.model
        self._log_counts = jnp.asarray(trainer.log_counts)
        self._products = bfloat16_jax.PRODUCTS if trainer.matmul_dtype == "bfloat16" else FLOAT32_PRODUCTS
        self._slots = [(jnp.zeros(v.shape), jnp.zeros(v.shape)) for v in trainer.variables]
        self._train_block = jax.jit(self._train_block_fn, donate_argnums=(0, 1))
        self._eval_block = jax.jit(self._eval_block_fn)

    def zero_states(self, batch_size):
        return [jnp.zeros((batch_size, units)) for units in self.model.layer_sizes]

    def train_block(self, block, negatives, seed, states):
        params = [jnp.asarray(v.value) for v in self.trainer.variables]
        params, self._slots, loss, states = self._train_block(
            params, self._slots, block.inputs, block.targets, block.resets, block.valid, negatives,
            jnp.asarray(seed, dtype=jnp.uint32), states)
        for variable, value in zip(self.trainer.variables, params):
            variable.assign(value)
        return loss, states  # the block's summed loss, read back by the caller

    def eval_block(self, block, states):
        params = [jnp.asarray(v.value) for v in self.trainer.variables]
        greater, equal, states = self._eval_block(params, block.inputs, block.targets, block.resets, states)
        return np.asarray(greater), np.asarray(equal), states

    def get_slots(self):
        return [(np.asarray(a), np.asarray(v)) for a, v in self._slots]

    def set_slots(self, slots):
        self._slots = [(jnp.asarray(a), jnp.asarray(v)) for a, v in slots]

    def _train_block_fn(self, params, slots, inputs, targets, resets, valid, negatives, seed, states):
        names = self.trainer.names
        key = jax.random.fold_in(jax.random.PRNGKey(seed[0]), seed[1])
        tables = [split_recurrent(dict(zip(names, values))) for values in (params, *zip(*slots))]

        def body(carry, step):
            (weights, accumulators, velocities), states, loss_sum = carry
            row_loss_sum, states, updates = self._train_step(weights, states, key, *step)
            tables = self._apply(weights, accumulators, velocities, updates, step[3])
            return (tables, states, loss_sum + row_loss_sum), None

        steps = (inputs, targets, resets, valid, negatives, jnp.arange(inputs.shape[0]))
        (tables, states, loss_sum), _ = jax.lax.scan(body, (tables, list(states), jnp.float32(0.0)), steps)
        weights, accumulators, velocities = (join_recurrent(values) for values in tables)
        return ([weights[name] for name in names], [(accumulators[name], velocities[name]) for name in names],
                loss_sum, states)

    def _train_step(self, weights, states, key, inputs, targets, resets, valid, negatives, t):
        trainer = self.trainer
        keep = 1.0 - resets.astype(jnp.float32)[:, None]
        states = [state * keep for state in states]
        candidates = jnp.concatenate([targets, negatives])
        input_name = "item_table" if self.model.embedding == "shared" else "input_table"
        dense = {name: value for name, value in weights.items() if name not in SPARSE}
        masks = self._masks(jax.random.fold_in(key, t), inputs.shape[0])

        log_q_rows = candidate_log_q(trainer, self._log_counts, targets, negatives)

        def loss_fn(input_rows, output_rows, bias_rows, dense):
            return step_loss(trainer, input_rows, output_rows, bias_rows, dense, states, masks, valid, log_q_rows,
                             self._products)

        rows = (weights[input_name][inputs], weights["item_table"][candidates], weights["item_bias"][candidates])
        (_, (row_loss_sum, new_states)), grads = jax.value_and_grad(loss_fn, argnums=(0, 1, 2, 3), has_aux=True)(
            *rows, dense
        )
        updates = dict(grads[3])
        updates.update(sparse_gradients(trainer, inputs, candidates, valid, *grads[:3]))
        return row_loss_sum, new_states, updates

    def _masks(self, key, batch_size):
        masks = []
        for stream, (rate, width) in enumerate(dropout_plan(self.model)):
            if rate <= 0:
                masks.append(None)
                continue
            noise = jax.random.uniform(jax.random.fold_in(key, stream), (batch_size, width))
            masks.append((noise >= rate).astype(jnp.float32) / (1.0 - rate))
        return masks

    def _apply(self, weights, accumulators, velocities, updates, valid):
        """Adagrad-momentum updates of the split weights (:func:`model_code.gru4rec.train_step.split_recurrent`) and
        their slots; a step with no valid row touches no row and leaves the dense weights."""
        trainer = self.trainer
        tables = {name: (weights[name], accumulators[name], velocities[name]) for name in weights}
        new = {}
        sparse = {name: value for name, value in tables.items() if name in SPARSE}
        for name, whole, result in sparse_table_updates(trainer, sparse, updates):
            if whole:
                new[name] = result
                continue
            indices, rows = result
            new[name] = tuple(table if row is None else table.at[indices[:, 0]].set(row, mode="drop")
                              for table, row in zip(tables[name], rows))
        for name, value in tables.items():
            if name not in SPARSE:
                new[name] = dense_update(*value, updates[name], valid, trainer.learning_rate, trainer.momentum)
        return [{name: value[i] for name, value in new.items()} for i in range(3)]

    def _eval_block_fn(self, params, inputs, targets, resets, states):
        weights = dict(zip(self.trainer.names, params))

        def body(states, step):
            items, target, reset = step
            keep = 1.0 - reset.astype(jnp.float32)[:, None]
            states = forward_step(self.model, weights, items, [state * keep for state in states])
            scores = item_scores(states[-1], weights["item_table"], weights["item_bias"])
            target_score = jnp.take_along_axis(scores, target[:, None], axis=1)
            above = jnp.sum(scores > target_score, axis=1, dtype=jnp.int32)
            ties = jnp.sum(scores == target_score, axis=1, dtype=jnp.int32)
            return states, (above, ties)

        states, (greater, equal) = jax.lax.scan(body, list(states), (inputs, targets, resets))
        return greater, equal, states
