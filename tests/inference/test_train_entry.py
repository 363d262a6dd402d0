"""The container's ``train`` command, run from the repository against a folder standing in for /opt/ml."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inference import training_job
from inference.training_job import JobInputError, JobPaths
from model_code import artifacts
from model_code.checkpoints import load_checkpoint
from tests.pausing import kill_after_first_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN = REPO_ROOT / "inference" / "train"
EPOCHS = 6
HYPERPARAMETERS = {
    "layers": "24", "batch_size": "16", "n_sample": "24", "block_steps": "16", "eval_batch_size": "64",
    "epochs": str(EPOCHS), "seed": "7",
    "_tuning_objective_metric": "recall@20",  # added by SageMaker hyperparameter tuning: must be left out
}
MODEL_FILES = {artifacts.MODEL_FILE, artifacts.SCORER_FILE, artifacts.EMBEDDINGS_FILE, artifacts.BIAS_FILE,
               artifacts.ITEMS_FILE, artifacts.METADATA_FILE, artifacts.PLOT_FILE}
# In its own mount namespace, the job sees model/ as a separate file system, as on SageMaker; the model is
# copied out before the namespace ends. $1: the /opt/ml stand-in, $2: the train command.
ON_MOUNTED_MODEL_FOLDER = (
    'mount -t tmpfs tmpfs "$1/model" || exit 90; '
    'stat -c %d "$1" "$1/model" > "$1/devices"; '
    '"$2"; code=$?; mkdir "$1/model-copy" && cp -a "$1/model/." "$1/model-copy/"; exit $code'
)


@pytest.fixture(scope="session")
def events(tmp_path_factory) -> Path:
    """train.tsv.gz and test.tsv.gz from the built-in generator: 500 sessions over 80 items."""
    folder = tmp_path_factory.mktemp("train_entry_data")
    subprocess.run([sys.executable, "-m", "model_code.synthetic", "--out", str(folder), "--sessions", "500",
                    "--items", "80", "--seed", "3"], cwd=REPO_ROOT, check=True, capture_output=True)
    return folder


def lay_out(root: Path, events: Path | None, hyperparameters: dict | None, channels=("train", "test")) -> Path:
    """A folder laid out as SageMaker lays out /opt/ml for a training job (model/ exists, empty)."""
    (root / "input" / "config").mkdir(parents=True)
    if hyperparameters is not None:
        (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    for channel in channels:
        folder = root / "input" / "data" / channel
        folder.mkdir(parents=True)
        if events is not None:
            shutil.copy(events / f"{channel}.tsv.gz", folder)
    (root / "model").mkdir()
    return root


def job_environment(root: Path) -> dict:
    """This interpreter's bin folder first on PATH (train's `python3`), and root as /opt/ml."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, OPT_ML_DIR=str(root))


def run_job(root: Path, command: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command or [str(TRAIN)], env=job_environment(root), capture_output=True, text=True,
                          timeout=600)


def mount_namespaces_work(tmp: Path) -> bool:
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs "$1"', "sh", str(tmp)],
                           capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def completed_job(events, tmp_path_factory):
    """One tiny training job: (root, completed process, model folder as it was when the job ended).

    Where this machine allows mount namespaces (root), model/ is a mount point of its own, as on SageMaker.
    """
    root = lay_out(tmp_path_factory.mktemp("opt_ml"), events, HYPERPARAMETERS)
    if shutil.which("unshare") and mount_namespaces_work(tmp_path_factory.mktemp("probe")):
        done = run_job(root, ["unshare", "--mount", "sh", "-c", ON_MOUNTED_MODEL_FOLDER, "sh", str(root), str(TRAIN)])
        return root, done, root / "model-copy"
    return root, run_job(root), root / "model"


def test_job_writes_the_model_folder_and_checkpoint(completed_job):
    root, done, model = completed_job
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in model.iterdir()} == MODEL_FILES
    assert not (root / "output" / "failure").exists()
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")], "no staging folder may be left"
    meta = artifacts.read_metadata(model)
    assert meta["parameters"]["layers"] == [24] and meta["parameters"]["n_sample"] == 24
    assert meta["training"]["epochs"] == EPOCHS and meta["training"]["resumed_after_epoch"] is None
    assert meta["data"]["train"]["source"] == str(root / "input" / "data" / "train")
    assert meta["data"]["test"]["examples"] > 0
    assert load_checkpoint(root / "checkpoints").epochs_done == EPOCHS
    assert "_tuning_objective_metric" in done.stderr and "leaving out" in done.stderr
    assert "epoch 1/6: loss" in done.stderr and "\r" not in done.stderr, "log lines, no progress bars"


def test_job_prints_one_metric_line_per_metric(completed_job):
    _, done, model = completed_job
    metrics = artifacts.read_metadata(model)["metrics"]
    assert {"recall@20", "mrr@20"} <= set(metrics)
    lines = done.stdout.splitlines()
    for name, value in metrics.items():
        assert f"{name}={value:.4f};" in lines
    assert any(line.startswith("training_seconds=") and line.endswith(";") for line in lines)


def test_model_folder_was_its_own_file_system(completed_job):
    root, _, _ = completed_job
    if not (root / "devices").exists():
        pytest.skip("mount namespaces are not allowed here: model/ was a plain folder")
    job_root, model = (root / "devices").read_text().split()
    assert job_root != model, "model/ must have been a mount point, as /opt/ml/model is on SageMaker"


@pytest.mark.slow
def test_killed_job_resumes_from_its_checkpoint(events, tmp_path, completed_job):
    root = lay_out(tmp_path / "opt_ml", events, HYPERPARAMETERS)
    kill_after_first_checkpoint([str(TRAIN)], job_environment(root), tmp_path / "paused")
    done_epochs = load_checkpoint(root / "checkpoints").epochs_done
    assert done_epochs == 1, "the job was killed right after its first checkpoint"
    assert list((root / "model").iterdir()) == [], "a killed job must leave nothing in model/"

    done = run_job(root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{done_epochs} epochs done, continuing with epoch {done_epochs + 1}" in done.stderr
    meta = artifacts.read_metadata(root / "model")
    assert meta["training"]["resumed_after_epoch"] == done_epochs and meta["training"]["epochs"] == EPOCHS
    straight = artifacts.read_metadata(completed_job[2])
    assert meta["metrics"] == straight["metrics"], "a resumed job ends where an uninterrupted one does"
    assert [r["loss"] for r in meta["training"]["history"]] == [r["loss"] for r in straight["training"]["history"]]


@pytest.mark.parametrize("hyperparameters, reason", [
    ({"learning_rate": "fast"},
     "bad hyperparameter: parameter 'learning_rate': cannot use 'fast'; allowed: a number > 0"),
    ({"dropout_hiden": "0.1"}, "bad hyperparameter: unknown parameter 'dropout_hiden' (did you mean 'dropout_hidden'?)"),
    ({"epochs": "many"}, "bad hyperparameter: argument --epochs: invalid int value: 'many'"),
    ({"preset": "movielens"}, "bad hyperparameter: argument --preset: invalid choice: 'movielens'"),
])
def test_bad_hyperparameter_fails_naming_it(events, tmp_path, hyperparameters, reason):
    root = lay_out(tmp_path, events, hyperparameters)
    done = run_job(root)
    assert done.returncode == 2
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith(reason) and failure.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert list((root / "model").iterdir()) == []


def test_missing_train_channel_fails(tmp_path):
    root = lay_out(tmp_path, None, None, channels=())
    done = run_job(root)
    assert done.returncode == 2
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("input channel 'train' is missing: no folder ") and "'train' channel" in failure


def test_empty_train_channel_fails(tmp_path):
    root = lay_out(tmp_path, None, {"epochs": "1"})
    done = run_job(root)
    assert done.returncode == 2
    assert (root / "output" / "failure").read_text().startswith("input channel 'train' is empty: no files in ")


def test_unreadable_events_fail_naming_the_file(tmp_path):
    root = lay_out(tmp_path, None, None, channels=("train",))
    bad = root / "input" / "data" / "train" / "events.tsv"
    bad.write_text("SessionId\tItemId\tTime\n1\ta\tnot-a-time\n")
    done = run_job(root)
    assert done.returncode == 2
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("bad training data: ") and str(bad) in failure
    assert list((root / "model").iterdir()) == []


def test_hyperparameters_file_is_optional_and_values_become_strings(tmp_path):
    paths = JobPaths(tmp_path)
    assert training_job.read_hyperparameters(paths.hyperparameters) == {}
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text('{"epochs": 3, "layers": "100,100", "dropout_hidden": 0.25}')
    assert training_job.read_hyperparameters(paths.hyperparameters) == {
        "epochs": "3", "layers": "100,100", "dropout_hidden": "0.25"}


@pytest.mark.parametrize("text", ["{not json", '["epochs", "3"]'])
def test_malformed_hyperparameters_file_is_an_input_error(tmp_path, text):
    path = tmp_path / "hyperparameters.json"
    path.write_text(text)
    with pytest.raises(JobInputError, match="hyperparameters.json"):
        training_job.read_hyperparameters(path)


def test_sagemaker_own_hyperparameters_are_left_out():
    used, left_out = training_job.split_hyperparameters(
        {"epochs": "2", "_tuning_objective_metric": "recall@20", "sagemaker_job_name": "x"})
    assert used == {"epochs": "2"} and left_out == ["_tuning_objective_metric", "sagemaker_job_name"]


def test_command_line_for_the_job(tmp_path):
    root = lay_out(tmp_path, None, None, channels=("train",))
    (root / "input" / "data" / "train" / "a.tsv").write_text("")
    argv = training_job.training_argv(JobPaths(root), {"epochs": "3", "layers": "64"})
    args = training_job.parse_training_args(argv)
    assert (args.train, args.test, args.model_dir) == (str(root / "input/data/train"), None, str(root / "model"))
    assert args.checkpoint_dir == str(root / "checkpoints") and args.no_progress and not args.quiet
    assert args.epochs == 3 and args.param == ["layers=64"]


def test_validation_comes_from_a_channel_or_from_valid_days(tmp_path):
    root = lay_out(tmp_path, None, None, channels=("train", "valid"))
    for channel in ("train", "valid"):
        (root / "input" / "data" / channel / "a.tsv").write_text("")
    args = training_job.parse_training_args(training_job.training_argv(JobPaths(root), {}))
    assert (args.valid, args.valid_days) == (str(root / "input/data/valid"), None)
    shutil.rmtree(root / "input" / "data" / "valid")
    args = training_job.parse_training_args(training_job.training_argv(JobPaths(root), {"valid_days": "2"}))
    assert (args.valid, args.valid_days) == (None, 2.0)


def test_valid_channel_and_valid_days_together_fail(tmp_path):
    root = lay_out(tmp_path, None, None, channels=("train", "valid"))
    for channel in ("train", "valid"):
        (root / "input" / "data" / channel / "a.tsv").write_text("")
    with pytest.raises(JobInputError, match="bad hyperparameter: argument --valid-days: not allowed with argument --valid"):
        training_job.parse_training_args(training_job.training_argv(JobPaths(root), {"valid_days": "1"}))


def test_root_comes_from_the_environment():
    assert JobPaths.from_environment({}).root == Path("/opt/ml")
    assert JobPaths.from_environment({"OPT_ML_DIR": "/tmp/x"}).model == Path("/tmp/x/model")
