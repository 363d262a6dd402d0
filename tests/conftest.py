"""Shared fixtures: the real data sets of ../shared/data, skipped where absent, and one small trained model
directory (the serving tests' and the batch filter tests'), trained once per test run.

Hypothesis runs without its per-example deadline: timing is for the benchmarks, and a loaded CI
machine must not fail a property that holds.

The tests run Keras on JAX, the training engine, as the training commands do (they set it themselves,
:mod:`model_code.gru4rec.training_env`); Keras reads the variable when it is first imported, after this file.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from model_code.artifacts import record_model_version
from model_code.gru4rec.training_env import BACKEND, BACKEND_VARIABLE

os.environ[BACKEND_VARIABLE] = BACKEND

settings.register_profile("project", deadline=None)
settings.load_profile("project")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def shared_data_set(name: str) -> Path:
    """Folder of one real data set (train.tsv.gz, test.tsv.gz), or skip the test."""
    folder = SHARED_DATA / name
    if not (folder / "train.tsv.gz").exists():
        pytest.skip(f"real data set {name!r} not found at {folder}: tests on real data are skipped")
    return folder


@pytest.fixture
def yoochoose100k() -> Path:
    return shared_data_set("yoochoose100k")


@pytest.fixture
def diginetica() -> Path:
    return shared_data_set("diginetica")


MODEL_VERSION = "gru4rec-test-train-20261129-021710-0a1b2c3d"
"""The version ``model_dir`` records, as a SageMaker training job's model does."""
SMALL_DATA = ["--sessions", "600", "--items", "120", "--seed", "11"]
SMALL_TRAINING = [
    "--epochs", "2", "--seed", "5", "--quiet",
    "--param", "layers=32", "--param", "batch_size=16", "--param", "n_sample=32",
    "--param", "block_steps=16", "--param", "eval_batch_size=64",
]


def run_module(*argv: str) -> None:
    """``python -m argv...`` from the repository root; fail the fixture with its stderr."""
    done = subprocess.run([sys.executable, "-m", *argv], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """A folder with the built-in generator's train.tsv.gz and test.tsv.gz, 600 sessions over 120 items."""
    folder = tmp_path_factory.mktemp("serving_data")
    run_module("model_code.data.synthetic", "--out", str(folder), *SMALL_DATA)
    return folder


@pytest.fixture(scope="session")
def model_dir(small_data, tmp_path_factory) -> Path:
    """A complete model directory (scorer.onnx, output layer, items, metadata) trained on ``small_data``."""
    target = tmp_path_factory.mktemp("serving_model") / "model"
    run_module(
        "model_code.commands.train",
        "--train",
        str(small_data / "train.tsv.gz"),
        "--test",
        str(small_data / "test.tsv.gz"),
        "--model-dir",
        str(target),
        *SMALL_TRAINING,
    )
    record_model_version(target, MODEL_VERSION)
    return target
