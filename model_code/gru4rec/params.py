"""GRU4Rec's training parameters: presets, and overrides parsed from strings.

A run starts from a preset (the best published parameter sets of GRU4Rec)
and overrides any parameter with ``name=value`` strings, which is also how
SageMaker passes hyperparameters (every value a string)::

    params = resolve_params("diginetica", {"epochs": "5", "layers": "256"})

Bad names and values raise :class:`ParamError` with a message that names the
parameter, the allowed values and, for a misspelt name, the closest known one.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOSSES = ("cross-entropy", "bpr-max")
LOGQ_FORMS = ("reference", "sampling")
EMBEDDINGS = ("shared", "separate", "none")
MATMUL_PRECISIONS = ("float32", "bfloat16", "auto")


class ParamError(ValueError):
    """A parameter name or value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class GRU4RecParams:
    """Every knob of a GRU4Rec training run (defaults: the rsc15 preset).

    layers: GRU units per layer, first to last.
    loss: "cross-entropy" (softmax over the sampled candidates) or "bpr-max".
    batch_size: sessions trained side by side (session-parallel mini-batches).
    dropout_embedding / dropout_hidden: dropout on the input embedding / on each GRU layer's output.
    learning_rate, momentum: Adagrad with momentum.
    sample_alpha: extra negatives are drawn in proportion to popularity ** sample_alpha.
    n_sample: extra negatives shared by the whole mini-batch (0: only the batch's own targets).
    bpreg: BPR-max score regularisation; elu: ELU parameter applied to the scores (0: off), bpr-max only.
    logq: weight of the logQ correction of cross-entropy (0: off).
    logq_form: "reference" (the batch's own targets corrected by log(count), the extra negatives by
        alpha * log(count)) or "sampling" (every candidate by alpha * log(count)).
    embedding: "shared" (output item table is also the input embedding), "separate" or "none" (one-hot input).
    embedding_size: width of a separate input embedding (None: the last layer's width).
    epochs: passes over the training data.
    block_steps: mini-batch steps compiled into one call.
    eval_batch_size: test sessions scored side by side during evaluation.
    matmul_precision: the training step's matrix products: "float32", "bfloat16" (inputs rounded to
        bfloat16, float32 sums and results) or "auto" (bfloat16 where the CPU reports ``avx512_bf16``
        or ``amx_bf16``, else float32).
    """

    layers: tuple[int, ...] = (100,)
    loss: str = "cross-entropy"
    batch_size: int = 32
    dropout_embedding: float = 0.0
    dropout_hidden: float = 0.4
    learning_rate: float = 0.2
    momentum: float = 0.2
    sample_alpha: float = 0.5
    n_sample: int = 2048
    bpreg: float = 0.0
    elu: float = 0.0
    logq: float = 1.0
    logq_form: str = "reference"
    embedding: str = "shared"
    embedding_size: int | None = None
    epochs: int = 10
    block_steps: int = 200
    eval_batch_size: int = 512
    matmul_precision: str = "auto"

    def __post_init__(self):
        for field in dataclasses.fields(self):
            _SPECS[field.name].check(getattr(self, field.name))
        if self.embedding_size is not None and self.embedding != "separate":
            raise ParamError(
                f"parameter 'embedding_size' ({self.embedding_size}) applies to embedding=separate only "
                f"(embedding is {self.embedding!r}); leave it unset or set embedding=separate"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (layers as a list)."""
        values = dataclasses.asdict(self)
        values["layers"] = list(self.layers)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GRU4RecParams:
        """The inverse of :meth:`to_dict` (typed values, as read back from JSON)."""
        _check_names(values)
        typed = dict(values)
        if "layers" in typed:
            typed["layers"] = tuple(typed["layers"])
        return cls(**typed)

    def with_strings(self, overrides: Mapping[str, str]) -> GRU4RecParams:
        """A copy with ``overrides`` ({name: value as a string}) parsed and applied."""
        _check_names(overrides)
        parsed = {_normalise(name): _SPECS[_normalise(name)].parse(value) for name, value in overrides.items()}
        return dataclasses.replace(self, **parsed)


@dataclass(frozen=True)
class _Spec:
    """How one parameter is parsed from a string and which values it accepts."""

    name: str
    parse_one: Callable[[str], Any]
    allowed: str
    accepts: Callable[[Any], bool]
    meaning: str = ""

    def parse(self, text: Any) -> Any:
        text = str(text).strip()
        try:
            value = self.parse_one(text)
        except (TypeError, ValueError):
            raise ParamError(f"parameter {self.name!r}: cannot use {text!r}; allowed: {self.allowed}") from None
        self.check(value, shown=text)
        return value

    def check(self, value: Any, shown: Any = None) -> None:
        try:
            ok = self.accepts(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            shown = repr(value) if shown is None else repr(shown)
            raise ParamError(f"parameter {self.name!r}: cannot use {shown}; allowed: {self.allowed}")


def _parse_int(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _parse_layers(text: str) -> tuple[int, ...]:
    return tuple(_parse_int(part) for part in text.strip("()[] ").split(","))


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none", "null") else _parse_int(text)


def _parse_choice(text: str) -> str:
    return text.lower().replace("_", "-")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_spec(name: str, low: int, meaning: str) -> _Spec:
    return _Spec(name, _parse_int, f"an integer >= {low}", lambda v: _is_int(v) and v >= low, meaning)


def _float_spec(name: str, low: float, high: float | None = None, open_high: bool = False, meaning: str = "") -> _Spec:
    if high is None:
        return _Spec(name, float, f"a number >= {low:g}", lambda v: _is_number(v) and v >= low, meaning)
    bracket = ")" if open_high else "]"
    return _Spec(
        name, float, f"a number in [{low:g}, {high:g}{bracket}",
        lambda v: _is_number(v) and low <= v and (v < high if open_high else v <= high), meaning,
    )


def _choice_spec(name: str, choices: tuple[str, ...], meaning: str) -> _Spec:
    return _Spec(name, _parse_choice, " | ".join(choices), lambda v: v in choices, meaning)


_SPECS: dict[str, _Spec] = {
    spec.name: spec
    for spec in (
        _Spec(
            "layers", _parse_layers, "comma-separated GRU layer widths, each an integer >= 1 (e.g. 100 or 100,100)",
            lambda v: isinstance(v, tuple) and len(v) >= 1 and all(_is_int(n) and n >= 1 for n in v),
            "GRU units per layer, first to last",
        ),
        _choice_spec("loss", LOSSES, "cross-entropy (softmax over the sampled candidates) or bpr-max"),
        _int_spec("batch_size", 1, "sessions trained side by side (session-parallel mini-batches)"),
        _float_spec("dropout_embedding", 0.0, 1.0, open_high=True, meaning="dropout on the input embedding"),
        _float_spec("dropout_hidden", 0.0, 1.0, open_high=True, meaning="dropout on each GRU layer's output"),
        _Spec("learning_rate", float, "a number > 0", lambda v: _is_number(v) and v > 0, "Adagrad's learning rate"),
        _float_spec("momentum", 0.0, 1.0, open_high=True, meaning="Adagrad's momentum"),
        _float_spec("sample_alpha", 0.0, 1.0, meaning="extra negatives are drawn by popularity ** sample_alpha"),
        _int_spec("n_sample", 0, "extra negatives shared by the mini-batch (0: only the batch's own targets)"),
        _float_spec("bpreg", 0.0, meaning="BPR-max score regularisation (bpr-max only)"),
        _float_spec("elu", 0.0, meaning="ELU parameter applied to the scores, 0: off (bpr-max only)"),
        _float_spec("logq", 0.0, meaning="weight of cross-entropy's logQ correction (0: off)"),
        _choice_spec("logq_form", LOGQ_FORMS, "which candidates the logQ correction applies to (see GRU4RecParams)"),
        _choice_spec("embedding", EMBEDDINGS, "input: the output item table (shared), a table of its own, or one-hot"),
        _Spec(
            "embedding_size", _parse_optional_int, "an integer >= 1, or none (the last layer's width)",
            lambda v: v is None or (_is_int(v) and v >= 1), "width of a separate input embedding",
        ),
        _int_spec("epochs", 1, "passes over the training data"),
        _int_spec("block_steps", 1, "mini-batch steps compiled into one call"),
        _int_spec("eval_batch_size", 1, "sessions scored side by side during evaluation"),
        _choice_spec("matmul_precision", MATMUL_PRECISIONS,
                     "the training step's matrix products (auto: bfloat16 where the CPU has avx512_bf16 or amx_bf16)"),
    )
}
PARAMETER_NAMES = tuple(_SPECS)

PRESETS: dict[str, GRU4RecParams] = {
    "rsc15": GRU4RecParams(
        layers=(100,), loss="cross-entropy", batch_size=32, dropout_embedding=0.0, dropout_hidden=0.4,
        learning_rate=0.2, momentum=0.2, sample_alpha=0.5, bpreg=0.0, elu=0.0, logq=1.0,
    ),
    "yoochoose": GRU4RecParams(
        layers=(480,), loss="cross-entropy", batch_size=48, dropout_embedding=0.0, dropout_hidden=0.2,
        learning_rate=0.07, momentum=0.0, sample_alpha=0.2, bpreg=0.0, elu=0.0, logq=1.0,
    ),
    "retailrocket": GRU4RecParams(
        layers=(224,), loss="bpr-max", batch_size=80, dropout_embedding=0.5, dropout_hidden=0.05,
        learning_rate=0.05, momentum=0.4, sample_alpha=0.4, bpreg=1.95, elu=0.5, logq=0.0,
    ),
    "diginetica": GRU4RecParams(
        layers=(512,), loss="bpr-max", batch_size=128, dropout_embedding=0.5, dropout_hidden=0.3,
        learning_rate=0.05, momentum=0.15, sample_alpha=0.3, bpreg=0.9, elu=1.0, logq=0.0,
    ),
}
DEFAULT_PRESET = "rsc15"


def parameter_help(preset: str = DEFAULT_PRESET) -> str:
    """One block per parameter of the table above: its meaning, the preset's default, the values allowed."""
    defaults = PRESETS[preset].to_dict()
    return "\n".join(f"  {name}={_shown(defaults[name])}\n      {spec.meaning}; allowed: {spec.allowed}"
                     for name, spec in _SPECS.items())


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def _check_names(values: Iterable[str]) -> None:
    for name in values:
        if _normalise(name) not in _SPECS:
            close = difflib.get_close_matches(_normalise(name), PARAMETER_NAMES, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ParamError(f"unknown parameter {name!r}{hint}; known parameters: {', '.join(PARAMETER_NAMES)}")


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """``["name=value", ...]`` -> ``{name: value}``; a later assignment of a name wins."""
    parsed = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name.strip():
            raise ParamError(f"parameter override {assignment!r} is not of the form name=value")
        parsed[name.strip()] = value
    return parsed


def resolve_params(preset: str | None = None, overrides: Mapping[str, str] | None = None) -> GRU4RecParams:
    """The preset's parameters (default: rsc15) with ``overrides`` ({name: string value}) applied."""
    name = DEFAULT_PRESET if preset in (None, "") else str(preset).strip().lower()
    if name not in PRESETS:
        raise ParamError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name].with_strings(overrides or {})


PARAMS_KEY = "parameters"
PROVENANCE_KEY = "provenance"


def write_params_file(path: str | os.PathLike, params: GRU4RecParams, provenance: Mapping[str, Any]) -> None:
    """Write ``{"parameters": ..., "provenance": ...}`` as JSON, the form :func:`read_params_file` reads."""
    text = json.dumps({PARAMS_KEY: params.to_dict(), PROVENANCE_KEY: dict(provenance)}, indent=2) + "\n"
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def read_params_file(path: str | os.PathLike) -> tuple[GRU4RecParams, dict | None]:
    """(parameters, provenance or None) of a parameter file.

    The file is a JSON object: either ``{"parameters": {name: value}, "provenance": {...}}`` (what
    ``model_code.commands.tune`` writes) or ``{name: value}`` alone. Parameters it leaves out take the rsc15
    preset's values; each value is checked by the same table as ``--param`` (typed: a number, a list of
    layer widths), and a bad one raises :class:`ParamError` naming the file and the parameter.
    """
    try:
        document = json.loads(Path(path).read_text())
    except OSError as err:
        raise ParamError(f"parameter file {path}: cannot read it ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ParamError(f"parameter file {path}: not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise ParamError(f"parameter file {path}: expected a JSON object of parameters")
    values = document.get(PARAMS_KEY, document)
    provenance = document.get(PROVENANCE_KEY) if PARAMS_KEY in document else None
    if not isinstance(values, dict) or not (provenance is None or isinstance(provenance, dict)):
        raise ParamError(f"parameter file {path}: '{PARAMS_KEY}' and '{PROVENANCE_KEY}' must be JSON objects")
    try:
        return GRU4RecParams.from_dict(values), provenance
    except ParamError as err:
        raise ParamError(f"parameter file {path}: {err}") from None
    except TypeError:
        raise ParamError(f"parameter file {path}: parameter 'layers' must be a list of widths") from None
