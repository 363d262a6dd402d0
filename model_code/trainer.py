"""Compiled GRU4Rec training and evaluation (TensorFlow backend).

Training feeds the epoch in blocks of ``block_steps`` session-parallel steps.
One block is one XLA-compiled call: a ``tf.while_loop`` over the block's
steps carries the hidden states, the weights and the optimizer slots, so the
host touches nothing between steps. Per step:

1. zero the states of slots that start a new session; look up the input rows;
2. run the GRU layers one step (dropout on the input and on each layer's
   output; the dropped-out output is the state carried to the next step, as a
   constant: no back-propagation through time);
3. score the batch's targets plus the block's shared negatives for this step
   (drawn on the host, popularity ** alpha, one draw per block);
4. loss (cross-entropy with logQ correction, or BPR-max), averaged over the
   valid rows, as the reference does (the presets' learning rates assume it);
5. gradients with respect to the *gathered* item rows and the GRU weights;
   Adagrad with momentum: dense for the GRU weights, row-sparse for the item
   tables (duplicate rows summed first, untouched rows left alone).

Evaluation runs the test sessions the same way (zero state at each session
start), scores every item, and counts inside the compiled call how many items
score ``>`` and ``>=`` the target; ranks follow from the tie mode.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
from keras import ops

from model_code import losses, optimizer
from model_code.metrics import CUTOFFS, TIE_MODES, RankingMetrics
from model_code.model import GRU4Rec, gru_step
from model_code.sampler import PopularitySampler
from model_code.session_batches import EpochSteps, SessionArrays, session_parallel_steps

LOSSES = ("cross-entropy", "bpr-max")
ProgressCallback = Callable[[int, float], None]


class Trainer:
    """Trains a :class:`GRU4Rec` model with session-parallel mini-batches and sampled negatives."""

    def __init__(
        self,
        model: GRU4Rec,
        *,
        loss: str = "cross-entropy",
        n_sample: int = 2048,
        sample_alpha: float = 0.75,
        learning_rate: float = 0.05,
        momentum: float = 0.0,
        bpreg: float = 1.0,
        elu: float = 0.0,
        logq: float = 0.0,
        batch_size: int = 32,
        block_steps: int = 200,
        item_counts: np.ndarray | None = None,
        seed: int = 0,
        jit_compile: bool = True,
    ):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if item_counts is None:
            item_counts = np.ones(model.n_items)
        if len(item_counts) != model.n_items:
            raise ValueError(f"item_counts has {len(item_counts)} entries, the model has {model.n_items} items")
        self.model = model
        self.loss = loss
        self.n_sample = int(n_sample)
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.bpreg = float(bpreg)
        self.elu = float(elu)
        self.logq = float(logq)
        self.batch_size = int(batch_size)
        self.block_steps = int(block_steps)
        self.seed = int(seed)
        self.sampler = PopularitySampler(item_counts, sample_alpha, seed)
        self._log_q = tf.constant(self.sampler.log_probabilities())
        self._names, self._variables = _trainable(model)
        self._sparse = {"item_table", "item_bias", "input_table"}
        self._accumulators = [tf.Variable(tf.zeros_like(v.value), trainable=False) for v in self._variables]
        self._velocities = [tf.Variable(tf.zeros_like(v.value), trainable=False) for v in self._variables]
        self.step_count = 0
        self._train_block = tf.function(self._train_block_fn, jit_compile=jit_compile, reduce_retracing=True)
        self._eval_block = tf.function(self._eval_block_fn, jit_compile=jit_compile, reduce_retracing=True)

    # ---- training -------------------------------------------------------
    def train_epoch(self, steps: EpochSteps, progress_callback: ProgressCallback | None = None) -> dict:
        """One pass over ``steps``; returns {"loss": mean over valid examples, "examples", "seconds"}."""
        if steps.batch_size != self.batch_size:
            raise ValueError(f"steps have batch size {steps.batch_size}, the trainer was built for {self.batch_size}")
        start = time.perf_counter()
        states = [tf.zeros((self.batch_size, units)) for units in self.model.layer_sizes]
        loss_sum, examples = 0.0, 0
        for block in steps.blocks(self.block_steps):
            negatives = self.sampler.draw(self.block_steps, self.n_sample)
            block_loss, states = self._train_block(
                block.inputs, block.targets, block.resets, block.valid, negatives,
                tf.constant([self.seed, self.step_count], dtype=tf.int32), states,
            )
            self.step_count += self.block_steps
            loss_sum += float(block_loss)
            examples += block.n_examples
            if progress_callback is not None:
                progress_callback(examples, loss_sum / max(examples, 1))
        return {"loss": loss_sum / max(examples, 1), "examples": examples, "seconds": time.perf_counter() - start}

    def _train_block_fn(self, inputs, targets, resets, valid, negatives, seed, states):
        n_steps = tf.shape(inputs)[0]

        def body(t, states, loss_sum):
            step_seed = tf.stack([seed[0], seed[1] + t])
            params = [v.value.read_value() for v in self._variables]
            row_loss, states, updates = self._train_step(
                inputs[t], targets[t], resets[t], valid[t], negatives[t], step_seed, states, params)
            with tf.control_dependencies([row_loss] + states):
                self._apply(updates)
            return t + 1, states, loss_sum + tf.reduce_sum(row_loss)

        _, states, loss_sum = tf.while_loop(
            lambda t, *_: t < n_steps, body, (tf.constant(0), list(states), tf.constant(0.0)))
        return loss_sum, states

    def _train_step(self, inputs, targets, resets, valid, negatives, seed, states, params):
        """Forward and backward of one step; returns (row losses, new states, gradient updates)."""
        weights = dict(zip(self._names, params))
        keep = 1.0 - tf.cast(resets, tf.float32)[:, None]
        states = [state * keep for state in states]
        candidates = tf.concat([targets, negatives], axis=0)
        input_name = "item_table" if self.model.embedding == "shared" else "input_table"
        dense_names = [name for name in self._names if name not in self._sparse]
        with tf.GradientTape() as tape:
            input_rows = tf.gather(weights[input_name], inputs)
            output_rows = tf.gather(weights["item_table"], candidates)
            bias_rows = tf.gather(weights["item_bias"], candidates)
            dense = {name: weights[name] for name in dense_names}
            tape.watch([input_rows, output_rows, bias_rows] + list(dense.values()))
            hidden, new_states = self._forward(input_rows, states, dense, seed)
            scores = tf.matmul(hidden, output_rows, transpose_b=True) + bias_rows[None, :]
            row_loss = self._row_loss(scores, valid, candidates)
            loss = losses.mean_over_valid(row_loss, valid)
        grads = tape.gradient(loss, [input_rows, output_rows, bias_rows] + list(dense.values()))
        grad_input, grad_output, grad_bias = grads[:3]
        column_used = losses.candidate_mask(valid, tf.shape(candidates)[0])
        updates = {name: grad for name, grad in zip(dense_names, grads[3:])}
        if input_name == "item_table":
            updates["item_table"] = (
                tf.concat([inputs, candidates], 0), tf.concat([grad_input, grad_output], 0), tf.concat([valid, column_used], 0))
        else:
            updates["item_table"] = (candidates, grad_output, column_used)
            updates["input_table"] = (inputs, grad_input, valid)
        updates["item_bias"] = (candidates, grad_bias, column_used)
        return row_loss, new_states, updates

    def _forward(self, input_rows, states, dense, seed):
        """GRU layers for one step with dropout; returns (last output, states to carry, as constants)."""
        model = self.model
        x = input_rows
        if model.dropout_embedding > 0:
            mask_shape = (tf.shape(x)[0], 1) if model.embedding == "none" else tf.shape(x)
            x = _dropout(x, model.dropout_embedding, seed, 0, mask_shape)
        new_states = []
        for i, state in enumerate(states):
            if i == 0 and model.embedding == "none":
                projection = x + dense["bias_0"]
            else:
                projection = tf.matmul(x, dense[f"kernel_{i}"]) + dense[f"bias_{i}"]
            x = gru_step(projection, state, dense[f"recurrent_{i}"])
            if model.dropout_hidden > 0:
                x = _dropout(x, model.dropout_hidden, seed, i + 1, tf.shape(x))
            new_states.append(tf.stop_gradient(x))
        return x, new_states

    def _row_loss(self, scores, valid, candidates):
        if self.loss == "cross-entropy":
            return losses.cross_entropy(scores, valid, tf.gather(self._log_q, candidates), self.logq)
        return losses.bpr_max(scores, valid, self.bpreg, self.elu)

    def _apply(self, updates):
        """Adagrad-momentum updates, written into the variables: dense, or only the rows used (sparse)."""
        for name, param, accumulator, velocity in zip(self._names, self._variables, self._accumulators, self._velocities):
            tables = (param.value, accumulator, velocity)
            if name in self._sparse:
                ids, grads, touched = updates[name]
                indices, rows = optimizer.sparse_row_updates(
                    *tables, ids, grads, touched, self.learning_rate, self.momentum)
                for table, row in zip(tables, rows):
                    table.scatter_nd_update(indices, row)
            else:
                new = optimizer.adagrad_momentum(*tables, updates[name], self.learning_rate, self.momentum)
                for table, value in zip(tables, new):
                    table.assign(value)

    # ---- evaluation -----------------------------------------------------
    def evaluate(
        self,
        test: SessionArrays,
        batch_size: int = 512,
        cutoffs: Sequence[int] = CUTOFFS,
        ties: str = "conservative",
        block_steps: int = 64,
    ) -> dict[str, float]:
        """Recall@k and MRR@k of every next test event ranked against all items (see metrics.evaluate)."""
        if ties not in TIE_MODES:
            raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
        steps = session_parallel_steps(test, batch_size)
        metrics = RankingMetrics(cutoffs)
        states = [tf.zeros((batch_size, units)) for units in self.model.layer_sizes]
        for block in steps.blocks(block_steps):
            greater, equal, states = self._eval_block(block.inputs, block.targets, block.resets, states)
            greater, equal = greater.numpy()[block.valid], equal.numpy()[block.valid]
            metrics.add(_ranks(greater, equal, ties))
        return metrics.result()

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

    # ---- checkpoints ----------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Optimizer slots, step counter and sampler state (the weights live in the model)."""
        state = {"step_count": np.array(self.step_count, dtype=np.int64)}
        for name, accumulator, velocity in zip(self._names, self._accumulators, self._velocities):
            state[f"accumulator/{name}"] = accumulator.numpy()
            state[f"velocity/{name}"] = velocity.numpy()
        state.update(self.sampler.get_state())
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        for name, accumulator, velocity in zip(self._names, self._accumulators, self._velocities):
            for slot, kind in ((accumulator, "accumulator"), (velocity, "velocity")):
                value = np.asarray(state[f"{kind}/{name}"])
                if value.shape != tuple(slot.shape):
                    raise ValueError(f"checkpoint {kind}/{name} has shape {value.shape}, expected {tuple(slot.shape)}")
                slot.assign(value)
        self.step_count = int(state["step_count"])
        self.sampler.set_state(state)


def _trainable(model: GRU4Rec) -> tuple[list[str], list]:
    """Names and Keras variables the trainer updates: item tables (sparse) and GRU weights (dense)."""
    names = ["item_table", "item_bias"]
    variables = [model.item_table, model.item_bias]
    if model.embedding != "shared":
        names.append("input_table")
        variables.append(model.input_weights())
    for i, gru in enumerate(model.grus):
        cell = gru.cell
        if not (i == 0 and model.embedding == "none"):
            names.append(f"kernel_{i}")
            variables.append(cell.kernel)
        names += [f"recurrent_{i}", f"bias_{i}"]
        variables += [cell.recurrent_kernel, cell.bias]
    return names, variables


def _dropout(x, rate, seed, stream, mask_shape):
    """Inverted dropout with a stateless mask: the same seed and stream give the same mask."""
    noise = tf.random.stateless_uniform(mask_shape, seed=tf.stack([seed[0] * 7919 + stream, seed[1]]))
    return x * tf.cast(noise >= rate, x.dtype) / (1.0 - rate)


def _ranks(greater: np.ndarray, equal: np.ndarray, ties: str) -> np.ndarray:
    """Ranks from counts of scores above (``greater``) and equal to (``equal``, the target included) the target."""
    greater = greater.astype(np.float64)
    if ties == "conservative":
        return greater + equal
    if ties == "standard":
        return 1.0 + greater
    return 1.0 + greater + (equal - 1) / 2.0
