"""Train GRU4Rec on an event log and write the model directory.

Command line::

    python -m model_code.commands.train --train PATH [--test PATH] [--valid PATH | --valid-days N]
        [--preset rsc15|yoochoose|retailrocket|diginetica | --params FILE] [--param name=value ...] [--epochs N] [--seed
        S] [--model-dir DIR] [--checkpoint-dir DIR]

The command trains on Keras's JAX backend with glibc's large allocations on
huge pages, whatever the caller's environment says (:mod:`model_code.gru4rec.training_env`:
the process re-executes itself once with both set).

The run itself is :mod:`model_code.commands.training_run`; what it reads,
:mod:`model_code.commands.training_data`; writing the model directory, :mod:`model_code.commands.publish`.
"""
from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
import warnings
from pathlib import Path

from model_code import artifacts
from model_code.commands.checkpoints import CheckpointError
from model_code.commands.report import (
    CHAMPION_KEY,
    CHAMPION_PREFIX,
    VALIDATION_KEY,
    VALIDATION_PREFIX,
    metric_lines,
    metrics_table,
)
from model_code.commands.training_run import TrainingRun, log_to_stderr, train_model
from model_code.data.event_rules import OptionError, add_read_options, read_options
from model_code.data.events import DataError
from model_code.gru4rec import hyperparameters
from model_code.gru4rec.params import (
    DEFAULT_PRESET,
    PRESETS,
    ParamError,
    parameter_help,
    parse_assignments,
    read_params_file,
    resolve_params,
)
from model_code.gru4rec.training_env import use_training_environment


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
        prog="python -m model_code.commands.train",
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
    parser.add_argument(
        "--train", required=True, help="training events: TSV/CSV/Parquet file (gzip or not), folder or s3:// URI"
    )
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
    start.add_argument(
        "--params",
        metavar="FILE",
        help="a parameter file (JSON, e.g. best_params.json of python -m model_code.commands.tune) to start "
        "from instead of a preset; its provenance is kept in metadata.json under tuning",
    )
    parser.add_argument("--tuning-job", type=_tuning_job, metavar="NAME",
                        help="the SageMaker tuning job whose best settings these parameters are: kept in "
                             "metadata.json under tuning.sagemaker_tuning_job")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override one parameter of the preset (repeatable), e.g. --param layers=100,100")
    parser.add_argument("--epochs", type=int, help="passes over the training data (default: the preset's, 10)")
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed: the same seed on the same CPU gives the same model (default: 42)",
    )
    parser.add_argument("--model-dir", default="model", help="where to write the model directory (default: ./model)")
    parser.add_argument(
        "--checkpoint-dir", help="save a checkpoint here after every epoch, and resume from it if one matches this run"
    )
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


INPUT_ERRORS = (ParamError, DataError, CheckpointError, artifacts.ModelDirError)


def run_command(args: argparse.Namespace) -> dict:
    """Train as the parsed command line says; returns the metadata written.

    Bad parameters, data, checkpoints or model directories raise one of :data:`INPUT_ERRORS`.
    """
    log = (lambda message: None) if args.quiet else log_to_stderr
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
        raise ParamError(
            "--champion-dir: the champion is scored on the validation sessions: give --valid or --valid-days"
        )
    if args.champion_dir:
        from model_code.commands.evaluate import read_params

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
