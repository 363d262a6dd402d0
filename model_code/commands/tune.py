"""Tune GRU4Rec's parameters on a shop's own data: an Optuna (TPE) study on the validation split.

Command line::

    python -m model_code.commands.tune --train PATH (--valid PATH | --valid-days N) [--test PATH]
        [--space xe|bpr-max|FILE.json] [--trials N] [--time-budget 2h] [--metric recall@20|mrr@20]
        [--study-dir DIR] [--epochs N] [--start-from PRESET|FILE ...] [--seed S] [reading options]

Every trial is one :func:`model_code.commands.training_run.train_model` run on the training events, measured on the
validation sessions after every epoch; the figure of each epoch is reported to the study, and the
median pruner stops a trial whose figure falls below the median of the earlier trials at the same
epoch (after ``--prune-after`` finished trials). The study lives in ``DIR/study.db`` (SQLite): a rerun
with the same data and metric continues it (``--trials`` counts the study's finished trials; a trial
a killed run left unfinished is marked failed). The test set is not read during the search.

At the end ``DIR`` holds ``best_params.json`` (for ``python -m model_code.commands.train --params``, with the
study's provenance), ``trials.csv`` and ``search.png``; with ``--test`` the best settings are trained
on training plus validation events and scored once on the test set (model in ``DIR/model``).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from model_code.commands.tuning_space import BUILT_IN, TuningSpace, as_text, load_space
from model_code.data.event_rules import OptionError, add_read_options, read_options
from model_code.gru4rec.params import PRESETS, ParamError, read_params_file, write_params_file
from model_code.gru4rec.training_env import use_training_environment

METRICS = ("recall@20", "mrr@20")
STUDY_FILE, BEST_FILE, TRIALS_FILE, PLOT_FILE = "study.db", "best_params.json", "trials.csv", "search.png"
SETUP_ATTR = "setup"
DEFAULT_TRIALS = 20
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``45m``, ``2h`` -> seconds."""
    match = DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"cannot use {text!r}; allowed: a duration > 0 such as 90s, 45m or 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def code_version() -> str:
    """The git commit of this code where it is a checkout, else a hash of the model_code sources."""
    package = Path(__file__).resolve().parents[1]
    root = package.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "model_code"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"git:{commit}{'+modified' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        digest = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            digest.update(path.read_bytes())
        return f"sha256:{digest.hexdigest()[:16]}"


def _setup(args: argparse.Namespace, space: TuningSpace) -> dict:
    """What a study is bound to: a rerun on other data, window or metric would mix incomparable figures."""
    return {"train": str(args.train), "valid": args.valid, "valid_days": args.valid_days, "metric": args.metric,
            "space": space.source, "epochs": args.epochs}


def open_study(args: argparse.Namespace, space: TuningSpace, log):
    """The study in ``--study-dir`` (created, or continued where its setup matches); unfinished trials marked failed."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_dir = Path(args.study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(study_dir / STUDY_FILE).resolve()}")
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=args.prune_after, n_warmup_steps=0)
              if args.prune_after > 0 else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=args.study_name, storage=storage, direction="maximize",
                                load_if_exists=True, pruner=pruner)
    setup = _setup(args, space)
    known = study.user_attrs.get(SETUP_ATTR)
    if known is None:
        study.set_user_attr(SETUP_ATTR, setup)
    elif known != setup:
        changed = ", ".join(
            f"{key} {known.get(key)!r} -> {setup[key]!r}" for key in setup if known.get(key) != setup[key]
        )
        raise ParamError(f"--study-dir {study_dir}: its study was run with other settings ({changed}); "
                         "give another --study-dir to start a new study")
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        log(f"trial {trial.number + 1} was left unfinished by an earlier run: marked failed")
    # A seeded sampler restarted with the same seed would propose the earlier trials' random settings again.
    study.sampler = optuna.samplers.TPESampler(seed=args.seed + len(study.trials))
    return study


def finished(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def enqueue_starts(study, space: TuningSpace, starts: list[str]) -> None:
    """Queue each ``--start-from`` preset or parameter file as a trial (its values of the searched parameters)."""
    for start in starts:
        params = PRESETS[start] if start in PRESETS else read_params_file(start)[0]
        values = {dim.name: as_text(getattr(params, dim.name)) if dim.choices is not None else getattr(params, dim.name)
                  for dim in space.dimensions}
        study.enqueue_trial(values, skip_if_exists=True)


def make_objective(args: argparse.Namespace, space: TuningSpace, epochs: int):
    """The study's objective: one training run on the validation split, pruned on its per-epoch figure."""
    import optuna

    from model_code.commands.report import VALIDATION_KEY
    from model_code.commands.training_run import TrainingRun, train_model

    template = TrainingRun(train_path=args.train, valid_path=args.valid, valid_days=args.valid_days, seed=args.seed,
                           read=read_options(args), export=False, progress=False, log=lambda message: None,
                           save_model=False)

    def objective(trial) -> float:
        params = space.suggest(trial, epochs)

        def report(epoch: int, record: dict) -> None:
            trial.set_user_attr("epochs_run", epoch)
            if VALIDATION_KEY in record:
                trial.report(record[VALIDATION_KEY][args.metric], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        metadata = train_model(params, dataclasses.replace(template, epoch_callback=report))
        trial.set_user_attr("data", json.loads(json.dumps(metadata["data"], default=str)))
        return metadata["validation_metrics"][args.metric]

    return objective


class Progress:
    """One line per finished trial: its settings, validation figure, pruned or not, best so far, ETA."""

    def __init__(self, metric: str, target: int | None, budget: float | None, log):
        self.metric, self.target, self.budget, self.log = metric, target, budget, log
        self.started = time.monotonic()
        self.done = 0

    def __call__(self, study, trial) -> None:
        self.done += 1
        values = trial.intermediate_values
        value = trial.value if trial.value is not None else (values[max(values)] if values else None)
        state = trial.state.name.lower()
        if state == "pruned":
            state = f"pruned after epoch {trial.user_attrs.get('epochs_run', '?')}"
        figure = "-" if value is None else f"{value:.4f}"
        try:
            best = f"{study.best_value:.4f} (trial {study.best_trial.number + 1})"
        except ValueError:
            best = "none yet"
        total = f"/{self.target}" if self.target else ""
        settings = ", ".join(f"{name}={_short(v)}" for name, v in trial.params.items())
        self.log(f"trial {len(finished(study))}{total}: {self.metric} {figure} [{state}], best {best}, "
                 f"{_seconds(trial)} s, ETA {self.eta(study)}; {settings}")

    def eta(self, study) -> str:
        elapsed = time.monotonic() - self.started
        left = []
        if self.target:
            left.append(elapsed / self.done * max(self.target - len(finished(study)), 0))
        if self.budget:
            left.append(max(self.budget - elapsed, 0.0))
        return f"{min(left) / 60:.1f} min" if left else "?"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _seconds(trial) -> str:
    if trial.datetime_start and trial.datetime_complete:
        return f"{(trial.datetime_complete - trial.datetime_start).total_seconds():.1f}"
    return "?"


def write_trials_table(study, path: Path) -> None:
    """trials.csv: number, state, value, epochs run, seconds and every searched parameter."""
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    frame = frame.drop(columns=[c for c in frame.columns if c == "user_attrs_data"])
    frame["number"] += 1
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds().round(2)
    frame.to_csv(path, index=False)


def provenance(args: argparse.Namespace, study, best) -> dict:
    """Where the best settings come from: study, data and window, metric and figure, code version."""
    return {
        "study": {"name": study.study_name, "storage": str((Path(args.study_dir) / STUDY_FILE).resolve()),
                  "best_trial": best.number + 1, "finished_trials": len(finished(study)), "space": args.space},
        "data": best.user_attrs.get("data", {}),
        "window": {"valid": args.valid, "valid_days": args.valid_days},
        "metric": args.metric,
        "validation_value": best.value,
        "code_version": code_version(),
    }


def train_and_valid(args: argparse.Namespace) -> str:
    """The events the final model trains on: --train with --valid-days (the split is not made), or a folder
    linking the --train and --valid files (local files only)."""
    if args.valid is None:
        return args.train
    files = [Path(args.train), Path(args.valid)]
    if not all(path.is_file() for path in files):
        raise ParamError("--test with --valid trains the final model on both files: give local files, "
                         "or use --valid-days")
    folder = Path(args.study_dir) / "train+valid"
    folder.mkdir(exist_ok=True)
    for order, path in enumerate(files):
        link = folder / f"{order}-{path.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
    return str(folder)


def final_run(args: argparse.Namespace, best_file: Path, log=_log) -> dict:
    """The best settings trained on training plus validation events, scored once on the test set."""
    from model_code.commands.training_run import TrainingRun, train_model

    params, origin = read_params_file(best_file)
    run = TrainingRun(
        train_path=train_and_valid(args),
        test_path=args.test,
        model_dir=str(Path(args.study_dir) / "model"),
        seed=args.seed,
        read=read_options(args),
        export=not args.no_export,
        progress=False,
        log=log,
        provenance=origin,
    )
    return train_model(params, run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.commands.tune",
        description="Search GRU4Rec's parameters on the validation split (Optuna TPE, median pruning on the "
                    "per-epoch validation figure); write best_params.json for model_code.commands.train --params, "
                    "trials.csv and search.png to --study-dir.")
    parser.add_argument("--train", required=True, help="training events: file, folder or s3:// URI")
    validation = parser.add_mutually_exclusive_group(required=True)
    validation.add_argument("--valid", help="validation events: the figure the study maximises")
    validation.add_argument("--valid-days", type=_days, metavar="N",
                            help="validation = the sessions starting in the last N days of --train")
    parser.add_argument("--test", help="test events: after the search, the best settings are trained on "
                                       "train+valid and scored once on them (never read during the search)")
    parser.add_argument("--space", default="xe", help=f"{' | '.join(BUILT_IN)} | FILE.json (default: xe)")
    parser.add_argument("--trials", type=_positive_int, help="finished trials the study should have "
                                                             f"(default: {DEFAULT_TRIALS} without --time-budget)")
    parser.add_argument("--time-budget", type=parse_duration, metavar="DURATION",
                        help="stop starting trials after this long, e.g. 45m or 2h")
    parser.add_argument("--metric", choices=METRICS, default="recall@20", help="the validation figure maximised")
    parser.add_argument("--study-dir", default="tuning", help="SQLite study and results (default: ./tuning)")
    parser.add_argument("--study-name", default="gru4rec", help="study name inside study.db (default: gru4rec)")
    parser.add_argument("--epochs", type=_positive_int, help="epochs per trial (default: the space's base preset's)")
    parser.add_argument("--prune-after", type=int, default=5, metavar="N",
                        help="prune only once N trials have finished (0: no pruning; default: 5)")
    parser.add_argument("--start-from", action="append", default=[], metavar="PRESET|FILE",
                        help="queue a preset's or a parameter file's values as the next trial (repeatable)")
    parser.add_argument("--seed", type=int, default=42, help="seed of every trial's training and of the sampler")
    parser.add_argument("--no-export", action="store_true", help="final model (--test) without scorer.onnx")
    add_read_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"cannot use {text!r}; allowed: an integer >= 1")
    return int(text)


def _days(text: str) -> float:
    from model_code.gru4rec import hyperparameters

    try:
        return hyperparameters.positive_days(text)
    except OptionError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def tune(args: argparse.Namespace, log=_log) -> Path:
    """Run (or continue) the study and write its results; returns the best parameter file's path."""
    from model_code.commands.tune_plots import plot_search
    from model_code.data.events import DataError

    space = load_space(args.space)
    args.epochs = args.epochs or space.base.epochs
    for start in args.start_from:
        if start not in PRESETS:
            read_params_file(start)
    study = open_study(args, space, log)
    enqueue_starts(study, space, args.start_from)
    target = args.trials or (None if args.time_budget else DEFAULT_TRIALS)
    remaining = None if target is None else max(target - len(finished(study)), 0)
    if remaining != 0:
        log(f"study {study.study_name} in {args.study_dir}: {len(finished(study))} trials finished, "
            f"{'up to ' + str(remaining) if remaining else 'more'} to run, {args.metric} on the validation split")
        study.optimize(make_objective(args, space, args.epochs), n_trials=remaining, timeout=args.time_budget,
                       catch=(ParamError,), callbacks=[Progress(args.metric, target, args.time_budget, log)])
    try:
        best = study.best_trial
    except ValueError:
        raise DataError(f"study in {args.study_dir}: no trial finished; nothing to report") from None
    study_dir = Path(args.study_dir)
    write_trials_table(study, study_dir / TRIALS_FILE)
    plot_search(study, study_dir / PLOT_FILE, args.metric)
    best_file = study_dir / BEST_FILE
    write_params_file(best_file, space.params(best.params, args.epochs), provenance(args, study, best))
    log(f"best: trial {best.number + 1}, validation {args.metric} {best.value:.4f}; settings in {best_file}")
    return best_file


def main(argv: list[str] | None = None) -> int:
    from model_code.commands.report import metric_lines
    from model_code.commands.train import INPUT_ERRORS

    args = build_parser().parse_args(argv)
    log = (lambda message: None) if args.quiet else _log
    try:
        best_file = tune(args, log)
        if args.test:
            metadata = final_run(args, best_file, log)
            print(metric_lines(metadata["metrics"]))
    except INPUT_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"best_params={best_file}")
    return 0


if __name__ == "__main__":
    use_training_environment()
    sys.exit(main())
