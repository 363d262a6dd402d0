"""Tuning on SageMaker: start a hyperparameter tuning job over a space file, list a stage's tuning jobs, and make
a finished one's best settings the stage's training parameters.

The request is written with boto3, not the SageMaker Python SDK's ``HyperparameterTuner`` (3.x): the SDK builds
the training job definition's ``ResourceConfig`` from the instance type, count and volume size only, and sets no
``EnableNetworkIsolation``, so the tuning job's training jobs would lose the volume KMS key and the network
isolation the stage's training jobs have. Each training job of a tuning job gets what a one-off job gets (the state
machine's image, role, instance, KMS keys, metric definitions, default hyperparameters, the stage's data window),
except Spot: a tuning job's one ``CheckpointConfig`` would be shared by training jobs running side by side, so they
run on demand.

Applied settings go to the SSM parameter ``/gru4rec/<stage>/tuned-hyperparameters`` (JSON: the hyperparameters,
``tuning_job`` among them), which the training state machine reads at the start of every execution: the stage's
``training_hyperparameters`` setting lives in the state machine's definition and would take a ``cdk deploy``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from infra.layout import (
    MODELS_PREFIX,
    TRAINING_EVENTS_PREFIX,
    TUNED_HYPERPARAMETERS_PARAMETER,
    parameter_name,
    tuning_job_prefix,
)
from infra.ops.errors import OpsError
from infra.ops.training import OneOffSettings, training_window
from infra.tuning import (
    TuningError,
    best_settings,
    check_objective_reported,
    static_hyperparameters,
    tuning_job_config,
    tuning_job_name,
)
from model_code.commands.tuning_space import TuningSpace, load_space
from model_code.gru4rec.hyperparameters import check_hyperparameters
from model_code.gru4rec.params import ParamError

RECENT = 5
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def read_space(name_or_path: str) -> TuningSpace:
    try:
        return load_space(name_or_path)
    except ParamError as error:
        raise OpsError(str(error)) from None


def parse_duration(text: str) -> int:
    """``--max-runtime``: ``90m``, ``4h``, ``1d`` or seconds, as whole seconds."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise OpsError(f"--max-runtime {text!r}: give a duration such as 90m, 4h or 1d")
    return int(seconds)


@dataclass(frozen=True)
class TuningLimits:
    trials: int
    parallel: int
    max_runtime_seconds: int | None = None


def tuning_request(stage: str, bucket: str, settings: OneOffSettings, space: TuningSpace, limits: TuningLimits,
                   window_days: int, now: datetime | None = None) -> dict:
    """The CreateHyperParameterTuningJob arguments."""
    try:
        check_objective_reported(settings.metric_definitions, settings.default_hyperparameters)
        config = tuning_job_config(space, limits.trials, limits.parallel, limits.max_runtime_seconds)
    except TuningError as error:
        raise OpsError(str(error)) from None
    static = static_hyperparameters(space, settings.default_hyperparameters, training_window(window_days, now))
    definition = {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": {"TrainingImage": settings.image_uri, "TrainingInputMode": "FastFile",
                                   "MetricDefinitions": settings.metric_definitions},
        "RoleArn": settings.role_arn,
        # the objective is measured on the validation split of the train channel: no test channel to score each trial
        "InputDataConfig": [_channel("train", f"s3://{bucket}/{TRAINING_EVENTS_PREFIX}")],
        "OutputDataConfig": _drop_none({"S3OutputPath": f"s3://{bucket}/{MODELS_PREFIX}",
                                        "KmsKeyId": settings.output_kms_key}),
        "ResourceConfig": _drop_none({"InstanceType": settings.instance_type, "InstanceCount": settings.instance_count,
                                      "VolumeSizeInGB": settings.volume_size_gb,
                                      "VolumeKmsKeyId": settings.volume_kms_key}),
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "EnableNetworkIsolation": settings.network_isolation,
    }
    return {
        "HyperParameterTuningJobName": tuning_job_name(stage, now),
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
        "Tags": [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": stage},
                 {"Key": "pipeline", "Value": "tuning"}],
    }


def _channel(name: str, s3_uri: str) -> dict:
    return {"ChannelName": name, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": s3_uri, "S3DataDistributionType": "FullyReplicated"}}}


def _drop_none(values: dict) -> dict:
    return {name: value for name, value in values.items() if value is not None}


def start_tuning(sagemaker, request: dict) -> str:
    """Start the tuning job; return its name."""
    sagemaker.create_hyper_parameter_tuning_job(**request)
    return request["HyperParameterTuningJobName"]


@dataclass(frozen=True)
class TuningLine:
    name: str
    status: str
    started: datetime
    completed: int
    best_job: str | None
    best_value: float | None


def recent_tuning_jobs(sagemaker, stage: str) -> list[TuningLine]:
    """The stage's latest tuning jobs, newest first, each with its best training job so far."""
    prefix = tuning_job_prefix(stage)
    summaries = sagemaker.list_hyper_parameter_tuning_jobs(
        NameContains=prefix, SortBy="CreationTime", SortOrder="Descending", MaxResults=RECENT * 2,
    )["HyperParameterTuningJobSummaries"]
    lines = []
    for summary in [each for each in summaries if each["HyperParameterTuningJobName"].startswith(prefix)][:RECENT]:
        described = sagemaker.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=summary["HyperParameterTuningJobName"])
        best = described.get("BestTrainingJob") or {}
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        lines.append(TuningLine(
            name=summary["HyperParameterTuningJobName"], status=summary["HyperParameterTuningJobStatus"],
            started=summary["CreationTime"], completed=summary["TrainingJobStatusCounters"].get("Completed", 0),
            best_job=best.get("TrainingJobName"), best_value=objective.get("Value"),
        ))
    return sorted(lines, key=lambda line: line.started, reverse=True)


def tuned_parameter_name(stage: str) -> str:
    return parameter_name(stage, TUNED_HYPERPARAMETERS_PARAMETER)


def applied_settings(ssm, stage: str) -> dict[str, str]:
    """What the last ``--apply`` wrote; ``{}`` before the first."""
    try:
        value = ssm.get_parameter(Name=tuned_parameter_name(stage))["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return {}
    return json.loads(value)


def apply_best(sagemaker, ssm, stage: str, job: str, stage_defaults: dict[str, str]) -> dict[str, str]:
    """Write the best settings of tuning job ``job`` (with ``tuning_job``, which names it in every later model's
    metadata.json) to the stage's tuned-hyperparameters parameter; return what was written."""
    if not job.startswith(tuning_job_prefix(stage)):
        raise OpsError(
            f"--apply {job}: not a tuning job of stage {stage} (those are named {tuning_job_prefix(stage)}...)"
        )
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job)
    try:
        settings = check_hyperparameters({**best_settings(described, stage_defaults), "tuning_job": job})
    except (TuningError, ParamError) as error:
        raise OpsError(f"--apply {job}: {error}") from None
    ssm.put_parameter(Name=tuned_parameter_name(stage), Value=json.dumps(settings, sort_keys=True),
                      Type="String", Overwrite=True)
    return settings
