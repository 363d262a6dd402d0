"""Compiled GRU4Rec training and evaluation, the host side (backend-neutral).

Training feeds the epoch in blocks of ``block_steps`` session-parallel steps.
One block is one compiled call (XLA): a loop over the block's steps carries
the hidden states while the weights and optimizer slots are updated in place,
so the host touches nothing between steps. Per step:

1. zero the states of slots that start a new session; look up the input rows;
2. run the GRU layers one step (dropout on the input and on each layer's
   output; the dropped-out output is the state carried to the next step, as a
   constant: no back-propagation through time);
3. score the batch's targets plus this step's shared negatives (drawn on the
   host for the whole block, popularity ** alpha);
4. loss (cross-entropy with logQ correction: the targets' columns by
   log(count), the extra negatives' by alpha * log(count); or BPR-max), summed over the
   valid rows and divided by the batch size: the batch mean of the reference,
   whose learning rates the presets assume (an empty slot at an epoch's tail
   counts as 0 rather than raising its neighbours' weight);
5. gradients with respect to the *gathered* item rows and the GRU weights;
   Adagrad with momentum: dense for the GRU weights, row-sparse for the item
   tables (duplicate rows summed first, untouched rows left alone; a small
   table is updated as a whole to the same effect, ``table_update``).

Evaluation runs the test sessions the same way (zero state at each session
start), scores every item, and counts inside the compiled call how many items
score ``>`` and ``==`` the target; ranks follow from the tie mode.

The step's arithmetic is written in ``keras.ops`` (:mod:`model_code.gru4rec.train_step`,
and :func:`model_code.gru4rec.model.forward_step` for evaluation); the compiled loops
run on Keras's JAX backend (:mod:`model_code.gru4rec.trainer_jax`), which the
training commands select themselves (:mod:`model_code.gru4rec.training_env`). A step
with no valid row (padding at the end of an epoch) changes no weight and no
optimizer slot.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from model_code.data.session_batches import EpochSteps, SessionArrays, session_parallel_steps
from model_code.gru4rec.model import GRU4Rec
from model_code.gru4rec.params import GRU4RecParams
from model_code.gru4rec.sampler import PopularitySampler, log_item_counts
from model_code.gru4rec.train_step import TABLE_UPDATES
from model_code.gru4rec.training_env import matmul_dtype, this_cpu
from model_code.ranking.metrics import CUTOFFS, TIE_MODES, RankingMetrics

ProgressCallback = Callable[[int, float], None]


class Trainer:
    """Trains a :class:`GRU4Rec` model with session-parallel mini-batches and sampled negatives.

    The training settings (loss, negatives, learning rate, batch size, ...) are ``params``'s, checked
    when the parameters were made; the model's shape (layers, embedding, dropout) is the model's own.
    ``item_counts`` (training counts per item; default: all equal) drive the sampler and the logQ
    correction; ``seed`` seeds the sampler and the dropout masks.
    """

    def __init__(self, model: GRU4Rec, params: GRU4RecParams, *, item_counts: np.ndarray | None = None,
                 seed: int = 0, table_update: str = "auto"):
        if table_update not in TABLE_UPDATES:
            raise ValueError(f"table_update must be one of {TABLE_UPDATES}, got {table_update!r}")
        if item_counts is None:
            item_counts = np.ones(model.n_items)
        if len(item_counts) != model.n_items:
            raise ValueError(f"item_counts has {len(item_counts)} entries, the model has {model.n_items} items")
        self.model = model
        self.loss = params.loss
        self.n_sample = int(params.n_sample)
        self.learning_rate = float(params.learning_rate)
        self.momentum = float(params.momentum)
        self.bpreg = float(params.bpreg)
        self.elu = float(params.elu)
        self.logq = float(params.logq)
        self.logq_form = params.logq_form
        self.sample_alpha = float(params.sample_alpha)
        self.batch_size = int(params.batch_size)
        self.block_steps = int(params.block_steps)
        self.seed = int(seed)
        self.table_update = table_update
        self.matmul_dtype = matmul_dtype(params.matmul_precision, this_cpu(), max(model.layer_sizes))
        self.sampler = PopularitySampler(item_counts, params.sample_alpha, seed)
        self.log_counts = log_item_counts(item_counts)
        self.names, self.variables = trainable_weights(model)
        self.step_count = 0
        self._engine = _jax_engine()(self)

    # ---- training -------------------------------------------------------
    def train_epoch(self, steps: EpochSteps, progress_callback: ProgressCallback | None = None) -> dict:
        """One pass over ``steps``; returns {"loss": mean over valid examples, "examples", "seconds"}."""
        if steps.batch_size != self.batch_size:
            raise ValueError(f"steps have batch size {steps.batch_size}, the trainer was built for {self.batch_size}")
        start = time.perf_counter()
        states = self._engine.zero_states(self.batch_size)
        loss_sum, examples = 0.0, 0
        blocks = steps.blocks(self.block_steps)
        block = next(blocks, None)
        negatives = None if block is None else self.sampler.draw(self.block_steps, self.n_sample)
        while block is not None:
            block_loss, states = self._engine.train_block(block, negatives, (self.seed, self.step_count), states)
            self.step_count += self.block_steps
            # Where the engine runs the block asynchronously (JAX), the host prepares the next one meanwhile.
            next_block = next(blocks, None)
            if next_block is not None:
                negatives = self.sampler.draw(self.block_steps, self.n_sample)
            loss_sum += float(block_loss)
            examples += block.n_examples
            if progress_callback is not None:
                progress_callback(examples, loss_sum / max(examples, 1))
            block = next_block
        return {"loss": loss_sum / max(examples, 1), "examples": examples, "seconds": time.perf_counter() - start}

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
        states = self._engine.zero_states(batch_size)
        for block in steps.blocks(block_steps):
            greater, equal, states = self._engine.eval_block(block, states)
            metrics.add(_ranks(greater[block.valid], equal[block.valid], ties))
        return metrics.result()

    def release(self) -> None:
        """Drop the optimizer slots and the compiled steps; the trainer cannot train or evaluate afterwards."""
        self._engine = None

    # ---- checkpoints ----------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Optimizer slots, step counter and sampler state (the weights live in the model)."""
        state = {"step_count": np.array(self.step_count, dtype=np.int64)}
        for name, (accumulator, velocity) in zip(self.names, self._engine.get_slots()):
            state[f"accumulator/{name}"] = accumulator
            state[f"velocity/{name}"] = velocity
        state.update(self.sampler.get_state())
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        slots = []
        for name, variable in zip(self.names, self.variables):
            pair = []
            for kind in ("accumulator", "velocity"):
                value = np.asarray(state[f"{kind}/{name}"], dtype=np.float32)
                if value.shape != tuple(variable.shape):
                    raise ValueError(
                        f"checkpoint {kind}/{name} has shape {value.shape}, expected {tuple(variable.shape)}"
                    )
                pair.append(value)
            slots.append(tuple(pair))
        self._engine.set_slots(slots)
        self.step_count = int(state["step_count"])
        self.sampler.set_state(state)


def trainable_weights(model: GRU4Rec) -> tuple[list[str], list]:
    """Names and Keras variables the trainer updates: item tables (sparse) and GRU weights (dense)."""
    weights = model.named_weights()
    return list(weights), list(weights.values())


def _jax_engine():
    """The compiled engine's class; training runs on Keras's JAX backend only."""
    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(
            f"the GRU4Rec trainer runs on Keras's JAX backend, this process uses {backend!r}: set "
            "KERAS_BACKEND=jax before Keras is imported (the training commands do it themselves)")
    from model_code.gru4rec.trainer_jax import JaxEngine
    return JaxEngine


def _ranks(greater: np.ndarray, equal: np.ndarray, ties: str) -> np.ndarray:
    """Ranks from counts of scores above (``greater``) and equal to (``equal``, the target included) the target."""
    greater = greater.astype(np.float64)
    if ties == "conservative":
        return greater + equal
    if ties == "standard":
        return 1.0 + greater
    return 1.0 + greater + (equal - 1) / 2.0
