"""The JAX training engine gives the same model as the TensorFlow one from the same start.

Keras picks its backend once per process, so the JAX side runs in a child
process (KERAS_BACKEND=jax) on weights written by this test. JAX (CPU) is a development requirement, so
this runs wherever the tests do, not only on an accelerator machine.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_code import artifacts
from model_code.model import GRU4Rec
from model_code.session_batches import SessionArrays, session_parallel_steps
from model_code.trainer import Trainer
from tests.model_code.conftest import TINY_ARGS

REPO_ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import sys, numpy as np
from tests.model_code.test_trainer_jax import train_once
start = np.load(sys.argv[1])
weights, loss, metrics = train_once([start[f"w{i}"] for i in range(len(start.files))], *sys.argv[3:7])
np.savez(sys.argv[2], loss=loss, recall=metrics["recall@5"], mrr=metrics["mrr@5"], **{f"w{i}": w for i, w in enumerate(weights)})
"""


def _data():
    rng = np.random.default_rng(1)
    return SessionArrays.from_lists([list(rng.integers(0, 25, rng.integers(1, 7))) for _ in range(40)])


def train_once(start_weights, embedding, loss, logq_form, table_update):
    """One epoch on small fixed data from ``start_weights`` (no dropout: both backends see the same arithmetic)."""
    data = _data()
    model = GRU4Rec(25, layers=(8, 6), embedding=embedding, seed=0)
    if start_weights is not None:
        model.set_weights(start_weights)
    trainer = Trainer(model, loss=loss, n_sample=8, sample_alpha=0.5, learning_rate=0.1, momentum=0.2, logq=1.0,
                      logq_form=logq_form, bpreg=0.5, elu=0.5, batch_size=4, block_steps=5,
                      item_counts=data.item_counts(25) + 1, seed=3, table_update=table_update)
    result = trainer.train_epoch(session_parallel_steps(data, 4))
    return model.get_weights(), result["loss"], trainer.evaluate(data, batch_size=6)


@pytest.mark.parametrize("embedding,loss,logq_form,table_update", [
    ("shared", "cross-entropy", "reference", "rows"), ("shared", "cross-entropy", "sampling", "whole"),
    ("none", "bpr-max", "reference", "auto"),
])
def test_jax_engine_matches_tensorflow(tmp_path, embedding, loss, logq_form, table_update):
    start = GRU4Rec(25, layers=(8, 6), embedding=embedding, seed=0).get_weights()
    np.savez(tmp_path / "start.npz", **{f"w{i}": w for i, w in enumerate(start)})
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "start.npz"), str(tmp_path / "jax.npz"), embedding, loss,
                    logq_form, table_update],
                   check=True, env=env, cwd=REPO_ROOT, timeout=300)
    jax_out = np.load(tmp_path / "jax.npz")
    weights, tf_loss, metrics = train_once(start, embedding, loss, logq_form, table_update)
    assert float(jax_out["loss"]) == pytest.approx(tf_loss, rel=1e-4)
    for i, w in enumerate(weights):
        np.testing.assert_allclose(jax_out[f"w{i}"], w, rtol=1e-3, atol=1e-5)
    assert float(jax_out["recall"]) == pytest.approx(metrics["recall@5"], abs=1e-9)


def test_training_command_runs_on_jax(tiny_data, tmp_path):
    """What the GPU benchmark runs: ``model_code.train`` end to end with Keras on JAX (here on the CPU)."""
    model_dir = tmp_path / "model"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-m", "model_code.train", "--train", str(tiny_data / "train.tsv.gz"),
                           "--test", str(tiny_data / "test.tsv.gz"), "--epochs", "2", "--model-dir", str(model_dir),
                           *TINY_ARGS], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = artifacts.read_metadata(model_dir)
    assert meta["training"]["backend"] == "jax"
    assert [row["epoch"] for row in meta["training"]["history"]] == [1, 2]
    assert 0.0 < meta["metrics"]["recall@20"] <= 1.0
    assert f"recall@20={meta['metrics']['recall@20']:.4f};" in done.stdout.splitlines()
    assert (model_dir / artifacts.MODEL_FILE).exists() and (model_dir / artifacts.ITEMS_FILE).exists()
