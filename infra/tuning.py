"""SageMaker Automatic Model Tuning over a tuning space file: the parts of a CreateHyperParameterTuningJob
request that the operator CLI and the training pipeline share (no CDK import).

The space is the local tuner's (:mod:`model_code.commands.tuning_space`): ``choices`` become categorical ranges,
``low``..``high`` an integer or continuous range, linear or (``log``) logarithmic. SageMaker's ranges have no
step: a ``step`` of the local grid is dropped, and SageMaker draws any value between the bounds, which the
parameter table has checked at load time. The objective is the validation Recall@20 line the training image
prints, the metric the quality gate reads.
"""
from __future__ import annotations

from datetime import UTC, datetime

from infra.layout import tuning_job_prefix
from model_code.commands.report import VALIDATION_PREFIX
from model_code.commands.tuning_space import Dimension, TuningSpace

OBJECTIVE_METRIC = VALIDATION_PREFIX + "recall@20"
STRATEGY = "Bayesian"
# SageMaker stops a training job whose objective is unlikely to beat the best so far ("Auto")
EARLY_STOPPING = "Auto"
WINDOW_KEYS = ("window_start", "window_end")
# "You can specify a maximum of 30 hyperparameters" (all ranges together); a categorical range holds at most 30
# values; logarithmic scaling "works only for ranges that have values greater than 0":
# https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-define-ranges.html
MAX_TUNED_PARAMETERS = 30
MAX_CATEGORICAL_VALUES = 30
# "A warm start tuning job can have a maximum of 5 parent jobs"; TransferLearning accepts a changed data set:
# https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-warm-start.html
MAX_WARM_START_PARENTS = 5
WARM_START_TYPE = "TransferLearning"
# ResourceLimits.MaxRuntimeInSeconds: 120 to 15768000 (API_ResourceLimits, botocore's model)
MAX_RUNTIME_SECONDS = (120, 15_768_000)
# HyperParameterTuningJobName: at most 32 characters (botocore's model); tune-<stage of <= 16>-YYMMDDHHMM is 32
NAME_TIME_FORMAT = "%y%m%d%H%M"


class TuningError(ValueError):
    """A tuning request SageMaker would refuse; the message names the setting."""


def tuning_job_name(stage: str, now: datetime | None = None) -> str:
    """``tune-dev-2612071345``: the stage and the UTC minute it was started."""
    return tuning_job_prefix(stage) + (now or datetime.now(UTC)).astimezone(UTC).strftime(NAME_TIME_FORMAT)


def parameter_ranges(space: TuningSpace) -> dict[str, list[dict]]:
    """The space's searched dimensions as SageMaker's ``ParameterRanges``."""
    if len(space.dimensions) > MAX_TUNED_PARAMETERS:
        raise TuningError(f"{space.source}: {len(space.dimensions)} searched parameters; SageMaker tunes at most "
                          f"{MAX_TUNED_PARAMETERS}")
    ranges: dict[str, list[dict]] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                                     "CategoricalParameterRanges": []}
    for dimension in space.dimensions:
        kind, entry = _range(space.source, dimension)
        ranges[kind].append(entry)
    return ranges


def _range(source: str, dimension: Dimension) -> tuple[str, dict]:
    if dimension.choices is not None:
        if len(dimension.choices) > MAX_CATEGORICAL_VALUES:
            raise TuningError(f"{source}: search entry {dimension.name!r} has {len(dimension.choices)} choices; "
                              f"SageMaker takes at most {MAX_CATEGORICAL_VALUES}")
        return "CategoricalParameterRanges", {"Name": dimension.name, "Values": list(dimension.choices)}
    if dimension.log and dimension.low <= 0:
        raise TuningError(f"{source}: search entry {dimension.name!r}: a logarithmic range needs low > 0")
    kind = "IntegerParameterRanges" if dimension.integer else "ContinuousParameterRanges"
    bound = int if dimension.integer else float
    return kind, {"Name": dimension.name, "MinValue": str(bound(dimension.low)), "MaxValue": str(bound(dimension.high)),
                  "ScalingType": "Logarithmic" if dimension.log else "Linear"}


def static_hyperparameters(space: TuningSpace, defaults: dict[str, str], window: dict[str, str]) -> dict[str, str]:
    """What every training job of the tuning job gets: the stage's defaults, the space's preset and fixed values,
    the data window; never a searched name (SageMaker refuses a name both static and tuned)."""
    searched = {dimension.name for dimension in space.dimensions}
    merged = {**defaults, "preset": space.preset, **space.fixed, **window}
    return {name: value for name, value in merged.items() if name not in searched}


def tuning_job_config(space: TuningSpace, trials: int, parallel: int, max_runtime_seconds: int | None) -> dict:
    """``HyperParameterTuningJobConfig``: Bayesian search maximising validation Recall@20, early stopping on."""
    if trials < 1 or parallel < 1:
        raise TuningError(f"--trials ({trials}) and --parallel ({parallel}) must be at least 1")
    if parallel > trials:
        raise TuningError(f"--parallel ({parallel}) is more than --trials ({trials})")
    limits = {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": parallel}
    if max_runtime_seconds is not None and not MAX_RUNTIME_SECONDS[0] <= max_runtime_seconds <= MAX_RUNTIME_SECONDS[1]:
        raise TuningError(f"--max-runtime ({max_runtime_seconds} s) must be from {MAX_RUNTIME_SECONDS[0]} s to "
                          f"{MAX_RUNTIME_SECONDS[1]} s (182.5 days)")
    if max_runtime_seconds is not None:
        limits["MaxRuntimeInSeconds"] = max_runtime_seconds
    return {
        "Strategy": STRATEGY,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": OBJECTIVE_METRIC},
        "ResourceLimits": limits,
        "ParameterRanges": parameter_ranges(space),
        "TrainingJobEarlyStoppingType": EARLY_STOPPING,
    }


def check_objective_reported(metric_definitions: list[dict], defaults: dict[str, str]) -> None:
    """The objective must be a metric the jobs report: declared, and printed (only with a validation split)."""
    if not any(metric.get("Name") == OBJECTIVE_METRIC for metric in metric_definitions):
        raise TuningError(f"the training job's metric definitions declare no {OBJECTIVE_METRIC}")
    if float(defaults.get("valid_days", "0") or 0) <= 0:
        raise TuningError(f"tuning maximises {OBJECTIVE_METRIC}, which needs a validation split: the stage's "
                          "valid_days is 0 (set the context key valid_days)")


def best_settings(described: dict, stage_defaults: dict[str, str]) -> dict[str, str]:
    """The settings of a finished tuning job's best training job: the searched values it was given, and the static
    ones that differ from the stage's own defaults (the space's preset and fixed values), without the data window
    and the names SageMaker adds (``_tuning_objective_metric``)."""
    best = described.get("BestTrainingJob")
    if described.get("HyperParameterTuningJobStatus") != "Completed" or not best:
        raise TuningError(f"tuning job {described.get('HyperParameterTuningJobName')} is "
                          f"{described.get('HyperParameterTuningJobStatus')} with "
                          f"{'a' if best else 'no'} best training job: only a Completed one can be applied")
    static = (described.get("TrainingJobDefinition") or {}).get("StaticHyperParameters", {})
    kept = {
        name: value
        for name, value in static.items()
        if name not in (*WINDOW_KEYS, "valid_days") and not name.startswith("_") and stage_defaults.get(name) != value
    }
    return {**kept, **best["TunedHyperParameters"]}
