"""The GRU4Rec network in Keras 3: item embedding -> GRU layers -> scores against the item table.

``GRU4Rec((items, lengths))`` takes item-index sequences ``[N, T]`` padded with
``n_items`` (an index no item uses) and their lengths ``[N]``, and returns the
last GRU layer's hidden state after position ``length - 1`` (zero initial
state). Scores are ``hidden @ item_table.T + item_bias``. This is the inference
and ONNX-export path; training and evaluation step the same weights one item at a time
(:func:`forward_step`, whose GRU is :func:`gru_step`).

Embedding modes, as in the reference:

- ``shared``: the output item table is also the input embedding (its width is the last layer's);
- ``separate``: an input table of its own (width ``embedding_size``, default the last layer's);
- ``none``: one-hot input; the first GRU layer's input kernel ``[n_items, 3H]`` plays the table.

The GRU is the standard one (Keras ``reset_after=False``): the reset gate
scales the previous state before its matrix product. Gate order z, r, h.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from model_code.gru4rec.params import EMBEDDINGS

INPUT_TABLE = {"shared": "item_table", "separate": "input_table", "none": "input_table"}
"""The name (:meth:`GRU4Rec.named_weights`) of the table whose rows the input items select."""


@keras.saving.register_keras_serializable(package="gru4rec")
class GateUniform(keras.initializers.Initializer):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)) for each of ``gates`` side-by-side gate matrices."""

    def __init__(self, gates: int = 1, seed=None):
        self.gates = gates
        self.seed = seed

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = shape[0], shape[-1] // self.gates
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"gates": self.gates, "seed": self.seed}


def recurrent_columns(recurrent_kernel):
    """A GRU layer's recurrent kernel ``[H, 3H]`` as its gate columns ``[H, 2H]`` (z, r) and candidate columns ``[H,
    H]``."""
    units = ops.shape(recurrent_kernel)[0]
    return recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units:]


def gru_step(input_projection, state, recurrent_gates, recurrent_candidate):
    """One GRU step; returns the new state ``[B, H]``.

    ``input_projection`` = x @ kernel + bias ``[B, 3H]``; ``recurrent_gates``
    and ``recurrent_candidate``: the recurrent kernel's two column blocks
    (:func:`recurrent_columns`), which the candidate multiplies by different states.
    """
    units = ops.shape(state)[-1]
    gates = ops.sigmoid(input_projection[:, : 2 * units] + ops.matmul(state, recurrent_gates))
    update, reset = gates[:, :units], gates[:, units:]
    candidate = ops.tanh(input_projection[:, 2 * units:] + ops.matmul(reset * state, recurrent_candidate))
    return update * state + (1.0 - update) * candidate


def forward_step(model, weights: dict, items, states):
    """One item per slot through the GRU layers (no dropout): ``items [B]``, ``states`` per layer ``[B, H_l]``.

    ``weights``: tensors by the names of :meth:`GRU4Rec.named_weights`, the model's own variables or
    arrays standing in for them (the compiled evaluation passes its block's weights). An item index
    past the catalogue (the padding index) reads the last row; its state is never used.
    Returns the new states.
    """
    items = ops.minimum(items, model.n_items - 1)
    x = None
    new_states = []
    for i, state in enumerate(states):
        if i == 0 and model.embedding == "none":  # one-hot input: the first kernel's rows are the projection
            projection = ops.take(weights["input_table"], items, axis=0) + weights["bias_0"]
        else:
            if i == 0:
                x = ops.take(weights[INPUT_TABLE[model.embedding]], items, axis=0)
            projection = ops.matmul(x, weights[f"kernel_{i}"]) + weights[f"bias_{i}"]
        x = gru_step(projection, state, *recurrent_columns(weights[f"recurrent_{i}"]))
        new_states.append(x)
    return new_states


def item_scores(hidden, item_table, item_bias):
    """Scores of every item ``[B, n_items]`` from last-layer states ``[B, H]``."""
    return ops.matmul(hidden, ops.transpose(item_table)) + item_bias


@keras.saving.register_keras_serializable(package="gru4rec")
class GRU4Rec(keras.Model):
    """Session-based recommender: GRU layers over item sequences, scored against an item table."""

    def __init__(
        self,
        n_items: int,
        layers=(100,),
        embedding: str = "shared",
        embedding_size: int | None = None,
        dropout_embedding: float = 0.0,
        dropout_hidden: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        if n_items < 1 or not layers or any(int(units) < 1 for units in layers):
            raise ValueError(f"need n_items >= 1 and layer widths >= 1, got n_items={n_items}, layers={layers!r}")
        if embedding_size is not None and embedding != "separate":
            raise ValueError("embedding_size applies to embedding='separate' only")
        self.n_items = int(n_items)
        self.layer_sizes = tuple(int(units) for units in layers)
        self.embedding = embedding
        self.embedding_size = embedding_size
        self.dropout_embedding = float(dropout_embedding)
        self.dropout_hidden = float(dropout_hidden)
        self.seed = seed
        seeds = (
            np.random.SeedSequence(seed).generate_state(len(self.layer_sizes) + 2)
            if seed is not None
            else [None] * (len(self.layer_sizes) + 2)
        )
        hidden = self.layer_sizes[-1]
        self.item_table = self.add_weight(
            shape=(self.n_items, hidden), initializer=GateUniform(1, _int(seeds[0])), name="item_table")
        self.item_bias = self.add_weight(shape=(self.n_items,), initializer="zeros", name="item_bias")
        width = {"shared": hidden, "separate": embedding_size or hidden, "none": self.n_items}[embedding]
        if embedding == "separate":
            self.input_table = self.add_weight(
                shape=(self.n_items, width), initializer=GateUniform(1, _int(seeds[1])), name="input_table")
        self.grus = []
        for i, units in enumerate(self.layer_sizes):
            gru = keras.layers.GRU(
                units, return_sequences=True, reset_after=False,
                kernel_initializer=GateUniform(3, _int(seeds[i + 2])),
                recurrent_initializer=GateUniform(3, _int(seeds[i + 2]) + 1 if seeds[i + 2] is not None else None),
                bias_initializer="zeros", name=f"gru_{i}",
            )
            gru.build((None, None, width))
            self.grus.append(gru)
            width = units
        self.built = True

    @property
    def hidden_size(self) -> int:
        return self.layer_sizes[-1]

    def input_weights(self):
        """The table whose rows are looked up by input item: item_table, input_table or the first GRU kernel."""
        return {
            "shared": self.item_table,
            "separate": getattr(self, "input_table", None),
            "none": self.grus[0].cell.kernel,
        }[self.embedding]

    def embed(self, items):
        """Input vectors ``[..., width]`` of item indices (padding index n_items: any vector, it is never read)."""
        if self.embedding == "none":
            return ops.one_hot(items, self.n_items)
        items = ops.minimum(items, self.n_items - 1)
        return ops.take(self.input_weights(), items, axis=0)

    def call(self, inputs):
        items, lengths = inputs
        sequence = self.embed(ops.cast(items, "int32"))
        for gru in self.grus:
            sequence = gru(sequence)
        last = ops.maximum(ops.cast(lengths, "int32") - 1, 0)
        index = ops.broadcast_to(ops.reshape(last, (-1, 1, 1)), (ops.shape(sequence)[0], 1, self.hidden_size))
        return ops.squeeze(ops.take_along_axis(sequence, index, axis=1), axis=1)

    def zero_states(self, batch_size: int):
        return [ops.zeros((batch_size, units)) for units in self.layer_sizes]

    def named_weights(self) -> dict:
        """The trained variables by name: the item tables (``item_table``, ``item_bias``, and ``input_table``
        unless shared: with one-hot input the first GRU kernel is the input table) and each layer's
        ``kernel_i``, ``recurrent_i`` and ``bias_i``."""
        weights = {"item_table": self.item_table, "item_bias": self.item_bias}
        if self.embedding != "shared":
            weights["input_table"] = self.input_weights()
        for i, gru in enumerate(self.grus):
            cell = gru.cell
            if not (i == 0 and self.embedding == "none"):
                weights[f"kernel_{i}"] = cell.kernel
            weights.update({f"recurrent_{i}": cell.recurrent_kernel, f"bias_{i}": cell.bias})
        return weights

    def step(self, items, states):
        """One item per slot: ``items [B]``, ``states`` per layer ``[B, H_l]`` -> new states (no dropout)."""
        return forward_step(self, self.named_weights(), items, states)

    def scores(self, hidden):
        """Scores of every item ``[B, n_items]`` from last-layer states ``[B, H]``."""
        return item_scores(hidden, self.item_table, self.item_bias)

    def get_config(self):
        config = super().get_config()
        config.update(
            n_items=self.n_items, layers=list(self.layer_sizes), embedding=self.embedding,
            embedding_size=self.embedding_size, dropout_embedding=self.dropout_embedding,
            dropout_hidden=self.dropout_hidden, seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = tuple(config["layers"])
        return cls(**config)


def _int(value):
    return None if value is None else int(value)


class SessionScorer:
    """:class:`model_code.ranking.metrics.NextItemScorer` over a GRU4Rec model, stepping one item per slot."""

    def __init__(self, model: GRU4Rec):
        self.model = model
        self.n_items = model.n_items
        self._states = None

    def score(self, inputs: np.ndarray, resets: np.ndarray) -> np.ndarray:
        if self._states is None or ops.shape(self._states[0])[0] != len(inputs):
            self._states = self.model.zero_states(len(inputs))
        keep = ops.expand_dims(ops.cast(~np.asarray(resets, bool), "float32"), 1)
        states = [state * keep for state in self._states]
        self._states = self.model.step(ops.convert_to_tensor(np.asarray(inputs, np.int32)), states)
        return ops.convert_to_numpy(self.model.scores(self._states[-1]))
