"""The live model's history, and rolling the endpoint back to an earlier model.

The history is SSM's own record of ``current-model-data``: every value it has held, when it was
written and by whom (the training pipeline's role, or the operator who ran ``rollback``). Each
value is a model.tar.gz: ``models/<training job>/output/model.tar.gz`` for a pipeline's model,
the first model's copy (``initial-models/<version>/model.tar.gz``) otherwise. ``rollback`` builds a model from an
earlier value and rolls the endpoint to it through the guardrails the training pipeline uses (read from its definition),
then records it in ``current-model-data`` and ``current-model-name`` like the pipeline does.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from infra.ops.deployment import Deployment
from infra.ops.errors import OpsError
from infra.ops.training import wait_until_final

FIRST_MODEL = "first model"
METRICS = ("recall@20", "mrr@20")
UPDATE_ENDPOINT = "sagemaker:updateEndpoint"
# what the pipeline's UpdateEndpoint sends besides the names: the guardrails and the retained properties
ROLLOUT_KEYS = ("DeploymentConfig", "RetainAllVariantProperties", "ExcludeRetainedVariantProperties")
ENDPOINT_FINAL = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")
_JOB_MODEL = re.compile(r"s3://[^/]+/models/(?P<job>[^/]+)/output/model\.tar\.gz")


@dataclass(frozen=True)
class LiveModel:
    """One value ``current-model-data`` held: the model, when it went live and who put it there."""

    version: str
    model_data: str
    went_live: datetime
    set_by: str | None
    metrics: dict[str, float]


def model_version(model_data: str) -> str:
    """The training job a model.tar.gz comes from (its ``model_version``), or FIRST_MODEL."""
    match = _JOB_MODEL.fullmatch(model_data)
    return match.group("job") if match else FIRST_MODEL


def job_metrics(sagemaker, version: str) -> dict[str, float]:
    """Recall@20 and MRR@20 of a training job's final metrics ({} for the first model, or a job gone)."""
    if version == FIRST_MODEL:
        return {}
    try:
        job = sagemaker.describe_training_job(TrainingJobName=version)
    except ClientError:
        return {}
    return {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", []) if m["MetricName"] in METRICS}


def history(session, deployment: Deployment) -> list[LiveModel]:
    """Every model ``current-model-data`` has named, oldest first (SSM keeps a parameter's last 100 values)."""
    ssm, sagemaker = session.client("ssm"), session.client("sagemaker")
    pages = ssm.get_paginator("get_parameter_history").paginate(Name=deployment.current_model_data_parameter)
    try:
        versions = sorted((v for page in pages for v in page["Parameters"]), key=lambda v: v["Version"])
    except ssm.exceptions.ParameterNotFound:
        return []
    return [LiveModel(version=model_version(v["Value"]), model_data=v["Value"], went_live=v["LastModifiedDate"],
                      set_by=v.get("LastModifiedUser"), metrics=job_metrics(sagemaker, model_version(v["Value"])))
            for v in versions]


def rollback_target(models: list[LiveModel], to: str | None) -> LiveModel:
    """The model to put live: ``to`` (a training job, or "first" for the first model) as it was last live,
    else the last one before the live model that differs from it."""
    if not models:
        raise OpsError("no live-model history: the stage has never recorded a live model")
    live = models[-1]
    if to is not None:
        wanted = FIRST_MODEL if to == "first" else to
        earlier = [m for m in models if m.version == wanted]
        if not earlier:
            known = ", ".join(dict.fromkeys(m.version if m.version != FIRST_MODEL else "first" for m in models))
            raise OpsError(f"{to} has never been live on this stage; the models it has had: {known}")
        target = earlier[-1]
    else:
        before = [m for m in models[:-1] if m.model_data != live.model_data]
        if not before:
            raise OpsError(f"no earlier model to roll back to: {live.version} is the only one this stage has had")
        target = before[-1]
    if target.model_data == live.model_data:
        raise OpsError(f"{target.version} is the live model already")
    return target


def rollout_settings(definition: dict) -> dict:
    """The guardrails the training pipeline's "Update endpoint" state sends, from its definition."""
    for state in definition.get("States", {}).values():
        if state.get("Resource", "").endswith(UPDATE_ENDPOINT):
            arguments = state.get("Arguments") or state.get("Parameters") or {}
            if "DeploymentConfig" in arguments:
                return {key: arguments[key] for key in ROLLOUT_KEYS if key in arguments}
    raise OpsError("the training state machine has no UpdateEndpoint task with a DeploymentConfig: "
                   "deploy the Training stack of this version first")


@dataclass(frozen=True)
class Rollback:
    target: LiveModel
    model_name: str
    config_name: str


def roll_back(session, deployment: Deployment, target: LiveModel, now: datetime | None = None,
              sleep: Callable[[float], None] = time.sleep, poll_seconds: float = 30.0,
              report: Callable[[str], None] = print) -> Rollback:
    """Put ``target`` live: a model and endpoint config like the endpoint's current ones but with its data, a
    guarded rollout, and, once the endpoint serves it, the live-model records. OpsError when SageMaker
    rolled the rollout back (the records keep the live model) or the endpoint is busy."""
    sagemaker, ssm = session.client("sagemaker"), session.client("ssm")
    described = sagemaker.describe_endpoint(EndpointName=deployment.endpoint_name)
    if described["EndpointStatus"] != "InService":
        raise OpsError(f"endpoint {deployment.endpoint_name} is {described['EndpointStatus']}: another update is "
                       "running (a training rollout or a cdk deploy); roll back once it is InService")
    definition = json.loads(session.client("stepfunctions").describe_state_machine(
        stateMachineArn=deployment.training_state_machine_arn)["definition"])
    rollout = rollout_settings(definition)
    name = f"gru4rec-{deployment.stage}-rollback-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"
    _copy_endpoint_config(sagemaker, described["EndpointConfigName"], name, target)
    sagemaker.update_endpoint(EndpointName=deployment.endpoint_name, EndpointConfigName=name, **rollout)
    ended = wait_until_final(lambda: sagemaker.describe_endpoint(EndpointName=deployment.endpoint_name),
                             "EndpointStatus", ENDPOINT_FINAL, deployment.endpoint_name, poll_seconds,
                             sleep=sleep, report=report)
    if ended["EndpointStatus"] != "InService" or ended["EndpointConfigName"] != name:
        reason = ended.get("FailureReason", "SageMaker gave no reason")
        raise OpsError(f"the rollout to {target.version} did not finish: endpoint {deployment.endpoint_name} is "
                       f"{ended['EndpointStatus']} with configuration {ended['EndpointConfigName']} ({reason}); "
                       "the live model is unchanged")
    ssm.put_parameter(Name=deployment.current_model_data_parameter, Value=target.model_data, Type="String",
                      Overwrite=True)
    ssm.put_parameter(Name=deployment.current_model_name_parameter, Value=name, Type="String", Overwrite=True)
    return Rollback(target=target, model_name=name, config_name=name)


def _copy_endpoint_config(sagemaker, current_config: str, name: str, target: LiveModel) -> None:
    """A model ``name`` like the endpoint's current one with ``target``'s data, and an endpoint config
    ``name`` like the current one (instances or serverless settings, data capture, key) serving it."""
    config = sagemaker.describe_endpoint_config(EndpointConfigName=current_config)
    (variant,) = config["ProductionVariants"]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = dict(model["PrimaryContainer"])
    # ModelDataUrl, which serverless endpoints take too (infra.sagemaker_models)
    container.pop("ModelDataSource", None)
    container["ModelDataUrl"] = target.model_data
    tags = _tags(sagemaker, model["ModelArn"]) + [{"Key": "training-job", "Value": target.version.replace(" ", "-")},
                                                  {"Key": "pipeline", "Value": "rollback"}]
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=model["ExecutionRoleArn"], PrimaryContainer=container,
                           EnableNetworkIsolation=model.get("EnableNetworkIsolation", False), Tags=tags)
    copied = {key: config[key] for key in ("DataCaptureConfig", "KmsKeyId") if config.get(key)}
    # instances, or a serverless variant's memory and concurrency
    variant_keys = ("VariantName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight", "ServerlessConfig")
    sagemaker.create_endpoint_config(
        EndpointConfigName=name, Tags=tags, **copied,
        ProductionVariants=[{**{key: variant[key] for key in variant_keys if key in variant}, "ModelName": name}],
    )


def _tags(sagemaker, arn: str) -> list[dict[str, str]]:
    """The stage's tags of a resource (``project`` and ``stage``), which cleanup goes by."""
    return [tag for tag in sagemaker.list_tags(ResourceArn=arn)["Tags"] if tag["Key"] in ("project", "stage")]
