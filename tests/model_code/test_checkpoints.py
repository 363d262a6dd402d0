import os
import sys

import numpy as np
import pytest

from model_code import artifacts
from model_code.checkpoints import CHECKPOINT_FILE, Checkpoint, fingerprint, load_checkpoint, save_checkpoint
from tests.model_code.conftest import TINY_ARGS, run_train
from tests.pausing import kill_after_first_checkpoint


def test_round_trip_keeps_nested_state(tmp_path):
    state = {"optimizer": [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(4, np.int64)],
             "sampler": {"position": 17, "block": np.array([[1, 2]], np.int32), "name": "pop", "none": None},
             "pair": (np.float32(1.5), 2)}
    saved = Checkpoint("abc", 3, [np.ones((2, 2), np.float32), np.array([1, 0], np.int64)], state,
                       [{"epoch": 1, "loss": 0.5}], 12.5)
    save_checkpoint(tmp_path, saved)
    loaded = load_checkpoint(tmp_path)
    assert (loaded.fingerprint, loaded.epochs_done, loaded.history, loaded.fit_seconds) == ("abc", 3, saved.history, 12.5)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(loaded.model_variables, saved.model_variables))
    ts = loaded.trainer_state
    assert np.array_equal(ts["optimizer"][0], state["optimizer"][0]) and ts["optimizer"][1].dtype == np.int64
    assert ts["sampler"]["position"] == 17 and ts["sampler"]["name"] == "pop" and ts["sampler"]["none"] is None
    assert np.array_equal(ts["sampler"]["block"], state["sampler"]["block"])
    assert isinstance(ts["pair"], tuple) and float(ts["pair"][0]) == 1.5 and ts["pair"][1] == 2
    assert os.listdir(tmp_path) == [CHECKPOINT_FILE]


def test_no_checkpoint_is_none(tmp_path):
    assert load_checkpoint(tmp_path) is None


def test_fingerprint_sees_data_and_parameters():
    items = np.arange(10, dtype=np.int32)
    base = fingerprint({"lr": 0.1}, items)
    assert base == fingerprint({"lr": 0.1}, items.copy())
    assert base != fingerprint({"lr": 0.2}, items)
    assert base != fingerprint({"lr": 0.1}, items[::-1].copy())


def _train_args(data, model_dir, checkpoint_dir, epochs):
    return ["--train", str(data / "train.tsv.gz"), "--test", str(data / "test.tsv.gz"), "--epochs", str(epochs),
            "--model-dir", str(model_dir), "--checkpoint-dir", str(checkpoint_dir), "--no-export", *TINY_ARGS[:-1]]


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint(tiny_data, tmp_path):
    epochs = 6
    checkpoints, model_dir = tmp_path / "checkpoints", tmp_path / "model"
    kill_after_first_checkpoint([sys.executable, "-m", "model_code.train",
                                 *_train_args(tiny_data, model_dir, checkpoints, epochs)],
                                dict(os.environ), tmp_path / "paused")
    done = load_checkpoint(checkpoints).epochs_done
    assert done == 1, "the run was killed right after its first checkpoint"
    assert not model_dir.exists(), "a killed run must not leave a model directory"

    code, _, err = run_train(_train_args(tiny_data, model_dir, checkpoints, epochs))
    assert code == 0, err
    assert f"{done} epochs done, continuing with epoch {done + 1}" in err
    meta = artifacts.read_metadata(model_dir)
    assert meta["training"]["epochs"] == epochs and meta["training"]["resumed_after_epoch"] == done
    assert [r["epoch"] for r in meta["training"]["history"]] == list(range(1, epochs + 1))
    assert load_checkpoint(checkpoints).epochs_done == epochs

    code, _, err = run_train(_train_args(tiny_data, tmp_path / "straight", tmp_path / "fresh", epochs))
    assert code == 0, err
    straight = artifacts.read_metadata(tmp_path / "straight")
    assert meta["metrics"] == straight["metrics"], "a resumed run ends where an uninterrupted one does"
    assert [r["loss"] for r in meta["training"]["history"]] == [r["loss"] for r in straight["training"]["history"]]


def test_checkpoint_of_other_parameters_is_not_resumed(tiny_data, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    code, _, err = run_train(_train_args(tiny_data, tmp_path / "a", checkpoints, 1))
    assert code == 0, err
    code, _, err = run_train(_train_args(tiny_data, tmp_path / "b", checkpoints, 2) + ["--param", "learning_rate=0.1"])
    assert code == 0, err
    assert "from other data or parameters: starting afresh" in err
    assert artifacts.read_metadata(tmp_path / "b")["training"]["resumed_after_epoch"] is None
