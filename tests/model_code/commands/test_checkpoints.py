import dataclasses
import os
import sys

import numpy as np
import pytest

from model_code import artifacts
from model_code.commands.checkpoints import CHECKPOINT_FILE, Checkpoint, fingerprint, load_checkpoint, save_checkpoint
from model_code.commands.evaluate import evaluate_model_dir
from model_code.commands.training_run import WEIGHT_NEUTRAL_PARAMS, eval_fingerprint, run_fingerprint
from model_code.data.session_batches import SessionArrays
from model_code.gru4rec.params import GRU4RecParams
from tests.model_code.conftest import TINY_ARGS, run_train
from tests.support.pausing import kill_after_first_checkpoint


def test_round_trip_keeps_nested_state(tmp_path):
    state = {"optimizer": [np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros(4, np.int64)],
             "sampler": {"position": 17, "block": np.array([[1, 2]], np.int32), "name": "pop", "none": None},
             "pair": (np.float32(1.5), 2)}
    saved = Checkpoint("abc", 3, [np.ones((2, 2), np.float32), np.array([1, 0], np.int64)], state,
                       [{"epoch": 1, "loss": 0.5}], 12.5, "def")
    save_checkpoint(tmp_path, saved)
    loaded = load_checkpoint(tmp_path)
    assert (loaded.fingerprint, loaded.epochs_done, loaded.history, loaded.fit_seconds, loaded.eval_fingerprint) == (
        "abc", 3, saved.history, 12.5, "def")
    assert all(
        np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(loaded.model_variables, saved.model_variables)
    )
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


# one other value per parameter: each changes the trained weights, so each must change the fingerprint
OTHER_VALUES = {
    "layers": (50,), "loss": "bpr-max", "batch_size": 16, "dropout_embedding": 0.1, "dropout_hidden": 0.3,
    "learning_rate": 0.1, "momentum": 0.1, "sample_alpha": 0.6, "n_sample": 100, "bpreg": 0.5, "elu": 0.5,
    "logq": 0.5, "logq_form": "sampling", "embedding": "separate", "embedding_size": None, "block_steps": 100,
    "matmul_precision": "bfloat16",
}
NEUTRAL_VALUES = {"epochs": 3, "eval_batch_size": 64}


def test_run_fingerprint_sees_what_changes_the_weights():
    assert set(OTHER_VALUES) | set(NEUTRAL_VALUES) == {f.name for f in dataclasses.fields(GRU4RecParams)}
    assert set(NEUTRAL_VALUES) == set(WEIGHT_NEUTRAL_PARAMS)
    params = GRU4RecParams()
    data = SessionArrays.from_lists([[1, 2, 3], [4, 5]])
    base = run_fingerprint(params, 1, "tensorflow", data)
    for name, value in OTHER_VALUES.items():
        changed = dataclasses.replace(params, **{name: value})
        if name == "embedding_size":
            params_separate = dataclasses.replace(params, embedding="separate")
            assert run_fingerprint(dataclasses.replace(params_separate, embedding_size=16), 1, "tensorflow", data) != \
                run_fingerprint(params_separate, 1, "tensorflow", data)
            continue
        assert run_fingerprint(changed, 1, "tensorflow", data) != base, name
    for name, value in NEUTRAL_VALUES.items():
        assert run_fingerprint(dataclasses.replace(params, **{name: value}), 1, "tensorflow", data) == base, name
    assert run_fingerprint(params, 2, "tensorflow", data) != base
    assert run_fingerprint(params, 1, "jax", data) != base
    assert run_fingerprint(params, 1, "tensorflow", SessionArrays.from_lists([[1, 2], [3, 4, 5]])) != base
    assert run_fingerprint(params, 1, "tensorflow", SessionArrays.from_lists([[1, 2, 3], [4, 6]])) != base


def test_eval_fingerprint_names_the_evaluation_set():
    data = SessionArrays.from_lists([[1, 2, 3], [4, 5]])
    assert eval_fingerprint(None) is None
    assert eval_fingerprint(data) == eval_fingerprint(SessionArrays.from_lists([[1, 2, 3], [4, 5]]))
    assert eval_fingerprint(data) != eval_fingerprint(SessionArrays.from_lists([[1, 2, 3], [5, 4]]))


def _train_args(data, model_dir, checkpoint_dir, epochs):
    return ["--train", str(data / "train.tsv.gz"), "--test", str(data / "test.tsv.gz"), "--epochs", str(epochs),
            "--model-dir", str(model_dir), "--checkpoint-dir", str(checkpoint_dir), "--no-export", *TINY_ARGS[:-1]]


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint(tiny_data, tmp_path):
    epochs = 6
    checkpoints, model_dir = tmp_path / "checkpoints", tmp_path / "model"
    kill_after_first_checkpoint([sys.executable, "-m", "model_code.commands.train",
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


def test_checkpoint_with_more_epochs_than_asked_is_refused(tiny_data, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    code, _, err = run_train(_train_args(tiny_data, tmp_path / "a", checkpoints, 2))
    assert code == 0, err
    before = (checkpoints / CHECKPOINT_FILE).read_bytes()
    code, _, err = run_train(_train_args(tiny_data, tmp_path / "b", checkpoints, 1))
    assert code == 2
    assert "has 2 epochs done, more than the 1 asked for" in err and str(checkpoints) in err
    assert not (tmp_path / "b").exists()
    assert (checkpoints / CHECKPOINT_FILE).read_bytes() == before, "a refused run leaves the checkpoint alone"


def test_resume_with_another_test_set_evaluates_it_afresh(tiny_data, tmp_path):
    """A finished checkpoint resumed with another --test reports that set's figures, not the checkpoint's."""
    checkpoints = tmp_path / "checkpoints"
    code, _, err = run_train(_train_args(tiny_data, tmp_path / "a", checkpoints, 1))
    assert code == 0, err
    other_test = tiny_data / "train.tsv.gz"
    args = _train_args(tiny_data, tmp_path / "b", checkpoints, 1)
    args[args.index("--test") + 1] = str(other_test)
    code, _, err = run_train(args)
    assert code == 0, err
    assert "1 epochs done" in err
    first, resumed = artifacts.read_metadata(tmp_path / "a"), artifacts.read_metadata(tmp_path / "b")
    assert resumed["training"]["resumed_after_epoch"] == 1
    assert resumed["metrics"] != first["metrics"]
    assert resumed["metrics"] == pytest.approx(evaluate_model_dir(tmp_path / "b", str(other_test)), abs=1e-12)


def test_resume_with_another_validation_set_measures_it_afresh(tiny_data, tmp_path):
    """The checkpoint's per-epoch figures of another validation set are left out, never reported as this run's."""
    checkpoints = tmp_path / "checkpoints"
    first_valid, other_valid = tiny_data / "test.tsv.gz", tiny_data / "train.tsv.gz"
    args = _train_args(tiny_data, tmp_path / "a", checkpoints, 1) + ["--valid", str(first_valid)]
    code, _, err = run_train(args)
    assert code == 0, err
    args = _train_args(tiny_data, tmp_path / "b", checkpoints, 1) + ["--valid", str(other_valid)]
    code, _, err = run_train(args)
    assert code == 0, err
    assert "1 epochs done" in err and "another validation set" in err
    first, resumed = artifacts.read_metadata(tmp_path / "a"), artifacts.read_metadata(tmp_path / "b")
    assert "validation_metrics" not in resumed["training"]["history"][0]
    assert resumed["validation_metrics"] != first["validation_metrics"]
    assert resumed["validation_metrics"] == pytest.approx(
        evaluate_model_dir(tmp_path / "b", str(other_valid)), abs=1e-12
    )
    assert resumed["metrics"] == first["metrics"], "same weights, same test set"
