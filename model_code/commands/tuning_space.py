"""A tuning study's parameter space, read from an editable JSON file.

The file names a preset to start from, parameters held fixed, and the ones searched::

    {"base": "rsc15",
     "fixed": {"loss": "cross-entropy"},
     "search": {"layers": {"choices": ["64", "128", "100,100"]},
                "batch_size": {"low": 32, "high": 256, "step": 16},
                "learning_rate": {"low": 0.01, "high": 0.5, "log": true}}}

A searched parameter has either ``choices`` (categorical; layer widths as "w1,w2" strings) or
``low`` and ``high`` (and ``step`` or ``log``): integer parameters are drawn as integers, the others
as floats. Every bound, choice and fixed value is checked at load time by the one parameter table of
:mod:`model_code.gru4rec.params`, so a space that could propose an invalid setting is refused before a trial runs.
Built-in spaces: ``xe`` and ``bpr-max`` (``model_code/commands/tuning_spaces/``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_code.gru4rec.params import PRESETS, GRU4RecParams, ParamError

SPACES_DIR = Path(__file__).with_name("tuning_spaces")
BUILT_IN = {"xe": SPACES_DIR / "xe.json", "bpr-max": SPACES_DIR / "bpr-max.json"}
RANGE_KEYS = {"low", "high", "step", "log"}


def as_text(value: Any) -> str:
    """A JSON value as the ``name=value`` string the parameter table parses (lists: comma-separated)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(part) for part in value)
    return str(value)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: categorical ``choices``, or a ``low``..``high`` range (``step`` or ``log``)."""

    name: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False

    def suggest(self, trial) -> Any:
        """This dimension's value for an Optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class TuningSpace:
    """Base preset (its name and its parameters with the fixed values), fixed values (as strings) and searched
    dimensions."""

    source: str
    preset: str
    base: GRU4RecParams
    fixed: dict[str, str]
    dimensions: tuple[Dimension, ...]

    def params(self, values: dict[str, Any], epochs: int | None = None) -> GRU4RecParams:
        """The full parameter set of one trial's ``values`` ({name: value}) on top of base and fixed."""
        overrides = {**self.fixed, **{name: as_text(value) for name, value in values.items()}}
        if epochs is not None:
            overrides["epochs"] = str(epochs)
        return self.base.with_strings(overrides)

    def suggest(self, trial, epochs: int | None = None) -> GRU4RecParams:
        return self.params({dim.name: dim.suggest(trial) for dim in self.dimensions}, epochs)


def load_space(name_or_path: str) -> TuningSpace:
    """A built-in space (``xe``, ``bpr-max``) or a JSON file; a bad file raises :class:`ParamError` saying what."""
    path = BUILT_IN.get(name_or_path, Path(name_or_path))
    try:
        document = json.loads(path.read_text())
    except OSError as err:
        raise ParamError(f"--space {name_or_path}: not a built-in space ({', '.join(BUILT_IN)}) "
                         f"and not a readable file ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise ParamError(f"--space {path}: not valid JSON ({err})") from None
    try:
        return _parse(str(path), document)
    except ParamError as err:
        raise ParamError(f"--space {path}: {err}") from None


def _parse(source: str, document: Any) -> TuningSpace:
    if not isinstance(document, dict) or not isinstance(document.get("search"), dict) or not document["search"]:
        raise ParamError("expected a JSON object with a non-empty 'search' object")
    base_name = document.get("base", "rsc15")
    if base_name not in PRESETS:
        raise ParamError(f"base {base_name!r} is not a preset; known presets: {', '.join(PRESETS)}")
    base = PRESETS[base_name]
    fixed = {name: as_text(value) for name, value in (document.get("fixed") or {}).items()}
    base = base.with_strings(fixed)
    overlap = set(fixed) & set(document["search"])
    if overlap:
        raise ParamError(f"{', '.join(sorted(overlap))}: both fixed and searched")
    dimensions = tuple(_dimension(base, name, spec) for name, spec in document["search"].items())
    return TuningSpace(source, base_name, base, fixed, dimensions)


def _dimension(base: GRU4RecParams, name: str, spec: Any) -> Dimension:
    """One searched parameter, each of its bounds or choices checked by the parameter table."""
    if not isinstance(spec, dict):
        raise ParamError(f"search entry {name!r} must be an object with 'choices' or 'low' and 'high'")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ParamError(f"search entry {name!r}: 'choices' must be a non-empty list, alone")
        texts = tuple(as_text(choice) for choice in choices)
        for text in texts:
            base.with_strings({name: text})
        return Dimension(name, choices=texts)
    if not {"low", "high"} <= set(spec) <= RANGE_KEYS:
        raise ParamError(f"search entry {name!r}: give 'choices', or 'low' and 'high' (with 'step' or 'log')")
    for bound in ("low", "high"):
        base.with_strings({name: as_text(spec[bound])})
    if name == "layers" or not isinstance(getattr(base, name), (int, float)):
        raise ParamError(f"search entry {name!r}: a range needs a numeric parameter; use 'choices'")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), bool(spec.get("log", False))
    if not low < high:
        raise ParamError(f"search entry {name!r}: low ({low}) must be below high ({high})")
    if step is not None and (log or not isinstance(step, (int, float)) or step <= 0):
        raise ParamError(f"search entry {name!r}: 'step' must be a number > 0, and not with 'log'")
    integer = isinstance(getattr(base, name), int)
    return Dimension(name, low=low, high=high, step=step, log=log, integer=integer)
