"""Train GRU4Rec on an event log and write the model directory.

Command line::

    python -m model_code.train --train PATH [--test PATH] [--valid PATH | --valid-days N]
        [--preset rsc15|yoochoose|retailrocket|diginetica | --params FILE] [--param name=value ...] [--epochs N] [--seed S]
        [--model-dir DIR] [--checkpoint-dir DIR]

The run reads the events, sets the validation sessions apart (``--valid-days``:
those starting in the last N days of the training data), maps item ids to
indices (the remaining training items form the catalogue), trains epoch by
epoch with session-parallel mini-batches, evaluates on the validation set
after every epoch (``--eval-every``) and on the test set once, at the end
(Recall@k / MRR@k against all items, conservative ties), and writes the model
directory (see :mod:`model_code.artifacts`). The directory is assembled in a
temporary sibling folder and moved into place at the end, so a failed run
never leaves a half-written model.

The command trains on Keras's JAX backend with glibc's large allocations on
huge pages, whatever the caller's environment says (:mod:`model_code.training_env`:
the process re-executes itself once with both set).

``training.seconds`` in metadata.json counts, like the reference, from the
start of fitting (data loaded) to the end of the last epoch, compilation
included, evaluation, checkpointing and export excluded; ``wall_seconds`` is
the whole run. ``events_per_second`` is training examples (events with a
next event in their session) per second of epoch time.
"""
from __future__ import annotations

import argparse
import difflib
import errno
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
import textwrap
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from model_code import artifacts
from model_code.checkpoints import Checkpoint, CheckpointError, fingerprint, load_checkpoint, save_checkpoint
from model_code import hyperparameters
from model_code.event_rules import (ITEM, TRAINED_READ_OPTIONS, OptionError, ReadOptions, add_read_options,
                                    read_options)
from model_code.event_table import read_event_codes
from model_code.events import DataError, read_events
from model_code.item_index import ItemIndex
from model_code.read_summary import read_notes, time_span
from model_code.metrics import CUTOFFS
from model_code.params import (DEFAULT_PRESET, PRESETS, GRU4RecParams, ParamError, parameter_help,
                               parse_assignments, read_params_file, resolve_params)
from model_code.report import metrics_table
from model_code.session_batches import SessionArrays, session_parallel_steps
from model_code.tf_startup import import_keras, load_tensorflow_quietly
from model_code.training_env import TUNABLES_VARIABLE, startup_variable, use_training_environment

POPULAR_ITEMS = 1000
WEIGHT_NEUTRAL_PARAMS = ("epochs", "eval_batch_size")
TIES = "conservative"
PLOT_METRIC = "recall@20"
VALIDATION_KEY = "validation_metrics"
VALIDATION_PREFIX = "validation:"
CHAMPION_KEY = "champion_validation_metrics"
CHAMPION_PREFIX = "champion:" + VALIDATION_PREFIX


def _log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class TrainingRun:
    """What one call of :func:`train_model` needs besides the parameters.

    ``epoch_callback(epoch, record)`` is called after every epoch with that epoch's history record (its
    validation figures under :data:`VALIDATION_KEY` where measured); an exception it raises ends the run
    before anything is written (a tuning study prunes a trial so). ``save_model=False`` returns the
    metadata without writing a model directory. ``provenance`` (where the parameters came from, e.g. a
    tuning study) is kept in metadata.json under ``tuning``.
    """

    train_path: str
    test_path: str | None = None
    valid_path: str | None = None
    valid_days: float | None = None
    champion_dir: str | None = None
    model_dir: str = "model"
    checkpoint_dir: str | None = None
    seed: int = 42
    eval_every: int = 1
    read: ReadOptions = field(default_factory=ReadOptions)
    export: bool = True
    progress: bool = True
    log: Callable[[str], None] = _log_to_stderr
    tensorflow_logs: bool = False
    epoch_callback: Callable[[int, dict], None] | None = None
    save_model: bool = True
    provenance: dict | None = None


@dataclass
class _Data:
    index: ItemIndex
    train: SessionArrays
    test: SessionArrays | None
    valid: SessionArrays | None
    stats: dict
    valid_events: object = None


def train_model(params: GRU4RecParams, run: TrainingRun) -> dict:
    """Train, evaluate and write ``run.model_dir``; returns the metadata written there."""
    wall_start = time.perf_counter()
    model_dir = Path(run.model_dir).resolve()
    data = _load_data(run)
    keras = import_keras(run.tensorflow_logs)

    fit_start = time.perf_counter()
    model, trainer = _make_model(params, data, run.seed)
    steps = session_parallel_steps(data.train, params.batch_size)
    ids = _RunIds(run_fingerprint(params, run.seed, keras.backend.backend(), data.train),
                  eval_fingerprint(data.valid))
    history, fit_seconds, first_epoch = _resume(run, ids, params, model, trainer)
    history, fit_seconds = _fit(params, run, data, model, trainer, steps, ids, history, fit_seconds,
                                first_epoch, fit_start)
    validation_metrics = {}
    if data.valid is not None:
        validation_metrics = history[-1].get(VALIDATION_KEY) or _evaluate(trainer, data.valid, params)
    metrics = _evaluate(trainer, data.test, params) if data.test is not None else {}
    _release(trainer)
    del trainer
    champion_metrics = _score_champion(run, data)
    epoch_seconds = sum(record["seconds"] for record in history)
    training = {
        "seconds": round(fit_seconds, 3),
        "events_per_second": round(steps.n_examples * len(history) / max(epoch_seconds, 1e-9), 1),
        "epochs": len(history),
        "resumed_after_epoch": first_epoch or None,
        "seed": run.seed,
        "backend": keras.backend.backend(),
        "glibc_tunables": startup_variable(TUNABLES_VARIABLE),
        "history": history,
    }
    n_items = len(data.index)
    metadata = {
        "format_version": artifacts.FORMAT_VERSION,
        "n_items": n_items,
        "padding_index": n_items,
        "parameters": params.to_dict(),
        "data": data.stats,
        TRAINED_READ_OPTIONS: asdict(run.read),
        "metrics": metrics,
        "validation_metrics": validation_metrics,
        **({CHAMPION_KEY: champion_metrics} if run.champion_dir else {}),
        "training": training,
        "versions": _versions(),
        "popular_items": popular_items(data.train, data.index),
        **({"tuning": run.provenance} if run.provenance else {}),
    }
    if run.save_model:
        _write_model_dir(model_dir, model, data.index, metadata, run, wall_start)
    return metadata


@dataclass(frozen=True)
class _RunIds:
    """The checkpoint fingerprints of this run: its weights' inputs, and its evaluation set."""

    weights: str
    evaluation: str | None


def run_fingerprint(params: GRU4RecParams, seed: int, backend: str, train: SessionArrays) -> str:
    """A hash of everything the trained weights depend on: the training data, the parameters, seed and backend.

    Left out are the parameters that do not change the weights epoch by
    epoch (:data:`WEIGHT_NEUTRAL_PARAMS`: how many epochs follow, the
    evaluation batch size), so a finished run can be resumed for more epochs.
    """
    weighed = {key: value for key, value in params.to_dict().items() if key not in WEIGHT_NEUTRAL_PARAMS}
    return fingerprint(weighed, seed, backend, train.items, train.offsets)


def eval_fingerprint(data: SessionArrays | None) -> str | None:
    """A hash of the evaluation set as the model sees it (None: no evaluation set)."""
    return None if data is None else fingerprint(data.items, data.offsets)


def _release(trainer) -> None:
    """Free what only training needed before the model is written (the export's peak adds to what is held).

    The optimizer slots hold two copies of every table and the compiled steps
    their buffers.
    """
    from model_code.memory import release_heap

    trainer.release()
    release_heap()


def _make_model(params: GRU4RecParams, data: _Data, seed: int):
    """A fresh GRU4Rec model for the catalogue and its trainer."""
    from model_code.model import GRU4Rec
    from model_code.trainer import Trainer

    # Every random draw is seeded from ``seed`` (initializers, sampler, dropout masks), so no global seed is set:
    # keras.utils.set_random_seed would also import TensorFlow, seconds of a JAX run's training time.
    n_items = len(data.index)
    model = GRU4Rec(
        n_items, layers=params.layers, embedding=params.embedding, embedding_size=params.embedding_size,
        dropout_embedding=params.dropout_embedding, dropout_hidden=params.dropout_hidden, seed=seed,
    )
    trainer = Trainer(
        model, loss=params.loss, n_sample=params.n_sample, sample_alpha=params.sample_alpha,
        learning_rate=params.learning_rate, momentum=params.momentum, bpreg=params.bpreg, elu=params.elu,
        logq=params.logq, logq_form=params.logq_form, batch_size=params.batch_size, block_steps=params.block_steps,
        item_counts=data.train.item_counts(n_items), seed=seed, matmul_precision=params.matmul_precision,
    )
    return model, trainer


def _fit(params, run, data, model, trainer, steps, ids, history, fit_seconds, first_epoch, fit_start):
    """Epochs ``first_epoch``..end: train, evaluate when due, checkpoint; returns (history, fit seconds).

    Fit seconds run from ``fit_start`` to the end of the last epoch, less the
    time spent evaluating and checkpointing, plus those of earlier runs.
    """
    excluded = 0.0
    for epoch in range(first_epoch, params.epochs):
        stats = _train_epoch(trainer, steps, epoch, params.epochs, run.progress, compiling=epoch == first_epoch)
        epoch_end = time.perf_counter()
        fit_total = fit_seconds + (epoch_end - fit_start - excluded)
        record = {"epoch": epoch + 1, "loss": float(stats["loss"]), "seconds": float(stats["seconds"])}
        run.log(f"epoch {epoch + 1}/{params.epochs}: loss {record['loss']:.4f}, "
                f"{steps.n_examples / stats['seconds']:,.0f} events/s")
        if data.valid is not None and _evaluate_now(epoch + 1, params.epochs, run.eval_every):
            record[VALIDATION_KEY] = _evaluate(trainer, data.valid, params)
            run.log(f"epoch {epoch + 1}: validation {PLOT_METRIC} {record[VALIDATION_KEY][PLOT_METRIC]:.4f}")
        history = history + [record]
        if run.checkpoint_dir:
            save_checkpoint(run.checkpoint_dir, Checkpoint(
                ids.weights, epoch + 1, [np.asarray(v) for v in model.variables], trainer.get_state(), history,
                fit_total, ids.evaluation,
            ))
        excluded += time.perf_counter() - epoch_end
        if run.epoch_callback is not None:
            run.epoch_callback(epoch + 1, record)
        if epoch + 1 == params.epochs:
            fit_seconds = fit_total
    return history, fit_seconds


def _load_data(run: TrainingRun) -> _Data:
    started = time.perf_counter()
    train_events = read_event_codes(run.train_path, run.read, run.log)
    read_stats = _read_stats(train_events)
    span, notes = time_span(train_events.times), read_notes(train_events)
    train_events, valid_events, valid_source = _validation_split(run, train_events, span)
    index = ItemIndex.from_codes(train_events)
    train = SessionArrays.from_codes(train_events, index)
    del train_events
    if train.n_examples == 0:
        raise DataError(f"{run.train_path}: no session has two or more events: nothing to train on")
    stats = {"train": {"source": str(run.train_path), "items": len(index), **read_stats, **train.stats()}}
    summary = [f"train: {train.n_events} events, {train.sessions_summary()}, {len(index)} items, "
               + ", ".join([span, *notes])]
    valid = None
    if valid_events is not None:
        valid = _held_out(valid_events, index, valid_source, "validation", stats, summary)
        stats["validation"]["unknown_items"] = _unknown_items(valid_events, index)
        summary[-1] += f", {stats['validation']['unknown_items']} items seen only there (unknown to the model)"
    test = None
    if run.test_path:
        test_events = read_events(run.test_path, run.read, run.log)
        test = _held_out(test_events, index, str(run.test_path), "test", stats, summary)
        stats["test"].update(_read_stats(test_events))
    run.log("; ".join(summary) + f"; read in {time.perf_counter() - started:.1f} s")
    return _Data(index, train, test, valid, stats, valid_events)


def _score_champion(run: TrainingRun, data: _Data) -> dict:
    """The figures of the model in ``run.champion_dir`` on this run's validation sessions ({} without one).

    Its events are the ones this model is validated on; items the champion does not know are dropped
    and counted, as evaluation does. A champion that knows no next-item case gets no figures (logged).
    """
    if not run.champion_dir:
        return {}
    from model_code.evaluate import evaluate_events

    try:
        return evaluate_events(run.champion_dir, data.valid_events, f"champion {run.champion_dir}", TIES,
                               log=run.log, show_tensorflow_logs=run.tensorflow_logs, name="champion validation")
    except DataError as err:
        run.log(f"the champion gets no figures: {err}")
        return {}


def _read_stats(events) -> dict:
    """What reading the file skipped and changed, as metadata.json records it."""
    keys = ("rows_read", "skipped_rows", "other_kinds", "sessions_split", "repeats_collapsed")
    return {key: events.attrs[key] for key in keys}


def _validation_split(run: TrainingRun, train_events, span: str):
    """(training events as codes, validation events as a frame or None, where the validation events come from)."""
    if run.valid_days is not None:
        from model_code.preprocess import split_codes_by_time

        source = f"the last {run.valid_days:g} days of {run.train_path}"
        train_events, valid_events = split_codes_by_time(train_events, run.valid_days)
        if not len(train_events) or not len(valid_events):
            raise DataError(f"--valid-days {run.valid_days:g}: {source} leave "
                            f"{'no training' if not len(train_events) else 'no validation'} session ({span} "
                            f"read with --time-format {run.read.time_format})")
        return train_events, valid_events.to_frame(), source
    if run.valid_path:
        return train_events, read_events(run.valid_path, run.read, run.log), str(run.valid_path)
    return train_events, None, None


def _held_out(events, index: ItemIndex, source: str, name: str, stats: dict, summary: list[str]) -> SessionArrays:
    """Validation or test events as sessions of known items; their figures go into ``stats`` and ``summary``."""
    data = SessionArrays.from_events(events, index)
    if data.n_examples == 0:
        raise DataError(f"{source}: no {name} session has two events with items known to training")
    stats[name] = {"source": source, **data.stats()}
    summary.append(f"{name}: {data.n_events} events, {data.sessions_summary()}, {data.n_examples} next-item cases, "
                   f"{data.dropped_unknown} events with items unknown to training dropped")
    return data


def _unknown_items(events, index: ItemIndex) -> int:
    """How many distinct items of ``events`` the index does not know."""
    _, known = index.lookup(events[ITEM])
    return int(events[ITEM][~known].nunique())


def _resume(run: TrainingRun, ids: _RunIds, params: GRU4RecParams, model, trainer) -> tuple[list[dict], float, int]:
    """History, fit seconds and first epoch to run, from the checkpoint where one matches this run.

    A matching checkpoint with more epochs than asked for is refused
    (:class:`CheckpointError`); figures its history holds for another
    evaluation set are dropped, so they are measured again rather than reported.
    """
    if not run.checkpoint_dir:
        return [], 0.0, 0
    checkpoint = load_checkpoint(run.checkpoint_dir)
    if checkpoint is None:
        return [], 0.0, 0
    if checkpoint.fingerprint != ids.weights:
        run.log(f"checkpoint in {run.checkpoint_dir} is from other data or parameters: starting afresh")
        return [], 0.0, 0
    if checkpoint.epochs_done > params.epochs:
        raise CheckpointError(
            f"checkpoint in {run.checkpoint_dir} has {checkpoint.epochs_done} epochs done, more than the "
            f"{params.epochs} asked for: ask for at least {checkpoint.epochs_done} epochs, or give another "
            "--checkpoint-dir to train afresh")
    if len(checkpoint.model_variables) != len(model.variables):
        raise ValueError(f"checkpoint in {run.checkpoint_dir} holds {len(checkpoint.model_variables)} model "
                         f"variables, the model has {len(model.variables)}")
    for variable, value in zip(model.variables, checkpoint.model_variables):
        variable.assign(value)
    trainer.set_state(checkpoint.trainer_state)
    run.log(f"resuming from the checkpoint in {run.checkpoint_dir}: {checkpoint.epochs_done} epochs done, "
            f"continuing with epoch {checkpoint.epochs_done + 1}")
    history = list(checkpoint.history)
    if checkpoint.eval_fingerprint != ids.evaluation and any(VALIDATION_KEY in record for record in history):
        run.log("the checkpoint's figures are of another validation set: left out, the model is evaluated afresh")
        history = [{key: value for key, value in record.items() if key != VALIDATION_KEY} for record in history]
    return history, checkpoint.fit_seconds, checkpoint.epochs_done


def _train_epoch(trainer, steps, epoch: int, epochs: int, progress: bool, compiling: bool = False) -> dict:
    """One epoch behind a progress bar; on the run's first epoch the bar says "compiling" until the first
    block (compiled on its first call, which can take a while) is done."""
    from tqdm.auto import tqdm

    with tqdm(total=steps.n_examples, desc=f"epoch {epoch + 1}/{epochs}", unit="event", unit_scale=True,
              disable=not progress, mininterval=0.5) as bar:
        if compiling:
            bar.set_postfix_str("compiling the training step (once per run)")

        def update(done: int, loss: float) -> None:
            bar.update(done - bar.n)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

        return trainer.train_epoch(steps, progress_callback=update)


def _evaluate_now(epoch: int, epochs: int, every: int) -> bool:
    return epoch == epochs or (every > 0 and epoch % every == 0)


def _evaluate(trainer, test: SessionArrays, params: GRU4RecParams) -> dict:
    metrics = trainer.evaluate(test, batch_size=params.eval_batch_size, cutoffs=CUTOFFS, ties=TIES)
    return {key: float(value) for key, value in metrics.items()}


def popular_items(train: SessionArrays, index: ItemIndex, limit: int = POPULAR_ITEMS) -> list[str]:
    """The most frequent training items, most popular first (ties: lower index first)."""
    counts = train.item_counts(len(index))
    order = np.argsort(-counts, kind="stable")[:limit]
    return [index.ids[i] for i in order]


def _versions() -> dict:
    """Versions of what trained (Keras, its backend, JAX) and of the export's TensorFlow, read from the installed
    packages' metadata: importing TensorFlow here would cost the run seconds and print its start-up lines."""
    import keras

    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__,
                "backend": keras.backend.backend()}
    for name, distributions in (("jax", ("jax",)), ("tensorflow", ("tensorflow", "tensorflow-cpu"))):
        found = [version for version in map(_installed_version, distributions) if version]
        if found:
            versions[name] = found[0]
    return versions


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _write_model_dir(model_dir: Path, model, index: ItemIndex, metadata: dict, run: TrainingRun,
                     wall_start: float) -> None:
    """Assemble the directory in a temporary sibling, then move it into place."""
    from model_code.export import export_model_dir
    from model_code.plots import plot_training

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}.tmp-"))
    try:
        load_tensorflow_quietly(run.tensorflow_logs)  # Keras's saving imports it where it is installed
        model.save(staging / artifacts.MODEL_FILE)
        index.save(staging)
        if run.export:
            export_model_dir(model, staging, run.log)
        else:
            run.log("skipping the ONNX scorer export: export not asked for")
        history = metadata["training"]["history"]
        plot_training(staging / artifacts.PLOT_FILE, [r["loss"] for r in history],
                      [r.get(VALIDATION_KEY, {}).get(PLOT_METRIC) for r in history],
                      (metadata["metrics"] or {}).get(PLOT_METRIC))
        metadata["training"]["wall_seconds"] = round(time.perf_counter() - wall_start, 3)
        artifacts.write_json(staging / artifacts.METADATA_FILE, metadata)
        _readable_by_all(staging)
        _publish(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _readable_by_all(folder: Path) -> None:
    """Give the staged folder and its files the usual modes (temporary files are created private)."""
    folder.chmod(artifacts.file_mode(folder=True))
    for path in folder.iterdir():
        path.chmod(artifacts.file_mode())


def _publish(staging: Path, model_dir: Path) -> None:
    """Put ``staging``'s files at ``model_dir``: a rename where possible, else file by file, metadata last.

    A folder that already exists (SageMaker's /opt/ml/model, possibly a mount
    point) keeps its place; its files are replaced one by one, each with an
    atomic rename (after a copy beside it where the folder is another file
    system), and metadata.json (the sign of a complete model) comes last.
    """
    if not model_dir.exists():
        os.rename(staging, model_dir)
        return
    if not model_dir.is_dir():
        raise NotADirectoryError(f"model directory {model_dir} exists and is not a folder")
    names = sorted(os.listdir(staging), key=lambda name: name == artifacts.METADATA_FILE)
    stale = model_dir / artifacts.METADATA_FILE
    stale.unlink(missing_ok=True)
    for name in names:
        target = model_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        _move_file(staging / name, target)


def _move_file(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; across file systems (a mounted model folder), copy next to it, then rename."""
    try:
        os.replace(source, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


class _Parser(argparse.ArgumentParser):
    """argparse with a "did you mean" for a misspelt flag."""

    def error(self, message: str):
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            known = [flag for action in self._actions for flag in action.option_strings]
            hints = []
            for given in message[len(prefix):].split():
                close = difflib.get_close_matches(given.split("=")[0], known, n=1, cutoff=0.6)
                if given.startswith("-") and close:
                    hints.append(f"{given} (did you mean {close[0]}?)")
            if hints:
                message += "; " + "; ".join(hints)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m model_code.train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Train GRU4Rec (session-parallel mini-batches, sampled negatives, Adagrad with momentum) on an event "
            "log and write the model directory: model.keras, scorer.onnx, item_embeddings.npy, item_bias.npy, "
            "items.json, metadata.json and training.png. Recall@k and MRR@k (conservative ties, all training "
            "items ranked) are measured on the validation set (--valid or --valid-days) after every epoch, and on "
            "--test once, at the end.", width=100,
        ),
        epilog=f"parameters (--param NAME=VALUE; the {DEFAULT_PRESET} preset's default after '='):\n"
               f"{parameter_help()}\n\n"
               "example: --preset diginetica --param layers=256 --param n_sample=1024",
    )
    parser.add_argument("--train", required=True, help="training events: TSV/CSV/Parquet file (gzip or not), folder or s3:// URI")
    parser.add_argument("--test", help="test events, same formats; items unknown to training are dropped; "
                                       "scored once, after the last epoch")
    validation = parser.add_mutually_exclusive_group()
    validation.add_argument("--valid", help="validation events, same formats: the per-epoch figures")
    validation.add_argument("--valid-days", type=_positive_days, metavar="N",
                            help="validation = the sessions starting in the last N days of --train, taken out of "
                                 "training before the item index is built (default: no validation)")
    parser.add_argument("--champion-dir", metavar="DIR",
                        help="a model directory (the live model) to score on the same validation sessions after "
                             "training; its figures are printed as champion:validation:name=value; lines and kept "
                             "in metadata.json under champion_validation_metrics")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="parameter set of the published best runs (default: rsc15)")
    start.add_argument("--params", metavar="FILE",
                       help="a parameter file (JSON, e.g. best_params.json of python -m model_code.tune) to start "
                            "from instead of a preset; its provenance is kept in metadata.json under tuning")
    parser.add_argument("--tuning-job", type=_tuning_job, metavar="NAME",
                        help="the SageMaker tuning job whose best settings these parameters are: kept in "
                             "metadata.json under tuning.sagemaker_tuning_job")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override one parameter of the preset (repeatable), e.g. --param layers=100,100")
    parser.add_argument("--epochs", type=int, help="passes over the training data (default: the preset's, 10)")
    parser.add_argument("--seed", type=int, default=42, help="random seed: the same seed on the same CPU gives the same model (default: 42)")
    parser.add_argument("--model-dir", default="model", help="where to write the model directory (default: ./model)")
    parser.add_argument("--checkpoint-dir", help="save a checkpoint here after every epoch, and resume from it if one matches this run")
    parser.add_argument("--eval-every", type=int, default=1, metavar="N",
                        help="evaluate on the validation set every N epochs and after the last "
                             "(0: after the last only; default: 1)")
    parser.add_argument("--no-export", action="store_true", help="do not write scorer.onnx and the output layer arrays")
    add_read_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines, only the results")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars, log lines still (for logs that are not a terminal)")
    parser.add_argument("--tensorflow-logs", action="store_true",
                        help="show TensorFlow's own start-up and compilation log lines (default: quietened)")
    return parser


def _tuning_job(text: str) -> str:
    try:
        return hyperparameters.tuning_job_name(text)
    except OptionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive_days(text: str) -> float:
    """``--valid-days``: a number of days > 0, checked as the ``valid_days`` hyperparameter is."""
    try:
        return hyperparameters.positive_days(text)
    except OptionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def metric_lines(metrics: dict, prefix: str = "") -> str:
    """One ``prefix + name=value;`` line per metric, the form training-job metric definitions match."""
    return "\n".join(f"{prefix}{name}={value:.4f};" for name, value in metrics.items())


INPUT_ERRORS = (ParamError, DataError, CheckpointError, artifacts.ModelDirError)


def run_command(args: argparse.Namespace) -> dict:
    """Train as the parsed command line says; returns the metadata written.

    Bad parameters, data, checkpoints or model directories raise one of :data:`INPUT_ERRORS`.
    """
    log = (lambda message: None) if args.quiet else _log_to_stderr
    overrides = parse_assignments(args.param)
    if args.epochs is not None:
        overrides["epochs"] = str(args.epochs)
    provenance = None
    if args.params:
        base, provenance = read_params_file(args.params)
        params = base.with_strings(overrides)
    else:
        params = resolve_params(args.preset, overrides)
    if args.tuning_job:
        provenance = {**(provenance or {}), "sagemaker_tuning_job": args.tuning_job}
    if args.eval_every < 0:
        raise ParamError(f"--eval-every: cannot use {args.eval_every}; allowed: an integer >= 0")
    if args.champion_dir and args.valid is None and args.valid_days is None:
        raise ParamError("--champion-dir: the champion is scored on the validation sessions: give --valid or --valid-days")
    if args.champion_dir:
        from model_code.evaluate import read_params

        read_params(Path(args.champion_dir))
    run = TrainingRun(
        train_path=args.train, test_path=args.test, valid_path=args.valid, valid_days=args.valid_days,
        champion_dir=args.champion_dir,
        model_dir=args.model_dir, checkpoint_dir=args.checkpoint_dir,
        seed=args.seed, eval_every=args.eval_every,
        read=read_options(args),
        export=not args.no_export, progress=not (args.quiet or args.no_progress), log=log,
        tensorflow_logs=args.tensorflow_logs, provenance=provenance,
    )
    log(f"parameters: {params.to_dict()}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        metadata = train_model(params, run)
    training = metadata["training"]
    log(f"model written to {Path(args.model_dir).resolve()} "
        f"(training {training['seconds']:.1f} s, {training['events_per_second']:,.0f} events/s, "
        f"wall {training['wall_seconds']:.1f} s)")
    return metadata


def print_results(metadata: dict) -> None:
    """The metrics table, one ``name=value;`` line per metric and the training seconds, on stdout.

    Test figures are ``recall@20=...;``, validation figures ``validation:recall@20=...;``.
    """
    rows = {name: metadata[key] for name, key in (("gru4rec (validation)", VALIDATION_KEY), ("gru4rec", "metrics"))
            if metadata[key]}
    if rows:
        print(metrics_table(rows))
    if metadata[VALIDATION_KEY]:
        print(metric_lines(metadata[VALIDATION_KEY], VALIDATION_PREFIX))
    if metadata.get(CHAMPION_KEY):
        print(metric_lines(metadata[CHAMPION_KEY], CHAMPION_PREFIX))
    if metadata["metrics"]:
        print(metric_lines(metadata["metrics"]))
    print(f"training_seconds={metadata['training']['seconds']:.3f};")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        metadata = run_command(args)
    except INPUT_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_results(metadata)
    return 0


if __name__ == "__main__":
    use_training_environment()
    sys.exit(main())
