"""Export the trained model's serving pieces: ``scorer.onnx`` and the output layer arrays.

``scorer.onnx`` is the Keras model's own forward pass (``model.export(...,
format="onnx")``, i.e. tf2onnx over the traced ``call``): padded item-index
sequences and their lengths in, each sequence's final hidden state out. The
output item table and bias are written beside it as ``.npy`` arrays, and
serving computes ``hidden @ item_embeddings.T + item_bias`` with NumPy. Keeping
the scores out of the graph lets serving score many sessions with one BLAS
matrix product and pick the top k by a partial sort, and keeps the graph
small; the graph only runs the GRU. The GRU's weights are taken out of the
exported loop (:mod:`model_code.onnx_loops`), which halves the GRU's time for
one session of a large model. The conversion runs on a copy of the model with
a small stand-in input table, and the real table is put into the finished
graph (:mod:`model_code.export_stand_in`): converting a large table costs
several gigabytes of memory.

Export needs the TensorFlow backend (tf2onnx). On any other backend
:func:`export_available` says why not and training skips this step.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from model_code import artifacts, export_stand_in
from model_code.memory import release_heap
from model_code.onnx_loops import hoist_loop_invariants

DIM_NAMES = {"items": ("batch", "time"), "lengths": ("batch",), "hidden": ("batch", None)}


class ExportError(RuntimeError):
    """The exported graph does not have the contract's inputs/outputs or does not match Keras."""


def export_available() -> tuple[bool, str]:
    """(True, "") where ONNX export can run; else (False, the reason)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False, f"ONNX export needs the TensorFlow backend (this run uses {keras.backend.backend()!r})"
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as err:
        return False, f"ONNX export needs onnx and tf2onnx: {err}"
    return True, ""


def export_scorer(model, model_dir: str | os.PathLike, check: bool = True) -> None:
    """Write scorer.onnx, item_embeddings.npy and item_bias.npy for ``model`` into ``model_dir``.

    With ``check``, the exported graph is loaded in ONNX Runtime and must give
    the Keras model's hidden states on a few sample sessions.
    """
    available, reason = export_available()
    if not available:
        raise ExportError(reason)
    model_dir = Path(model_dir)
    target = model_dir / artifacts.SCORER_FILE
    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=f".{target.name}.", suffix=".onnx")
    os.close(fd)
    try:
        _export_graph(model, tmp)
        if check:
            check_scorer(model, tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    table, bias = output_layer(model)
    artifacts.write_array(model_dir / artifacts.EMBEDDINGS_FILE, table)
    artifacts.write_array(model_dir / artifacts.BIAS_FILE, bias)


def output_layer(model) -> tuple[np.ndarray, np.ndarray]:
    """The model's output item table [n_items, H] and bias [n_items] as float32 arrays."""
    table = np.asarray(model.item_table.numpy(), dtype=np.float32)
    bias = np.asarray(model.item_bias.numpy(), dtype=np.float32)
    return table, bias


def _export_graph(model, path: str) -> None:
    import onnx
    import tensorflow as tf

    items_name, lengths_name = artifacts.SCORER_INPUTS
    signature = [(
        tf.TensorSpec([None, None], tf.int32, name=items_name),
        tf.TensorSpec([None], tf.int32, name=lengths_name),
    )]
    converted = export_stand_in.stand_in_model(model) if export_stand_in.swappable(model) else model
    with warnings.catch_warnings():
        # Keras' tf2onnx shim probes np.object, which NumPy 2 answers with a FutureWarning
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        converted.export(path, format="onnx", input_signature=signature, verbose=False)
    release_heap()  # the converter's graph copies, before the real table comes in
    graph = onnx.load(path)
    if converted is not model:
        export_stand_in.put_real_table(graph.graph, converted, model)
    _rename_output(graph.graph, artifacts.SCORER_OUTPUT)
    _name_dynamic_dims(graph.graph)
    hoist_loop_invariants(graph.graph)
    onnx.checker.check_model(graph)
    onnx.save(graph, path)


def _rename_output(graph, name: str) -> None:
    """Give the graph's single output the contract's name, rewiring every node that produces it."""
    if len(graph.output) != 1:
        raise ExportError(f"the exported graph has {len(graph.output)} outputs; expected one ({name!r})")
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        node.output[:] = [name if value == old else value for value in node.output]
        node.input[:] = [name if value == old else value for value in node.input]
    graph.output[0].name = name


def _name_dynamic_dims(graph) -> None:
    """Label the dynamic dimensions (batch, time) instead of the exporter's generated names."""
    for value in list(graph.input) + list(graph.output):
        for dim, label in zip(value.type.tensor_type.shape.dim, DIM_NAMES.get(value.name, ())):
            if label is not None and not dim.HasField("dim_value"):
                dim.dim_param = label


def check_scorer(model, path: str | os.PathLike, n_sessions: int = 8, max_length: int = 7, seed: int = 0) -> None:
    """Load ``path`` in ONNX Runtime; its names, dtypes and hidden states must match the contract and Keras."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.type for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    expected_inputs = {name: "tensor(int32)" for name in artifacts.SCORER_INPUTS}
    if inputs != expected_inputs or outputs != [artifacts.SCORER_OUTPUT]:
        raise ExportError(
            f"exported graph has inputs {inputs} and outputs {outputs}; "
            f"expected inputs {expected_inputs} and output [{artifacts.SCORER_OUTPUT!r}]"
        )
    items, lengths = sample_sessions(model.n_items, n_sessions, max_length, np.random.default_rng(seed))
    exported = session.run(None, {"items": items, "lengths": lengths})[0]
    reference = np.asarray(model((items, lengths), training=False))
    if exported.shape != reference.shape or not np.allclose(exported, reference, rtol=1e-4, atol=1e-4):
        worst = float(np.max(np.abs(exported - reference))) if exported.shape == reference.shape else float("nan")
        raise ExportError(
            f"exported graph disagrees with the Keras model: shapes {exported.shape} vs {reference.shape}, "
            f"largest difference {worst:g}"
        )


def sample_sessions(n_items: int, n_sessions: int, max_length: int, rng: np.random.Generator):
    """Random sessions as the scorer takes them: items int32 [N, T] padded with n_items, lengths int32 [N]."""
    lengths = rng.integers(1, max_length + 1, size=n_sessions).astype(np.int32)
    items = np.full((n_sessions, int(lengths.max())), n_items, dtype=np.int32)
    for row, length in enumerate(lengths):
        items[row, :length] = rng.integers(0, n_items, size=length)
    return items, lengths
