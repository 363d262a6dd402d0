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
from model_code.commands.checkpoints import load_checkpoint
from tests.support.pausing import kill_after_first_checkpoint

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
    subprocess.run([sys.executable, "-m", "model_code.data.synthetic", "--out", str(folder), "--sessions", "500",
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


JOB_NAME = "gru4rec-dev-train-20261129-021710-0a1b2c3d"


def job_environment(root: Path) -> dict:
    """This interpreter's bin folder first on PATH (train's `python3`), root as /opt/ml, and the job's name
    where SageMaker puts it."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, PATH=path, OPT_ML_DIR=str(root), TRAINING_JOB_NAME=JOB_NAME)


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
    assert artifacts.read_model_version(model) == meta["model_version"] == JOB_NAME
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


@pytest.mark.parametrize(
    "hyperparameters, reason",
    [
        (
            {"learning_rate": "fast"},
            "bad hyperparameter: parameter 'learning_rate': cannot use 'fast'; allowed: a number > 0",
        ),
        (
            {"dropout_hiden": "0.1"},
            "bad hyperparameter: unknown parameter 'dropout_hiden' (did you mean 'dropout_hidden'?)",
        ),
        ({"epochs": "many"}, "bad hyperparameter: parameter 'epochs': cannot use 'many'; allowed: an integer >= 1"),
        ({"preset": "movielens"}, "bad hyperparameter: parameter 'preset': cannot use 'movielens'; allowed: rsc15 | "),
        ({"time_format": "%s"}, "bad hyperparameter: parameter 'time_format': cannot use '%s'; allowed: auto, "),
    ],
)
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
    assert args.epochs is None and args.param == ["epochs=3", "layers=64"]


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
    with pytest.raises(
        JobInputError, match="bad hyperparameter: argument --valid-days: not allowed with argument --valid"
    ):
        training_job.parse_training_args(training_job.training_argv(JobPaths(root), {"valid_days": "1"}))


def test_root_comes_from_the_environment():
    assert JobPaths.from_environment({}).root == Path("/opt/ml")
    assert JobPaths.from_environment({"OPT_ML_DIR": "/tmp/x"}).model == Path("/tmp/x/model")


SHOP_OPTIONS = {"session_column": "user_session", "item_column": "product_id", "time_column": "event_time",
                "max_bad_rows": "5"}
SHOP_PARAMETERS = {"layers": "16", "batch_size": "8", "n_sample": "16", "block_steps": "8", "epochs": "1", "seed": "3"}


@pytest.fixture(scope="session")
def shop_csv(tmp_path_factory) -> Path:
    """A shop's own export: its column names, ISO and `... UTC` times, an empty product id, a bad time and
    a one-event session among 120 sessions of 2-5 clicks."""
    rows = ["user_session,product_id,event_time"]
    for session in range(120):
        for click in range(2 + session % 4):
            second = session * 60 + click * 7
            stamp = f"2024-03-02T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
            if click % 2:
                stamp = stamp.replace("T", " ").replace("Z", " UTC")
            rows.append(f"s{session},p{(session * 3 + click * 5) % 40},{stamp}")
    rows[5] = rows[5].split(",")[0] + ",," + rows[5].split(",")[2]  # an empty product id
    rows[9] = ",".join(rows[9].split(",")[:2] + ["2024-03-02 25:61:00 UTC"])  # a bad time
    rows.append("lonely,p1,2024-03-03 10:00:00 UTC")  # a one-event session
    path = tmp_path_factory.mktemp("shop") / "clicks.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def skipped_rows_report(stderr: str, *data_paths: Path) -> list[str]:
    """The skipped-rows lines of a run's log, with the data's paths (file, then folder) replaced by <file>."""
    for path in data_paths:
        stderr = stderr.replace(str(path), "<file>")
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("<file>: skipped "))
    return lines[start:start + 3]


def test_a_shop_export_trains_alike_from_the_command_line_and_as_a_job(shop_csv, tmp_path):
    local = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_code.commands.train",
            "--train",
            str(shop_csv),
            "--model-dir",
            str(tmp_path / "local"),
            "--no-progress",
            *[f"--{name.replace('_', '-')}={value}" for name, value in SHOP_OPTIONS.items()],
            *[
                arg
                for name, value in SHOP_PARAMETERS.items()
                for arg in (["--seed", value] if name == "seed" else ["--param", f"{name}={value}"])
            ],
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr
    root = lay_out(tmp_path / "job", None, {**SHOP_OPTIONS, **SHOP_PARAMETERS}, channels=("train",))
    shutil.copy(shop_csv, root / "input" / "data" / "train")
    job = run_job(root)
    assert job.returncode == 0, job.stderr

    expected = [
        "<file>: skipped 2 of 421 rows (1 missing item id, 1 bad time; --max-bad-rows 5 allows 5); first:",
        "  <file> line 6, column 'product_id': missing item id",
        "  <file> line 10, column 'event_time': bad time '2024-03-02 25:61:00 UTC'",
    ]
    assert skipped_rows_report(local.stderr, shop_csv) == expected
    channel = root / "input" / "data" / "train"
    assert skipped_rows_report(job.stderr, channel / "clicks.csv", channel) == expected
    for stderr in (local.stderr, job.stderr):
        assert "121 sessions (1 of one event, which count for nothing)" in stderr
        # the start-up notices; an error-level oneDNN line that TensorFlow logs from another thread while it
        # sets up its logging can still slip through on a loaded machine, so the test does not pin that one
        assert "oneDNN custom operations" not in stderr and "I0000" not in stderr, (
            "TensorFlow's start-up lines are quiet"
        )
    local_data = artifacts.read_metadata(tmp_path / "local")["data"]["train"]
    job_data = artifacts.read_metadata(root / "model")["data"]["train"]
    assert local_data["skipped_rows"] == job_data["skipped_rows"] == {"missing item id": 1, "bad time": 1}
    assert local_data["events"] == job_data["events"] == 419
    assert artifacts.read_items(tmp_path / "local") == artifacts.read_items(root / "model")


def test_a_model_directory_without_a_version_is_unversioned(tmp_path):
    artifacts.write_json(tmp_path / artifacts.METADATA_FILE, {"parameters": {}})
    assert artifacts.read_model_version(tmp_path) == artifacts.UNVERSIONED
    artifacts.record_model_version(tmp_path, "initial-1")
    assert artifacts.read_model_version(tmp_path) == "initial-1"
    assert artifacts.read_metadata(tmp_path)["parameters"] == {}


@pytest.mark.parametrize("version", ["", 7, None])
def test_a_bad_model_version_is_named(tmp_path, version):
    artifacts.write_json(tmp_path / artifacts.METADATA_FILE, {"model_version": version})
    with pytest.raises(artifacts.ModelDirError, match="'model_version' in metadata.json"):
        artifacts.read_model_version(tmp_path)


def day_channel(root: Path) -> Path:
    """A train channel of day folders dt=2026-11-28 .. dt=2026-12-01, one small TSV each."""
    train = root / "input" / "data" / "train"
    for day in ("2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"):
        (train / f"dt={day}").mkdir(parents=True)
        (train / f"dt={day}" / "part-0.tsv").write_text(f"SessionId\tItemId\tTime\n{day}\ta\t1\n{day}\tb\t2\n")
    return train


def test_a_window_reads_only_its_days_from_the_train_channel(tmp_path):
    root = lay_out(tmp_path, None, None, channels=())
    day_channel(root)
    argv = training_job.training_argv(JobPaths(root), {"window_start": "2026-11-29", "window_end": "2026-11-30",
                                                       "epochs": "2"})
    args = training_job.parse_training_args(argv)
    assert sorted(p.name for p in Path(args.train).iterdir()) == [
        "dt=2026-11-29_part-0.tsv",
        "dt=2026-11-30_part-0.tsv",
    ]
    assert args.param == ["epochs=2"], "the window is the job's, not a training parameter"


@pytest.mark.parametrize(
    "window, reason",
    [
        ({"window_start": "2026-11-29"}, "bad data window: window_end: missing"),
        (
            {"window_start": "2026-11-29", "window_end": "2026/11/30"},
            "bad data window: window_end: cannot use '2026/11/30'",
        ),
        (
            {"window_start": "2026-12-05", "window_end": "2026-12-06"},
            "bad data window: .* no event files for the data window",
        ),
    ],
)
def test_a_bad_window_is_named(tmp_path, window, reason):
    root = lay_out(tmp_path, None, None, channels=())
    day_channel(root)
    with pytest.raises(JobInputError, match=reason):
        training_job.training_argv(JobPaths(root), window)


def test_a_champion_channel_is_unpacked_for_scoring(tmp_path):
    import tarfile

    root = lay_out(tmp_path / "opt_ml", None, None, channels=("train", "champion"))
    (root / "input" / "data" / "train" / "a.tsv").write_text("")
    model = tmp_path / "live"
    model.mkdir()
    (model / "metadata.json").write_text("{}")
    with tarfile.open(root / "input" / "data" / "champion" / "model.tar.gz", "w:gz") as tar:
        tar.add(model / "metadata.json", arcname="metadata.json")
    args = training_job.parse_training_args(training_job.training_argv(JobPaths(root), {"valid_days": "1"}))
    assert (Path(args.champion_dir) / "metadata.json").read_text() == "{}"


def test_a_champion_channel_without_an_archive_fails(tmp_path):
    root = lay_out(tmp_path, None, None, channels=("train", "champion"))
    (root / "input" / "data" / "train" / "a.tsv").write_text("")
    (root / "input" / "data" / "champion" / "other.bin").write_text("x")
    with pytest.raises(JobInputError, match="input channel 'champion' holds no model.tar.gz"):
        training_job.training_argv(JobPaths(root), {"valid_days": "1"})


def test_a_visitor_log_trains_as_a_job_on_visits_of_the_kinds_read(tmp_path):
    from tests.model_code.commands.test_train import _visitor_log

    options = {"session_column": "user_id", "item_column": "product_id", "time_column": "event_time",
               "session_gap": "30m", "event_column": "event_type", "event_types": "view,cart"}
    root = lay_out(tmp_path / "job", None, {**options, **SHOP_PARAMETERS, "valid_days": "1"}, channels=("train",))
    _visitor_log(root / "input" / "data" / "train" / "clicks.csv")
    job = run_job(root)
    assert job.returncode == 0, job.stderr
    assert "times 2024-03-01" in job.stderr and "sessions added by the session gap" in job.stderr
    metadata = artifacts.read_metadata(root / "model")
    assert {name: metadata["read_options"][name] for name in options} == options
    assert metadata["data"]["train"]["sessions_split"] == 40 * 5 and metadata["data"]["train"]["other_kinds"] == 240
