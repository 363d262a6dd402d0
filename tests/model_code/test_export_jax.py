"""A model trained on JAX still gets its scorer: model.keras is exported in a TensorFlow child process.

Keras picks its backend once per process: training and the JAX forward pass run in child processes
(KERAS_BACKEND=jax, JAX on the CPU); this test process is on TensorFlow and exports the same saved
weights itself, the reference the JAX run's scorer must agree with.
"""
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from model_code import artifacts
from model_code.evaluate import load_model
from model_code.export import export_model_dir, export_scorer, main, sample_sessions, tensorflow_installed
from tests.model_code.conftest import REPO_ROOT_FOR_SUBPROCESS as REPO_ROOT
from tests.model_code.conftest import TINY_ARGS

JAX_ENV = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
# the JAX model's final hidden states for the sessions in argv[2] (npz with items, lengths) -> argv[3]
_JAX_FORWARD = """
import sys, numpy as np, keras
import model_code.model
model = keras.saving.load_model(sys.argv[1])
data = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(model((data["items"], data["lengths"]), training=False)))
"""


def _scores(model_dir, items, lengths) -> np.ndarray:
    """What serving computes: the scorer's hidden states times the output table, plus the bias."""
    session = ort.InferenceSession(str(model_dir / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    hidden = session.run(None, {"items": items, "lengths": lengths})[0]
    table, bias = artifacts.read_output_layer(model_dir)
    return hidden @ table.T + bias


@pytest.fixture(scope="module")
def jax_model(tiny_data, tmp_path_factory):
    """A model directory trained by ``model_code.train`` on the JAX backend: (path, stderr)."""
    model_dir = tmp_path_factory.mktemp("jax_model") / "model"
    done = subprocess.run([sys.executable, "-m", "model_code.train", "--train", str(tiny_data / "train.tsv.gz"),
                           "--epochs", "2", "--model-dir", str(model_dir), *TINY_ARGS[:-1], "--no-progress"],
                          env=JAX_ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return model_dir, done.stderr


def test_jax_training_writes_the_whole_model_directory(jax_model):
    model_dir, log = jax_model
    assert artifacts.read_metadata(model_dir)["training"]["backend"] == "jax"
    for name in (artifacts.SCORER_FILE, artifacts.EMBEDDINGS_FILE, artifacts.BIAS_FILE, artifacts.MODEL_FILE):
        assert (model_dir / name).is_file(), name
    assert "exporting model.keras in a TensorFlow process" in log


def test_jax_scorer_gives_the_scores_of_the_tensorflow_export_and_of_the_jax_model(jax_model, tmp_path):
    model_dir, _ = jax_model
    model, _ = load_model(model_dir)  # this process runs Keras on TensorFlow
    reference_dir = tmp_path / "tensorflow_export"
    reference_dir.mkdir()
    export_scorer(model, reference_dir)
    items, lengths = sample_sessions(model.n_items, n_sessions=16, max_length=9, rng=np.random.default_rng(5))

    jax_scores = _scores(model_dir, items, lengths)
    np.testing.assert_allclose(jax_scores, _scores(reference_dir, items, lengths), rtol=1e-5, atol=1e-5)

    np.savez(tmp_path / "sessions.npz", items=items, lengths=lengths)
    subprocess.run([sys.executable, "-c", _JAX_FORWARD, str(model_dir / artifacts.MODEL_FILE),
                    str(tmp_path / "sessions.npz"), str(tmp_path / "hidden.npy")],
                   env=JAX_ENV, cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)
    table, bias = artifacts.read_output_layer(model_dir)
    np.testing.assert_allclose(jax_scores, np.load(tmp_path / "hidden.npy") @ table.T + bias, rtol=1e-4, atol=1e-4)


def test_without_tensorflow_the_export_is_skipped_with_the_way_to_do_it_later(monkeypatch, tiny_model):
    import keras

    import model_code.export

    model_dir, _ = tiny_model
    model, _ = load_model(model_dir)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(model_code.export, "tensorflow_installed",
                        lambda: (False, "tensorflow not installed here; write scorer.onnx later with "
                                        "`python -m model_code.export --model-dir DIR`"))
    lines = []
    export_model_dir(model, "never-written", lines.append)
    (line,) = lines
    assert line.startswith("skipping the ONNX scorer export: ONNX export needs the TensorFlow backend")
    assert "python -m model_code.export --model-dir DIR" in line


def test_tensorflow_is_found_where_it_is_installed():
    assert tensorflow_installed() == (True, "")


def test_export_command_names_a_directory_without_model_keras(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--model-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert f"--model-dir: no {artifacts.MODEL_FILE} in {tmp_path}" in capsys.readouterr().err
