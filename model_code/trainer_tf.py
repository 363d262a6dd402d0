"""The compiled training and evaluation loops on TensorFlow (XLA).

A block of steps is one ``tf.function(jit_compile=True)`` call over a
``tf.while_loop`` whose carry is the hidden states; weights and optimizer
slots are variables updated in place inside the loop (``scatter_nd_update``
of the touched rows for a large item table, an update in place of a small one as
a whole: :func:`model_code.train_step.updates_whole_table`), so no table is
copied per step or per block. Gradients are taken with respect to the gathered rows.
"""
from __future__ import annotations

import tensorflow as tf

from model_code.train_step import (SPARSE, candidate_log_q, dense_update, dropout_plan, sparse_gradients,
                                   sparse_table_updates, split_recurrent, step_loss)


class TensorFlowEngine:
    def __init__(self, trainer):
        self.trainer = trainer
        self.model = trainer.model
        self._log_counts = tf.constant(trainer.log_counts)
        self._accumulators = [tf.Variable(tf.zeros_like(v.value), trainable=False) for v in trainer.variables]
        self._velocities = [tf.Variable(tf.zeros_like(v.value), trainable=False) for v in trainer.variables]
        self._train_block = tf.function(self._train_block_fn, jit_compile=True, reduce_retracing=True)
        self._eval_block = tf.function(self._eval_block_fn, jit_compile=True, reduce_retracing=True)

    def zero_states(self, batch_size):
        return [tf.zeros((batch_size, units)) for units in self.model.layer_sizes]

    def train_block(self, block, negatives, seed, states):
        loss, states = self._train_block(block.inputs, block.targets, block.resets, block.valid, negatives,
                                         tf.constant(seed, dtype=tf.int32), states)
        return loss, states  # the block's summed loss, read back by the caller

    def eval_block(self, block, states):
        greater, equal, states = self._eval_block(block.inputs, block.targets, block.resets, states)
        return greater.numpy(), equal.numpy(), states

    def get_slots(self):
        return [(a.numpy(), v.numpy()) for a, v in zip(self._accumulators, self._velocities)]

    def set_slots(self, slots):
        for (accumulator, velocity), a, v in zip(slots, self._accumulators, self._velocities):
            a.assign(accumulator)
            v.assign(velocity)

    def _train_block_fn(self, inputs, targets, resets, valid, negatives, seed, states):
        n_steps = tf.shape(inputs)[0]

        def body(t, states, loss_sum):
            step_seed = tf.stack([seed[0], seed[1] + t])
            row_loss_sum, states, updates = self._train_step(
                inputs[t], targets[t], resets[t], valid[t], negatives[t], step_seed, states)
            with tf.control_dependencies([row_loss_sum] + states):
                self._apply(updates, valid[t])
            return t + 1, states, loss_sum + row_loss_sum

        _, states, loss_sum = tf.while_loop(
            lambda t, *_: t < n_steps, body, (tf.constant(0), list(states), tf.constant(0.0)))
        return loss_sum, states

    def _train_step(self, inputs, targets, resets, valid, negatives, seed, states):
        """Forward and backward of one step; returns (summed row losses, new states, gradient updates)."""
        trainer = self.trainer
        weights = {name: v.value.read_value() for name, v in zip(trainer.names, trainer.variables)}
        keep = 1.0 - tf.cast(resets, tf.float32)[:, None]
        states = [state * keep for state in states]
        candidates = tf.concat([targets, negatives], axis=0)
        input_name = "item_table" if self.model.embedding == "shared" else "input_table"
        dense = {name: weights[name] for name in trainer.names if name not in SPARSE}
        masks = self._masks(seed, tf.shape(inputs)[0])
        with tf.GradientTape() as tape:
            input_rows = tf.gather(weights[input_name], inputs)
            output_rows = tf.gather(weights["item_table"], candidates)
            bias_rows = tf.gather(weights["item_bias"], candidates)
            tape.watch([input_rows, output_rows, bias_rows] + list(dense.values()))
            loss, (row_loss_sum, new_states) = step_loss(
                trainer, input_rows, output_rows, bias_rows, split_recurrent(dense), states, masks, valid,
                candidate_log_q(trainer, self._log_counts, targets, negatives))
        grads = tape.gradient(loss, [input_rows, output_rows, bias_rows] + list(dense.values()))
        updates = dict(zip(dense, grads[3:]))
        updates.update(sparse_gradients(trainer, inputs, candidates, valid, *grads[:3]))
        return row_loss_sum, new_states, updates

    def _masks(self, seed, batch_size):
        masks = []
        for stream, (rate, width) in enumerate(dropout_plan(self.model)):
            if rate <= 0:
                masks.append(None)
                continue
            noise = tf.random.stateless_uniform((batch_size, width), seed=tf.stack([seed[0] * 7919 + stream, seed[1]]))
            masks.append(tf.cast(noise >= rate, tf.float32) / (1.0 - rate))
        return masks

    def _apply(self, updates, valid):
        """Adagrad-momentum updates, written into the variables: dense, or only the rows used (sparse).

        A step with no valid row touches no row and leaves the dense weights as they are.
        """
        trainer = self.trainer
        variables = {name: (param.value, accumulator, velocity) for name, param, accumulator, velocity
                     in zip(trainer.names, trainer.variables, self._accumulators, self._velocities)}
        sparse = {name: tables for name, tables in variables.items() if name in SPARSE}
        for name, whole, result in sparse_table_updates(trainer, sparse, updates):
            if whole:
                _assign(variables[name], result)
                continue
            indices, rows = result
            for table, row in zip(variables[name], rows):
                if row is not None:  # None: the velocity, without momentum
                    table.scatter_nd_update(indices, row)
        for name, tables in variables.items():
            if name not in SPARSE:
                _assign(tables, dense_update(*tables, updates[name], valid, trainer.learning_rate, trainer.momentum))

    def _eval_block_fn(self, inputs, targets, resets, states):
        n_steps = tf.shape(inputs)[0]
        greater = tf.zeros(tf.shape(inputs), tf.int32)
        equal = tf.zeros(tf.shape(inputs), tf.int32)

        def body(t, states, greater, equal):
            keep = 1.0 - tf.cast(resets[t], tf.float32)[:, None]
            states = self.model.step(inputs[t], [state * keep for state in states])
            scores = self.model.scores(states[-1])
            target = tf.gather(scores, targets[t], batch_dims=1)[:, None]
            above = tf.reduce_sum(tf.cast(scores > target, tf.int32), axis=1)
            ties = tf.reduce_sum(tf.cast(scores == target, tf.int32), axis=1)
            index = tf.reshape(t, (1, 1))
            greater = tf.tensor_scatter_nd_update(greater, index, above[None])
            equal = tf.tensor_scatter_nd_update(equal, index, ties[None])
            return t + 1, states, greater, equal

        _, states, greater, equal = tf.while_loop(
            lambda t, *_: t < n_steps, body, (tf.constant(0), list(states), greater, equal))
        return greater, equal, states


def _assign(tables, values):
    for table, value in zip(tables, values):
        if value is not table:  # the velocity, without momentum
            table.assign(value)
