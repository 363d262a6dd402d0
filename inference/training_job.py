"""The container's ``train`` command: GRU4Rec training under SageMaker's training-job contract.

SageMaker runs the image as ``train`` with this layout under ``/opt/ml`` (``$OPT_ML_DIR`` on a
developer machine)::

    input/config/hyperparameters.json   {"name": "value", ...}, every value a string; optional
    input/data/train/                   training events (required channel): TSV/CSV/Parquet, gzip or not
    input/data/test/                    test events (optional channel): scored once, after the last epoch
    input/data/valid/                   validation events (optional channel): the per-epoch figures
    input/data/champion/model.tar.gz    the live model (optional channel): scored on the same validation sessions
    model/                              the model directory written here (SageMaker tars and uploads it)
    checkpoints/                        a checkpoint after every epoch; a restarted job resumes from it
    output/failure                      why the job failed (SageMaker shows it as the FailureReason)

Hyperparameters become :mod:`model_code.commands.train` options through
:func:`model_code.gru4rec.hyperparameters.hyperparameters_argv`, which checks every name and value first: ``preset``,
``seed``, ``eval_every``, ``valid_days``, the reading options (``session_column``, ``item_column``,
``time_column``, ``separator``, ``time_format``, ``max_bad_rows``) and every GRU4Rec parameter (``epochs``,
``layers``, ``learning_rate``, ...); ``valid_days`` (N) sets the sessions of the last N days of the training
data apart for validation, as an alternative to a ``valid`` channel. The ones SageMaker adds by itself (names
starting ``sagemaker_`` or ``_``, such as ``_tuning_objective_metric``) are left out. Metrics are printed as
``recall@20=0.6812;`` lines for the test set and ``validation:recall@20=0.6731;`` lines for the validation
set (printed first), the form the job's metric definitions match.

Two hyperparameters belong to the job rather than to training: ``window_start`` and ``window_end``
(``YYYY-MM-DD``, both or neither). With them the ``train`` channel is a folder of day folders
``dt=YYYY-MM-DD/`` and the job reads only the days from the first to the last, both included
(:mod:`model_code.data.data_window`); without them it reads the channel's files as they are. A ``champion``
channel holds the live model's ``model.tar.gz``: it is unpacked and scored on this run's validation
sessions, printed as ``champion:validation:recall@20=...;`` lines.

The exit code is 0 on success, 2 for a problem with the job's input (hyperparameters, channels, data)
and 1 for anything else; both failures write a one-line reason to ``output/failure``. TensorFlow and
the training code load only once the input has been checked, so this module imports anywhere.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inference.paths import MODEL_SUBDIR, opt_ml_dir
from model_code import artifacts

TRAIN_CHANNEL, TEST_CHANNEL, VALID_CHANNEL, CHAMPION_CHANNEL = "train", "test", "valid", "champion"
WINDOW_OPTIONS = ("window_start", "window_end")
MODEL_ARCHIVE = "model.tar.gz"
SAGEMAKER_OWN_PREFIXES = ("sagemaker_", "_")
# SageMaker names the training job in the container's environment; it becomes the model's version
TRAINING_JOB_NAME = "TRAINING_JOB_NAME"
FAILURE_LIMIT = 1024  # SageMaker reports the first 1024 characters of the failure file


class JobInputError(Exception):
    """The job's input cannot be used; the message is the failure reason."""


@dataclass(frozen=True)
class JobPaths:
    """Where SageMaker puts the job's input and expects its output, under one root."""

    root: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> JobPaths:
        return cls(opt_ml_dir(environ))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model(self) -> Path:
        return self.root / MODEL_SUBDIR

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


def read_hyperparameters(path: Path) -> dict[str, str]:
    """The hyperparameters as {name: string value}; no file means no hyperparameters (all defaults)."""
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise JobInputError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(values, dict):
        raise JobInputError(f"{path} must hold a JSON object of name: value pairs, not {type(values).__name__}")
    return {str(name): value if isinstance(value, str) else json.dumps(value) for name, value in values.items()}


def split_hyperparameters(values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the hyperparameters for training, the names SageMaker added by itself, which are left out)."""
    own = sorted(name for name in values if name.startswith(SAGEMAKER_OWN_PREFIXES))
    return {name: value for name, value in values.items() if name not in own}, own


def channel_folder(paths: JobPaths, name: str, required: bool) -> Path | None:
    """The channel's folder; None for an optional channel the job was not given. Missing or empty fails."""
    folder = paths.channel(name)
    if not folder.exists():
        if not required:
            return None
        raise JobInputError(f"input channel '{name}' is missing: no folder {folder}; "
                            f"give the training job a '{name}' channel with the event files")
    if not folder.is_dir() or not any(not entry.name.startswith(".") for entry in folder.iterdir()):
        raise JobInputError(f"input channel '{name}' is empty: no files in {folder}")
    return folder


def window_folder(train: Path, window: Mapping[str, str]) -> Path:
    """The train channel itself, or with ``window_start``/``window_end`` a folder of links to that window's days."""
    if not window:
        return train
    from model_code.data.data_window import Window, link_window
    from model_code.data.events import DataError

    missing = [name for name in WINDOW_OPTIONS if name not in window]
    try:
        if missing:
            raise DataError(f"{missing[0]}: missing; give both {' and '.join(WINDOW_OPTIONS)} or neither")
        days = Window.parse(window["window_start"], window["window_end"])
        found = link_window(train, days, Path(tempfile.mkdtemp(prefix="window-")) / "events")
    except DataError as err:
        raise JobInputError(f"bad data window: {err}") from None
    _log(found.summary(days))
    return found.folder


def champion_folder(paths: JobPaths) -> Path | None:
    """The live model unpacked from the ``champion`` channel's model.tar.gz; None without that channel."""
    channel = channel_folder(paths, CHAMPION_CHANNEL, required=False)
    if channel is None:
        return None
    archive = channel / MODEL_ARCHIVE
    if not archive.is_file():
        raise JobInputError(
            f"input channel '{CHAMPION_CHANNEL}' holds no {MODEL_ARCHIVE}: {sorted(p.name for p in channel.iterdir())}"
        )
    target = Path(tempfile.mkdtemp(prefix="champion-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise JobInputError(f"input channel '{CHAMPION_CHANNEL}': cannot unpack {archive}: {err}") from None
    return target


def training_argv(paths: JobPaths, hyperparameters: Mapping[str, str]) -> list[str]:
    """The :mod:`model_code.commands.train` command line for this job (channels, then hyperparameters checked)."""
    from model_code.gru4rec.hyperparameters import hyperparameters_argv
    from model_code.gru4rec.params import ParamError

    window = {name: hyperparameters[name] for name in WINDOW_OPTIONS if name in hyperparameters}
    hyperparameters = {name: value for name, value in hyperparameters.items() if name not in WINDOW_OPTIONS}
    argv = ["--train", str(window_folder(channel_folder(paths, TRAIN_CHANNEL, required=True), window))]
    test = channel_folder(paths, TEST_CHANNEL, required=False)
    if test is not None:
        argv += ["--test", str(test)]
    valid = channel_folder(paths, VALID_CHANNEL, required=False)
    if valid is not None:
        argv += ["--valid", str(valid)]
    champion = champion_folder(paths)
    if champion is not None:
        argv += ["--champion-dir", str(champion)]
    argv += ["--model-dir", str(paths.model), "--checkpoint-dir", str(paths.checkpoints), "--no-progress"]
    try:
        return argv + hyperparameters_argv(hyperparameters)
    except ParamError as err:
        raise JobInputError(f"bad hyperparameter: {err}") from None


def parse_training_args(argv: list[str]) -> argparse.Namespace:
    """Parse with :mod:`model_code.commands.train`'s parser; a bad option value (a hyperparameter) raises
    JobInputError."""
    from model_code.commands.train import build_parser

    parser = build_parser()

    def fail(message: str):
        raise JobInputError(f"bad hyperparameter: {message}")

    parser.error = fail
    return parser.parse_args(argv)


def run_job(paths: JobPaths, environ: Mapping[str, str] = os.environ) -> dict:
    """Check the input, train, write the model directory (its version: the job's name) and print the metric
    lines; returns the metadata."""
    hyperparameters, left_out = split_hyperparameters(read_hyperparameters(paths.hyperparameters))
    if left_out:
        _log(f"leaving out hyperparameters SageMaker set for itself: {', '.join(left_out)}")
    try:
        from model_code.commands import train
        from model_code.commands.checkpoints import CheckpointError
        from model_code.data.events import DataError
        from model_code.gru4rec.params import ParamError
    except ImportError as err:
        raise RuntimeError(f"this image cannot train (build the Dockerfile's 'train' target): {err}") from err
    args = parse_training_args(training_argv(paths, hyperparameters))
    _log(f"training job: data {args.train}" + (f", test {args.test}" if args.test else ", no test channel")
         + f"; hyperparameters {hyperparameters or 'none (defaults)'}; checkpoints in {paths.checkpoints}")
    try:
        metadata = train.run_command(args)
    except ParamError as err:
        raise JobInputError(f"bad hyperparameter: {err}") from err
    except DataError as err:
        raise JobInputError(f"bad training data: {err}") from err
    except CheckpointError as err:
        raise JobInputError(f"cannot resume: {err}") from err
    version = environ.get(TRAINING_JOB_NAME)
    if version:
        artifacts.record_model_version(paths.model, version)
        metadata[artifacts.MODEL_VERSION_KEY] = version
    train.print_results(metadata)
    return metadata


def write_failure(paths: JobPaths, reason: str) -> None:
    """Write the failure reason where SageMaker reads it (its first 1024 characters are shown)."""
    paths.failure.parent.mkdir(parents=True, exist_ok=True)
    paths.failure.write_text(reason[:FAILURE_LIMIT] + "\n")


def failure_reason(err: BaseException) -> str:
    """One line: the message of an input problem, else the exception's last traceback line."""
    text = str(err) if isinstance(err, JobInputError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())


def main(environ: Mapping[str, str] = os.environ) -> int:
    paths = JobPaths.from_environment(environ)
    paths.failure.unlink(missing_ok=True)
    try:
        run_job(paths, environ)
    except Exception as err:  # every failure must reach the failure file
        if not isinstance(err, JobInputError):
            traceback.print_exc()
        reason = failure_reason(err)
        _log(f"training failed: {reason}")
        write_failure(paths, reason)
        return 2 if isinstance(err, JobInputError) else 1
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
