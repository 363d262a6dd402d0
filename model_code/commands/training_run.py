"""One training run: read the data (:mod:`model_code.commands.training_data`), fit epoch by epoch (resuming
from a matching checkpoint), evaluate, and hand the model to :mod:`model_code.commands.publish`.

The run reads the events, sets the validation sessions apart (``--valid-days``:
those starting in the last N days of the training data), maps item ids to
indices (the remaining training items form the catalogue), trains epoch by
epoch with session-parallel mini-batches, evaluates on the validation set
after every epoch (``--eval-every``) and on the test set once, at the end
(Recall@k / MRR@k against all items, conservative ties), and writes the model
directory (see :mod:`model_code.artifacts`). The directory is assembled in a
temporary sibling folder and moved into place at the end, so a failed run
never leaves a half-written model.

``training.seconds`` in metadata.json counts, like the reference, from the
start of fitting (data loaded) to the end of the last epoch, compilation
included, evaluation, checkpointing and export excluded; ``wall_seconds`` is
the whole run. ``events_per_second`` is training examples (events with a
next event in their session) per second of epoch time.

Checkpoints are matched to a run by fingerprints of what its weights depend on
(:func:`run_fingerprint`) and of its evaluation set (:func:`eval_fingerprint`).
"""
from __future__ import annotations

import importlib.metadata
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from model_code import artifacts
from model_code.commands.checkpoints import Checkpoint, CheckpointError, fingerprint, load_checkpoint, save_checkpoint
from model_code.commands.publish import write_model_dir
from model_code.commands.report import CHAMPION_KEY, PLOT_METRIC, VALIDATION_KEY
from model_code.commands.training_data import TrainingData, load_training_data
from model_code.data.event_rules import TRAINED_READ_OPTIONS, ReadOptions
from model_code.data.events import DataError
from model_code.data.item_index import ItemIndex
from model_code.data.session_batches import SessionArrays, session_parallel_steps
from model_code.gru4rec.params import GRU4RecParams
from model_code.gru4rec.tf_startup import import_keras
from model_code.gru4rec.training_env import TUNABLES_VARIABLE, startup_variable
from model_code.ranking.metrics import CUTOFFS

POPULAR_ITEMS = 1000
WEIGHT_NEUTRAL_PARAMS = ("epochs", "eval_batch_size")
TIES = "conservative"


def log_to_stderr(message: str) -> None:
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
    log: Callable[[str], None] = log_to_stderr
    tensorflow_logs: bool = False
    epoch_callback: Callable[[int, dict], None] | None = None
    save_model: bool = True
    provenance: dict | None = None


def train_model(params: GRU4RecParams, run: TrainingRun) -> dict:
    """Train, evaluate and write ``run.model_dir``; returns the metadata written there."""
    wall_start = time.perf_counter()
    model_dir = Path(run.model_dir).resolve()
    data = load_training_data(run.train_path, valid_path=run.valid_path, valid_days=run.valid_days,
                              test_path=run.test_path, read=run.read, log=run.log)
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
    matmul_dtype = trainer.matmul_dtype
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
        "matmul_dtype": matmul_dtype,
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
        write_model_dir(model_dir, model, data.index, metadata, export=run.export, log=run.log,
                        tensorflow_logs=run.tensorflow_logs, wall_start=wall_start)
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
    from model_code.gru4rec.memory import release_heap

    trainer.release()
    release_heap()


def _make_model(params: GRU4RecParams, data: TrainingData, seed: int):
    """A fresh GRU4Rec model for the catalogue and its trainer."""
    from model_code.gru4rec.model import GRU4Rec
    from model_code.gru4rec.trainer import Trainer

    # Every random draw is seeded from ``seed`` (initializers, sampler, dropout masks), so no global seed is set:
    # keras.utils.set_random_seed would also import TensorFlow, seconds of a JAX run's training time.
    n_items = len(data.index)
    model = GRU4Rec(
        n_items, layers=params.layers, embedding=params.embedding, embedding_size=params.embedding_size,
        dropout_embedding=params.dropout_embedding, dropout_hidden=params.dropout_hidden, seed=seed,
    )
    trainer = Trainer(model, params, item_counts=data.train.item_counts(n_items), seed=seed)
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


def _score_champion(run: TrainingRun, data: TrainingData) -> dict:
    """The figures of the model in ``run.champion_dir`` on this run's validation sessions ({} without one).

    Its events are the ones this model is validated on; items the champion does not know are dropped
    and counted, as evaluation does. A champion that knows no next-item case gets no figures (logged).
    """
    if not run.champion_dir:
        return {}
    from model_code.commands.evaluate import evaluate_events

    try:
        return evaluate_events(run.champion_dir, data.valid_events, f"champion {run.champion_dir}", TIES,
                               log=run.log, show_tensorflow_logs=run.tensorflow_logs, name="champion validation")
    except DataError as err:
        run.log(f"the champion gets no figures: {err}")
        return {}


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
