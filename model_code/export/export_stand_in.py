"""Export with a small stand-in for the input item table, then put the real table into the ONNX graph.

The TensorFlow-to-ONNX conversion freezes every weight into the graph and then
copies the graph many times over (Grappler, and tf2onnx's optimizers, which
deep-copy the whole graph before each pass and leave the copies to the cyclic
garbage collector). A 43k x 512 item table (88 MB) took one export to more
than 7 GB resident. The graph's shape does not depend on the catalogue's size:
the input table is read by one gather, after the item indices are clamped to
the table's last row (the padding index). So the model is exported with a
stand-in of :data:`STAND_IN_ITEMS` rows, and two values of the exported graph
are replaced afterwards: the stand-in table by the real one and the clamp
bound ``STAND_IN_ITEMS - 1`` by ``n_items - 1``. Each must be found exactly
once, and the export then checks the graph against the real Keras model.

One-hot input (``embedding="none"``) has no table to swap (the first GRU
kernel plays it, and the conversion rewrites it); such models export whole.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

STAND_IN_ITEMS = 1009
"""Rows of the stand-in table: a prime, so that its last index (the clamp bound 1008) is unlikely to be
any other constant of the graph; an ambiguous match fails the export rather than guessing."""


class StandInError(RuntimeError):
    """The exported graph does not hold the stand-in's table or clamp bound exactly once."""


def swappable(model) -> bool:
    """Whether ``model`` exports through a stand-in (an input table it reads by gather)."""
    return model.embedding != "none"


def stand_in_model(model, seed: int = 0):
    """A copy of ``model`` with :data:`STAND_IN_ITEMS` items: the same GRU weights, a random input table."""
    from model_code.gru4rec.model import GRU4Rec

    config = dict(model.get_config(), n_items=STAND_IN_ITEMS)
    stand_in = GRU4Rec.from_config(config)
    for mine, theirs in zip(stand_in.grus, model.grus):
        mine.set_weights(theirs.get_weights())
    table = stand_in.input_weights()
    table.assign(np.random.default_rng(seed).uniform(-1.0, 1.0, tuple(table.shape)).astype(np.float32))
    return stand_in


def put_real_table(graph: onnx.GraphProto, stand_in, model) -> None:
    """Replace the stand-in's input table and clamp bound in ``graph`` (in place) by ``model``'s."""
    stand_in_table = np.asarray(stand_in.input_weights().numpy(), dtype=np.float32)
    table = _initializer(graph, "input table", list(stand_in_table.shape),
                         lambda value: np.array_equal(value, stand_in_table))
    table.CopyFrom(numpy_helper.from_array(np.asarray(model.input_weights().numpy(), np.float32), table.name))
    bound = _initializer(graph, "padding clamp bound", None, lambda value: value.dtype.kind == "i"
                         and value.size == 1 and int(value.reshape(-1)[0]) == STAND_IN_ITEMS - 1)
    value = numpy_helper.to_array(bound)
    bound.CopyFrom(numpy_helper.from_array(np.full(value.shape, model.n_items - 1, value.dtype), bound.name))


def _initializer(graph: onnx.GraphProto, what: str, dims: list[int] | None, matches) -> onnx.TensorProto:
    """The one initializer with ``dims`` (None: of one element) whose value ``matches``."""
    def candidate(tensor) -> bool:
        shape_fits = list(tensor.dims) == dims if dims is not None else int(np.prod(tensor.dims)) == 1
        return shape_fits and matches(numpy_helper.to_array(tensor))

    found = [tensor for tensor in graph.initializer if candidate(tensor)]
    if len(found) != 1:
        raise StandInError(f"the exported graph holds the stand-in's {what} {len(found)} times, expected once")
    return found[0]
