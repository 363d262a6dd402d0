"""Clean-up of the SageMaker models and endpoint configs the training pipeline leaves behind.

Each training run that passes the gate creates a model and an endpoint config (tagged
`project=gru4rec`, `stage=<stage>`) outside CloudFormation, so `cdk destroy` does not remove
them. This finds those that nothing uses any more: not the endpoint's config or its models (batch
scoring reads the same), not a running transform job's model, and none of the stacks' own resources.
Nor the models of the live registry version and of the ``model_keep_count`` newest Approved versions
older than it (the Training stack's output ``ModelKeepCount``, from the context key of that name),
known by their ``model-package`` tag. ``rollback`` builds a model of its own from the version's
archive, so a version whose models are gone can still be put live.
"""
from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from infra.ops import registry
from infra.ops.deployment import PARTS, Deployment
from infra.ops.errors import OpsError
from infra.ops.live_model import approved_versions

PROJECT_TAGS = {"project": "gru4rec"}
DEFAULT_KEEP_COUNT = 3
"""Models kept before the live one when the Training stack gives no ``ModelKeepCount``."""
STACK_MANAGED_TYPES = ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig")


@dataclass(frozen=True)
class Leftovers:
    models: list[str]
    endpoint_configs: list[str]


def _tags(sagemaker, arn: str) -> dict[str, str]:
    pages = sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn)
    return {tag["Key"]: tag["Value"] for page in pages for tag in page["Tags"]}


def _stage_tagged(tags: dict[str, str], stage: str) -> bool:
    wanted = {**PROJECT_TAGS, "stage": stage}
    return all(tags.get(key) == value for key, value in wanted.items())


def _tagged(sagemaker, stage: str, lister: str, items_key: str, arn_key: str, name_key: str):
    pages = sagemaker.get_paginator(lister).paginate(NameContains=f"gru4rec-{stage}")
    for page in pages:
        for item in page[items_key]:
            tags = _tags(sagemaker, item[arn_key])
            if _stage_tagged(tags, stage):
                yield item[name_key], tags


def _endpoint_in_use(sagemaker, endpoint_name: str) -> tuple[set[str], set[str]]:
    """Endpoint configs and models the endpoint uses; refuses while it is changing."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if "Could not find endpoint" in error.response["Error"].get("Message", ""):
            return set(), set()
        raise
    if endpoint["EndpointStatus"] not in ("InService", "Failed", "OutOfService"):
        raise OpsError(
            f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}: run cleanup once it is "
            "InService"
        )
    config = endpoint["EndpointConfigName"]
    variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    return {config}, {variant["ModelName"] for variant in variants}


def _running_transform_models(sagemaker) -> set[str]:
    pages = sagemaker.get_paginator("list_transform_jobs").paginate(StatusEquals="InProgress")
    jobs = [job["TransformJobName"] for page in pages for job in page["TransformJobSummaries"]]
    return {sagemaker.describe_transform_job(TransformJobName=job)["ModelName"] for job in jobs}


def _refuse_while_training(stepfunctions, deployment: Deployment) -> None:
    if not deployment.has("Training"):
        return
    running = stepfunctions.list_executions(
        stateMachineArn=deployment.training_state_machine_arn, statusFilter="RUNNING"
    )["executions"]
    if running:
        raise OpsError(
            f"training execution {running[0]['name']} is running and may be creating a model: "
            "run cleanup after it has finished"
        )


def _stack_managed(cloudformation, deployment: Deployment) -> set[str]:
    """Physical names of the models and endpoint configs the stage's stacks own."""
    names = set()
    for part in PARTS:
        if not deployment.has(part):
            continue
        pages = cloudformation.get_paginator("list_stack_resources").paginate(
            StackName=deployment.stacks[part].name
        )
        names |= {  # the physical id is the resource's ARN (`arn:...:model/<name>`) or name
            resource["PhysicalResourceId"].rsplit("/", 1)[-1]
            for page in pages
            for resource in page["StackResourceSummaries"]
            if resource["ResourceType"] in STACK_MANAGED_TYPES
        }
    return names


def keep_count(deployment: Deployment) -> int:
    """How many earlier live models cleanup keeps: the Training stack's ``ModelKeepCount``."""
    if not deployment.has("Training"):
        return DEFAULT_KEEP_COUNT
    return int(deployment.stacks["Training"].outputs.get("ModelKeepCount", DEFAULT_KEEP_COUNT))


def recently_live(session, deployment: Deployment, count: int) -> set[str]:
    """The registry versions whose models cleanup keeps: the live one and the ``count`` newest Approved versions
    older than it (their ARNs, which the pipeline's models carry as their ``model-package`` tag)."""
    live = registry.live_version_arn(session, deployment)
    approved = approved_versions(session, deployment)
    newest = max((v.number for v in approved if v.arn == live), default=None)
    older = [v.arn for v in approved if newest is None or v.number < newest]
    return ({live} if live else set()) | set(older[:count])


def find_leftovers(session, deployment: Deployment) -> Leftovers:
    """Models and endpoint configs tagged for the stage that nothing uses and no stack owns."""
    sagemaker = session.client("sagemaker")
    _refuse_while_training(session.client("stepfunctions"), deployment)
    owned = _stack_managed(session.client("cloudformation"), deployment)
    configs_in_use, models_in_use = set(), set()
    if deployment.has("Endpoint"):
        configs_in_use, models_in_use = _endpoint_in_use(sagemaker, deployment.endpoint_name)
    models_in_use |= _running_transform_models(sagemaker)
    kept_versions = recently_live(session, deployment, keep_count(deployment)) if deployment.has("Endpoint") else set()
    configs = dict(_tagged(sagemaker, deployment.stage, "list_endpoint_configs", "EndpointConfigs",
                           "EndpointConfigArn", "EndpointConfigName"))
    models = dict(_tagged(sagemaker, deployment.stage, "list_models", "Models", "ModelArn", "ModelName"))
    # the pipeline names each model's endpoint config after it
    kept = {name for name, tags in models.items() if tags.get(registry.PACKAGE_TAG) in kept_versions}
    models_in_use |= kept
    configs_in_use |= kept
    return Leftovers(
        models=sorted(set(models) - models_in_use - owned),
        endpoint_configs=sorted(set(configs) - configs_in_use - owned),
    )


def delete_leftovers(sagemaker, leftovers: Leftovers) -> None:
    """Endpoint configs first, then the models they named."""
    for name in leftovers.endpoint_configs:
        sagemaker.delete_endpoint_config(EndpointConfigName=name)
    for name in leftovers.models:
        sagemaker.delete_model(ModelName=name)
