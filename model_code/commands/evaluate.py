"""Re-evaluate a saved model directory on a test event log.

Command line::

    python -m model_code.commands.evaluate --model-dir DIR --test PATH [--ties conservative|standard|median]

Loads ``model.keras`` and ``items.json``, maps the test items through the
model's catalogue (events whose item the model never saw are dropped and
counted), and ranks every next item of every test session against all items,
exactly as training evaluates. It prints the metrics table and one
``name=value;`` line per metric; with the default conservative ties the figures
equal the ``metrics`` that training wrote into metadata.json.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from model_code import artifacts
from model_code.commands.report import metric_lines, metrics_table
from model_code.data.event_rules import ReadOptions, add_trained_read_options, trained_read_options
from model_code.data.event_table import read_events
from model_code.data.events import DataError
from model_code.data.item_index import ItemIndex
from model_code.data.session_batches import SessionArrays
from model_code.gru4rec.params import GRU4RecParams
from model_code.gru4rec.tf_startup import import_keras, load_tensorflow_quietly
from model_code.gru4rec.training_env import use_training_environment
from model_code.ranking.metrics import CUTOFFS, TIE_MODES


def load_model(model_dir: str | Path, show_tensorflow_logs: bool = False):
    """The Keras model of ``model_dir`` and its parameters (from metadata.json)."""
    model_dir = Path(model_dir)
    params = read_params(model_dir)
    keras = import_keras(show_tensorflow_logs)
    load_tensorflow_quietly(show_tensorflow_logs)  # Keras's loading imports it where it is installed

    import model_code.gru4rec.model  # noqa: F401  (registers the GRU4Rec class for deserialisation)

    return keras.saving.load_model(model_dir / artifacts.MODEL_FILE), params


def read_params(model_dir: Path) -> GRU4RecParams:
    """The parameters in metadata.json, once model.keras is known to be there (no TensorFlow needed)."""
    if not model_dir.is_dir():
        raise artifacts.ModelDirError(f"model directory not found: {model_dir}")
    path = model_dir / artifacts.MODEL_FILE
    if not path.is_file():
        raise artifacts.ModelDirError(f"model directory file missing: {path}")
    return GRU4RecParams.from_dict(artifacts.read_metadata(model_dir).get("parameters", {}))


def evaluate_model_dir(
    model_dir: str | Path, test_path: str, ties: str = "conservative", batch_size: int | None = None,
    read: ReadOptions = ReadOptions(), log=lambda message: None, show_tensorflow_logs: bool = False,
) -> dict[str, float]:
    """Recall@k and MRR@k of the saved model on ``test_path``.

    The model directory and the test data are checked before TensorFlow is imported.
    """
    read_params(Path(model_dir))
    return evaluate_events(model_dir, read_events(test_path, read, log), str(test_path), ties, batch_size, log,
                           show_tensorflow_logs, name="test")


def evaluate_events(
    model_dir: str | Path, events, source: str, ties: str = "conservative", batch_size: int | None = None,
    log=lambda message: None, show_tensorflow_logs: bool = False, name: str = "test",
) -> dict[str, float]:
    """Recall@k and MRR@k of the saved model on ``events`` (read from ``source``), as training evaluates.

    Events whose item the model does not know are dropped and counted; DataError when no next-item
    case is left.
    """
    read_params(Path(model_dir))
    index = ItemIndex.load(model_dir)
    test = SessionArrays.from_events(events, index)
    if test.n_examples == 0:
        raise DataError(f"{source}: no {name} session has two events with items known to the model")
    log(f"{name}: {test.n_events} events, {test.sessions_summary()}, {test.n_examples} next-item cases, "
        f"{test.dropped_unknown} events with items unknown to the model dropped")
    model, params = load_model(model_dir, show_tensorflow_logs)
    if len(index) != model.n_items:
        raise artifacts.ModelDirError(
            f"{model_dir}: items.json lists {len(index)} items, the model has {model.n_items}"
        )
    from model_code.gru4rec.trainer import Trainer

    trainer = Trainer(model, params, item_counts=np.ones(len(index), dtype=np.int64), seed=0)
    metrics = trainer.evaluate(test, batch_size=batch_size or params.eval_batch_size, cutoffs=CUTOFFS, ties=ties)
    return {key: float(value) for key, value in metrics.items()}


def _metadata(model_dir: str) -> dict:
    """The model directory's metadata, or none where the directory is missing (evaluation names that)."""
    return artifacts.read_metadata(model_dir) if Path(model_dir).is_dir() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.commands.evaluate",
        description=(
            "Evaluate a trained model directory on test events: every next item of every test session ranked "
            "against all items of the model; prints Recall@k and MRR@k "
            f"(k = {', '.join(map(str, CUTOFFS))}) and one name=value; line per metric."
        ),
        epilog="The reading options default to those the model was trained with (its metadata.json).",
    )
    parser.add_argument("--model-dir", required=True, help="model directory written by model_code.commands.train")
    parser.add_argument(
        "--test", required=True, help="test events: TSV/CSV/Parquet file (gzip or not), folder or s3:// URI"
    )
    parser.add_argument("--ties", choices=TIE_MODES, default="conservative",
                        help="how ties with the target's score count (default: conservative, as training reports)")
    parser.add_argument(
        "--batch-size", type=int, help="test sessions scored side by side (default: the model's eval_batch_size)"
    )
    add_trained_read_options(parser)
    parser.add_argument("--out", help="also write the metrics as JSON to this file")
    parser.add_argument("--tensorflow-logs", action="store_true",
                        help="show TensorFlow's own start-up log lines (default: quietened)")
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            metrics = evaluate_model_dir(
                args.model_dir,
                args.test,
                args.ties,
                args.batch_size,
                trained_read_options(args, _metadata(args.model_dir)),
                log=lambda message: print(message, file=sys.stderr),
                show_tensorflow_logs=args.tensorflow_logs,
            )
    except (DataError, artifacts.ModelDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(metrics_table({"gru4rec": metrics}))
    print(metric_lines(metrics))
    if args.out:
        artifacts.write_json(args.out, metrics)
    return 0


if __name__ == "__main__":
    use_training_environment()
    sys.exit(main())
