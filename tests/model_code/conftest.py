"""Tiny synthetic data and one tiny trained model directory, shared by the training, evaluation and export tests."""
import contextlib
import io
from pathlib import Path

import pytest

from model_code.data.synthetic import SyntheticSpec, write_dataset

REPO_ROOT_FOR_SUBPROCESS = Path(__file__).resolve().parents[2]

# small enough that a training epoch takes well under a second on one core
TINY_SPEC = SyntheticSpec(sessions=500, items=80, days=5, test_days=1, seed=3)
TINY_ARGS = [
    "--param", "layers=24", "--param", "batch_size=16", "--param", "n_sample=24",
    "--param", "block_steps=16", "--param", "eval_batch_size=64", "--seed", "7", "--quiet",
]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A folder with train.tsv.gz and test.tsv.gz of a few hundred sessions."""
    folder = tmp_path_factory.mktemp("tiny_data")
    write_dataset(folder, TINY_SPEC)
    return folder


def run_train(argv: list[str]) -> tuple[int, str, str]:
    """``model_code.commands.train.main(argv)`` in process: (exit code, stdout, stderr)."""
    from model_code.commands.train import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> tuple[Path, str]:
    """A model directory trained 3 epochs on the tiny data (rsc15 preset, cross-entropy): (path, stdout)."""
    model_dir = tmp_path_factory.mktemp("tiny_model") / "model"
    code, out, err = run_train([
        "--train", str(tiny_data / "train.tsv.gz"), "--test", str(tiny_data / "test.tsv.gz"),
        "--epochs", "3", "--model-dir", str(model_dir), *TINY_ARGS,
    ])
    assert code == 0, err
    return model_dir, out
