"""Export the trained model's serving pieces: ``scorer.onnx`` and the output layer arrays.

``scorer.onnx`` is the Keras model's own forward pass (``model.export(...,
format="onnx")``, i.e. tf2onnx over the traced ``call``): padded item-index
sequences and their lengths in, each sequence's final hidden state out. The
output item table and bias are written beside it as ``.npy`` arrays (the graph's
own large weights, the input item table, go to ``scorer.onnx.data``, which ONNX
Runtime memory-maps; and, for
large catalogues, a search index of them: :mod:`inference.search_index`), and
serving computes ``hidden @ item_embeddings.T + item_bias`` with NumPy. Keeping
the scores out of the graph lets serving score many sessions with one BLAS
matrix product and pick the top k by a partial sort, and keeps the graph
small; the graph only runs the GRU. The GRU's weights are taken out of the
exported loop (:mod:`model_code.export.onnx_loops`), which halves the GRU's time for
one session of a large model. The conversion runs on a copy of the model with
a small stand-in input table, and the real table is put into the finished
graph (:mod:`model_code.export.export_stand_in`): converting a large table costs
several gigabytes of memory.

Export needs the TensorFlow backend (tf2onnx). A model trained on another backend (JAX, e.g. on a GPU)
is exported from its ``model.keras`` (Keras files do not depend on the backend) by a child process on
the TensorFlow backend, :func:`export_in_tensorflow`, where TensorFlow is installed (the ``train`` and
``train-gpu`` images); elsewhere training skips this step, and ``python -m model_code.export.scorer --model-dir DIR``
run later where TensorFlow is installed writes the scorer into the model directory.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from inference import search_index
from model_code import artifacts
from model_code.export import export_stand_in
from model_code.export.onnx_loops import hoist_loop_invariants
from model_code.gru4rec.memory import release_heap

EXTERNAL_WEIGHTS_BYTES = 1 << 20
"""Weights this large (the item table) go to ``scorer.onnx.data`` beside the graph: ONNX Runtime maps
that file instead of copying it into each process, so the server's workers share it."""
DIM_NAMES = {"items": ("batch", "time"), "lengths": ("batch",), "hidden": ("batch", None)}


class ExportError(RuntimeError):
    """The exported graph does not have the contract's inputs/outputs or does not match Keras."""


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def export_available() -> tuple[bool, str]:
    """(True, "") where ONNX export can run in this process; else (False, the reason)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False, f"ONNX export needs the TensorFlow backend (this run uses {keras.backend.backend()!r})"
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as err:
        return False, f"ONNX export needs onnx and tf2onnx: {err}"
    return True, ""


def tensorflow_installed() -> tuple[bool, str]:
    """(True, "") where a child process can export on the TensorFlow backend; else (False, the reason)."""
    missing = [name for name in ("tensorflow", "tf2onnx") if importlib.util.find_spec(name) is None]
    if missing:
        return False, (f"{' and '.join(missing)} not installed here; write scorer.onnx later with "
                       "`python -m model_code.export.scorer --model-dir DIR` where they are (the train image, or the "
                       "project's virtual environment)")
    return True, ""


def export_model_dir(model, model_dir: str | os.PathLike, log) -> None:
    """Training's export into ``model_dir`` (which already holds model.keras): in this process on the
    TensorFlow backend, in a TensorFlow child process on another backend, else skipped; ``log`` says which."""
    available, reason = export_available()
    if available:
        export_scorer(model, model_dir)
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        installed, missing = tensorflow_installed()
        if installed:
            log(f"{reason}: exporting model.keras in a TensorFlow process")
            export_in_tensorflow(model_dir)
            return
        reason = f"{reason}; {missing}"
    log(f"skipping the ONNX scorer export: {reason}")


def export_in_tensorflow(model_dir: str | os.PathLike) -> None:
    """Export ``model_dir``'s model.keras in a child process on the TensorFlow backend (see :func:`main`).

    For a model trained on another backend: this process keeps its backend, the child loads the saved
    model with TensorFlow, exports and checks it against the Keras model there. Raises ExportError with
    the end of the child's error output when it fails.
    """
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=python_path)
    done = subprocess.run([sys.executable, "-m", "model_code.export.scorer", "--model-dir", str(model_dir)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ExportError(
            f"the export on the TensorFlow backend failed (exit {done.returncode}): {done.stderr[-2000:]}"
        )


def export_scorer(model, model_dir: str | os.PathLike, check: bool = True) -> None:
    """Write scorer.onnx, item_embeddings.npy and item_bias.npy for ``model`` into ``model_dir``.

    With ``check``, the exported graph is loaded in ONNX Runtime and must give
    the Keras model's hidden states on a few sample sessions.
    """
    available, reason = export_available()
    if not available:
        raise ExportError(reason)
    model_dir = Path(model_dir)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{artifacts.SCORER_FILE}."))
    try:
        graph = staging / artifacts.SCORER_FILE
        _export_graph(model, str(graph))
        if check:
            check_scorer(model, graph)
        _publish_scorer(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    table, bias = output_layer(model)
    artifacts.write_array(model_dir / artifacts.EMBEDDINGS_FILE, table)
    artifacts.write_array(model_dir / artifacts.BIAS_FILE, bias)
    write_search_index(model_dir, table, bias)


def write_search_index(model_dir: Path, table: np.ndarray, bias: np.ndarray) -> None:
    """The fast top-k index for a large catalogue (:mod:`inference.search_index`); a smaller one gets none,
    and an index left from an earlier export is removed, so it never describes another output layer."""
    if len(table) >= search_index.INDEX_MIN_ITEMS:
        search_index.write(model_dir, table, bias)
    else:
        (model_dir / search_index.INDEX_FILE).unlink(missing_ok=True)


def _publish_scorer(staging: Path, model_dir: Path) -> None:
    """Move the checked graph (and its weights file, where it has one) into ``model_dir``; remove a weights
    file an earlier, larger export left. The weights go first, so the old graph is replaced last."""
    data = staging / artifacts.SCORER_DATA_FILE
    if data.exists():
        data.chmod(artifacts.file_mode())
        os.replace(data, model_dir / artifacts.SCORER_DATA_FILE)
    else:
        (model_dir / artifacts.SCORER_DATA_FILE).unlink(missing_ok=True)
    graph = staging / artifacts.SCORER_FILE
    graph.chmod(artifacts.file_mode())
    os.replace(graph, model_dir / artifacts.SCORER_FILE)


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
    onnx.save(graph, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=artifacts.SCORER_DATA_FILE, size_threshold=EXTERNAL_WEIGHTS_BYTES)


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


def main(argv: list[str] | None = None) -> int:
    """``python -m model_code.export.scorer --model-dir DIR``: write DIR's scorer.onnx and output layer arrays
    from DIR/model.keras, on the TensorFlow backend whatever backend trained the model."""
    parser = argparse.ArgumentParser(
        prog="python -m model_code.export.scorer",
        description="Export a model directory's model.keras (trained on any Keras backend) to scorer.onnx, "
                    "item_embeddings.npy and item_bias.npy in the same directory, on the TensorFlow backend.")
    parser.add_argument("--model-dir", required=True, type=Path, help="the model directory holding model.keras")
    parser.add_argument("--tensorflow-logs", action="store_true", help="show TensorFlow's start-up messages")
    args = parser.parse_args(argv)
    model_file = args.model_dir / artifacts.MODEL_FILE
    if not model_file.is_file():
        parser.error(f"--model-dir: no {artifacts.MODEL_FILE} in {args.model_dir}")
    os.environ["KERAS_BACKEND"] = "tensorflow"  # read when Keras is first imported, below
    from model_code.gru4rec.tf_startup import import_keras

    keras = import_keras(args.tensorflow_logs)
    import model_code.gru4rec.model  # noqa: F401  (registers the GRU4Rec class for deserialisation)

    try:
        export_scorer(keras.saving.load_model(model_file), args.model_dir)
    except ExportError as err:
        print(f"export failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
