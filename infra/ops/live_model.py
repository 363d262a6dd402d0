"""Rolling the endpoint back to an earlier Approved version of the stage's Model Registry.

The live model is the registry version the endpoint serves (``registry.live_version_arn``). ``rollback`` puts an
earlier **Approved** version live again (by default the newest Approved version older than the live one that has
been live, :func:`went_live`) through the training pipeline's guarded rollout, the path an approval takes: the
state machine started with
``{"modelPackage": ARN, "rollback": true}`` reads the version, builds a model and endpoint config of their own
name from its image and archive, and updates the endpoint with the pipeline's guardrails (alarms, automatic
rollback). A Rejected or pending version is refused before anything starts. Once the endpoint serves it, the version
records the rollback in its metadata (``rolled-back-at``, ``rolled-back-by``, ``rolled-back-from``), which ``status``
shows. ``rollout_settings`` and ``ENDPOINT_FINAL`` serve A/B promote's own rollouts.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from infra.ops import registry
from infra.ops.deployment import Deployment
from infra.ops.errors import OpsError
from infra.ops.training import wait_for_execution

UPDATE_ENDPOINT = "sagemaker:updateEndpoint"
# what the pipeline's UpdateEndpoint sends besides the names: the guardrails and the retained properties
ROLLOUT_KEYS = ("DeploymentConfig", "RetainAllVariantProperties", "ExcludeRetainedVariantProperties")
ENDPOINT_FINAL = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")
ROLLED_BACK_AT, ROLLED_BACK_BY, ROLLED_BACK_FROM = "rolled-back-at", "rolled-back-by", "rolled-back-from"
FIRST_DEPLOY = "cdk-deploy"  # infra.registry.FIRST_DEPLOY: the first model, put live by CloudFormation


@dataclass(frozen=True)
class Rollback:
    target: registry.Version
    execution: str
    replaced: int | None  # the version that was live before, None when the endpoint served none of the registry's


def approved_versions(session, deployment: Deployment) -> list[registry.Version]:
    """Every Approved version of the stage's group, newest first."""
    sagemaker = session.client("sagemaker")
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=registry.group_name(deployment), ModelApprovalStatus=registry.APPROVED,
        SortBy="CreationTime", SortOrder="Descending")
    found = [registry.describe(session, summary["ModelPackageArn"])
             for page in pages for summary in page["ModelPackageSummaryList"]]
    return sorted(found, key=lambda version: version.number, reverse=True)


def rollback_target(session, deployment: Deployment, to_version: str | None) -> tuple[registry.Version, int | None]:
    """The version to put live (``to_version``, else the newest Approved one older than the live one) and the live
    version's number. OpsError for a version that is not Approved, or the live one."""
    live_arn = registry.live_version_arn(session, deployment)
    live = registry.describe(session, live_arn).number if live_arn else None
    if to_version is not None:
        target = registry.describe(session, registry.version_arn(session, deployment, to_version))
        if target.approval != registry.APPROVED:
            note = target.approval_description or target.description
            raise OpsError(f"version {target.number} of {registry.group_name(deployment)} is {target.approval}"
                           f"{f' ({note})' if note else ''}: only an Approved version is rolled back to")
    else:
        if live is None:
            raise OpsError(f"endpoint {deployment.endpoint_name} serves no version of {registry.group_name(deployment)}"
                           ": name the version to put live with --to-version N")
        earlier = [version for version in approved_versions(session, deployment) if version.number < live]
        target = next((version for version in earlier if went_live(session, deployment, version)), None)
        if target is None:
            raise OpsError(f"no Approved version older than the live version {live} has been live: name one with "
                           "--to-version N")
    if target.number == live:
        raise OpsError(f"version {target.number} is the live model already")
    return target, live


def went_live(session, deployment: Deployment, version: registry.Version) -> bool:
    """Whether ``version`` has been live: the first deploy's, one a rollback put live, or one whose rollout execution
    (the run that registered it on an ``approval=auto`` stage, else its approval's ``version-<n>``) succeeded. An
    Approved version whose rollout SageMaker rolled back on an alarm never was."""
    if version.rolled_back_at or version.rolled_out_by == FIRST_DEPLOY:
        return True
    name = version.rolled_out_by or f"version-{version.number}"
    machine = deployment.training_state_machine_arn
    execution = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    stepfunctions = session.client("stepfunctions")
    try:
        return stepfunctions.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"
    except stepfunctions.exceptions.ExecutionDoesNotExist:
        return False


def rollout_settings(definition: dict) -> dict:
    """The guardrails the training pipeline's "Update endpoint" state sends, from its definition."""
    for state in definition.get("States", {}).values():
        if state.get("Resource", "").endswith(UPDATE_ENDPOINT):
            arguments = state.get("Arguments") or state.get("Parameters") or {}
            if "DeploymentConfig" in arguments:
                return {key: arguments[key] for key in ROLLOUT_KEYS if key in arguments}
    raise OpsError("the training state machine has no UpdateEndpoint task with a DeploymentConfig: "
                   "deploy the Training stack of this version first")


def roll_back(session, deployment: Deployment, target: registry.Version, replaced: int | None,
              now: datetime | None = None, sleep: Callable[[float], None] = time.sleep, poll_seconds: float = 30.0,
              report: Callable[[str], None] = print, wait: Callable[..., dict] = wait_for_execution) -> Rollback:
    """Start the guarded rollout of ``target`` and wait for it; once the endpoint serves it, record it on the
    version. OpsError when the endpoint is busy or runs an A/B test, or when the rollout failed (SageMaker's alarms
    rolled it back, say): then nothing is recorded and the live model is what the endpoint still serves."""
    described = session.client("sagemaker").describe_endpoint(EndpointName=deployment.endpoint_name)
    if described["EndpointStatus"] != "InService":
        raise OpsError(f"endpoint {deployment.endpoint_name} is {described['EndpointStatus']}: another update is "
                       "running (a training rollout or a cdk deploy); roll back once it is InService")
    variants = session.client("sagemaker").describe_endpoint_config(
        EndpointConfigName=described["EndpointConfigName"])["ProductionVariants"]
    if len(variants) != 1:
        names = ", ".join(v["VariantName"] for v in variants)
        raise OpsError(f"the endpoint runs an A/B test (variants {names}): end it first with "
                       "`infra.ops ab promote VARIANT`")
    stamp = now or datetime.now(UTC)
    name = f"rollback-{target.number}-{stamp:%Y%m%d-%H%M%S}"
    stepfunctions = session.client("stepfunctions")
    started = stepfunctions.start_execution(
        stateMachineArn=deployment.training_state_machine_arn, name=name,
        input=json.dumps({"modelPackage": target.arn, "rollback": True, "trigger": "rollback"}))
    ended = wait(stepfunctions, started["executionArn"], poll_seconds, sleep=sleep, report=report)
    if ended["status"] != "SUCCEEDED":
        raise OpsError(f"the rollout of version {target.number} ended {ended['status']}: {ended.get('error', '-')}: "
                       f"{ended.get('cause', 'no cause given')} (execution {name}); the live model is unchanged")
    sagemaker = session.client("sagemaker")
    # the version's other entries are sent again: the API adds and replaces entries (the ones to drop are named in
    # CustomerMetadataPropertiesToRemove), moto replaces the whole map; either way the version keeps them
    kept = sagemaker.describe_model_package(ModelPackageName=target.arn).get("CustomerMetadataProperties", {})
    metadata = {**kept, ROLLED_BACK_AT: f"{stamp:%Y-%m-%dT%H:%M:%SZ}", ROLLED_BACK_BY: name,
                ROLLED_BACK_FROM: str(replaced) if replaced is not None else "-"}
    sagemaker.update_model_package(ModelPackageArn=target.arn, CustomerMetadataProperties=metadata)
    return Rollback(target=target, execution=name, replaced=replaced)
