"""Training-job hyperparameters: their names, their checks, and the training command line they stand for.

SageMaker hands the ``train`` command its hyperparameters as strings. Each name is one of

- a run option of :mod:`model_code.commands.train`: ``preset``, ``seed``, ``eval_every``, ``valid_days``, ``tuning_job``
  (the SageMaker tuning job whose best settings these are, named in metadata.json);
- a reading option of :mod:`model_code.data.event_rules`: ``session_column``, ``item_column``,
  ``time_column``, ``separator``, ``time_format``, ``max_bad_rows``, ``session_gap``,
  ``event_column``, ``event_types``, ``encoding``;
- a GRU4Rec parameter of :mod:`model_code.gru4rec.params` (``epochs``, ``layers``, ``learning_rate``, ...).

Names are read case-insensitively, with ``-`` or ``_``. Run and reading options become the command-line
option of the same name (``--time-format``), GRU4Rec parameters ``--param name=value``.
:func:`check_hyperparameters` checks every name and value before anything runs, and every problem
reads the same way: ``parameter 'epochs': cannot use 'two'; allowed: an integer >= 1``, or ``unknown
parameter 'learnig_rate' (did you mean 'learning_rate'?)``. It imports only the standard library and
:mod:`model_code.gru4rec.params`, so the operator CLI runs the same checks before it starts a training job.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping

from model_code.data.event_rules import READ_OPTIONS, OptionError
from model_code.gru4rec.params import PARAMETER_NAMES, PRESETS, ParamError, resolve_params

_TUNING_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")


def _non_negative_int(text: str) -> int:
    if not text.strip().isdigit():
        raise OptionError(text, "an integer >= 0")
    return int(text)


def positive_days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = float("nan")
    if not 0 < days < float("inf"):
        raise OptionError(text, "a number of days > 0")
    return days


def tuning_job_name(text: str) -> str:
    """A SageMaker tuning job's name: 1-32 letters, digits and single hyphens inside
    (API_CreateHyperParameterTuningJob)."""
    if not _TUNING_JOB_NAME.fullmatch(text.strip()):
        raise OptionError(text, "a SageMaker tuning job name (1-32 letters, digits and hyphens)")
    return text.strip()


def _preset(text: str) -> str:
    if text.strip().lower() not in PRESETS:
        raise OptionError(text, " | ".join(PRESETS))
    return text.strip().lower()


RUN_OPTIONS: dict[str, Callable[[str], object]] = {
    "preset": _preset,
    "seed": _non_negative_int,
    "eval_every": _non_negative_int,
    "valid_days": positive_days,
    "tuning_job": tuning_job_name,
    **{option.name: option.parse for option in READ_OPTIONS},
}
"""Hyperparameters that are command-line options of ``model_code.commands.train``, with their value checks."""
KNOWN_NAMES = tuple(RUN_OPTIONS) + PARAMETER_NAMES


def normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def check_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, str]:
    """Check every name and value; returns them under their normalised names. Raises ParamError."""
    checked = {}
    for name, value in hyperparameters.items():
        key = normalise(name)
        if key not in KNOWN_NAMES:
            close = difflib.get_close_matches(key, KNOWN_NAMES, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamError(f"unknown parameter {name!r}{hint}; known parameters: {', '.join(KNOWN_NAMES)}")
        if key in RUN_OPTIONS:
            try:
                RUN_OPTIONS[key](str(value))
            except OptionError as err:
                raise ParamError(f"parameter {key!r}: {err}") from None
        checked[key] = str(value)
    model_parameters = {key: value for key, value in checked.items() if key not in RUN_OPTIONS}
    resolve_params(checked.get("preset"), model_parameters)
    return checked


def hyperparameters_argv(hyperparameters: Mapping[str, str]) -> list[str]:
    """The ``model_code.commands.train`` command-line arguments for checked hyperparameters (ParamError when not)."""
    argv: list[str] = []
    for key, value in check_hyperparameters(hyperparameters).items():
        if key in RUN_OPTIONS:
            argv.append(f"--{key.replace('_', '-')}={value}")
        else:
            argv += ["--param", f"{key}={value}"]
    return argv
