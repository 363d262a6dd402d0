"""The training commands run Keras on JAX with huge pages, whatever the caller's environment says.

Both settings are read at process start (Keras's import, glibc's start-up), so the commands re-execute
themselves once with them set. Here they run as a user runs them, from an environment without either
variable (or with TensorFlow named), and the run's metadata records the backend and the
``GLIBC_TUNABLES`` the training process started with (``/proc/self/environ``, what glibc read).
"""
import os
import subprocess
import sys

import pytest

from model_code import artifacts
from model_code.gru4rec.training_env import HUGE_PAGES, training_environment
from tests.inference.test_train_entry import TRAIN, job_environment, lay_out
from tests.model_code.conftest import REPO_ROOT_FOR_SUBPROCESS as REPO_ROOT
from tests.model_code.conftest import TINY_ARGS

TENSORFLOW_START_UP = ("oneDNN", "cpu_feature_guard", "E0000 ", "I0000 ")
"""Pieces of the lines TensorFlow writes while it loads (model_code.gru4rec.tf_startup), held back by the export's
child."""


def _bare(environ: dict, **extra: str) -> dict:
    """``environ`` without the two settings, plus ``extra``."""
    env = {key: value for key, value in environ.items() if key not in ("KERAS_BACKEND", "GLIBC_TUNABLES")}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "given,tunables",
    [
        ({}, HUGE_PAGES),
        ({"KERAS_BACKEND": "tensorflow"}, HUGE_PAGES),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, f"glibc.malloc.arena_max=2:{HUGE_PAGES}"),
        (
            {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2"},
            "glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2",
        ),
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=2"}, "glibc.malloc.hugetlb=2"),
    ],
)
def test_training_environment_sets_jax_and_keeps_the_callers_tunables(given, tunables):
    env = training_environment({"PATH": "/bin", **given})
    assert env == {"PATH": "/bin", "KERAS_BACKEND": "jax", "GLIBC_TUNABLES": tunables}


def test_training_command_sets_jax_and_huge_pages_itself(tiny_data, tmp_path):
    model_dir = tmp_path / "model"
    done = subprocess.run(
        [sys.executable, "-m", "model_code.commands.train", "--train", str(tiny_data / "train.tsv.gz"),
         "--test", str(tiny_data / "test.tsv.gz"), "--epochs", "1", "--model-dir", str(model_dir), "--no-export",
         *TINY_ARGS],
        env=_bare(os.environ, KERAS_BACKEND="tensorflow"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    training = artifacts.read_metadata(model_dir)["training"]
    assert (training["backend"], training["glibc_tunables"]) == ("jax", HUGE_PAGES)
    assert done.stderr == "", "a quiet run prints nothing on stderr"


def test_container_train_entry_sets_them_from_the_repository_too(tiny_data, tmp_path):
    root = lay_out(tmp_path / "opt_ml", tiny_data, {"epochs": "1", "layers": "16", "batch_size": "16",
                                                     "n_sample": "16", "block_steps": "16"})
    done = subprocess.run([str(TRAIN)], env=_bare(job_environment(root)), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    training = artifacts.read_metadata(root / "model")["training"]
    assert (training["backend"], training["glibc_tunables"]) == ("jax", HUGE_PAGES)
    assert (root / "model" / artifacts.SCORER_FILE).is_file(), "exported by the TensorFlow child"
    for start_up_line in TENSORFLOW_START_UP:
        assert start_up_line not in done.stderr, done.stderr[-2000:]
