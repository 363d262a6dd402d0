"""The stage's Model Registry from the operator CLI: its versions, which one is live, approve and reject.

Approving a version (``PendingManualApproval`` or ``Rejected``) is all it takes to deploy it: the registry's
state-change event starts the training pipeline's guarded rollout of that version (``infra.stacks.model_versions``).
Rejecting one records the reason as its approval description. The live version is the one whose model the endpoint
serves: the pipeline tags each model it creates with its ``model-package``; the Endpoint stack's own model is known
by its archive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from infra.layout import LIVE_VARIANT
from infra.ops.errors import OpsError

if TYPE_CHECKING:
    import boto3

    from infra.ops.deployment import Deployment

APPROVED, PENDING, REJECTED = "Approved", "PendingManualApproval", "Rejected"
# the approval description the API takes (ApprovalDescription: at most 1024 characters)
MAX_NOTE = 1024
PACKAGE_TAG = "model-package"


@dataclass(frozen=True)
class Version:
    """One version of the stage's group, as ``status`` shows it."""

    number: int
    arn: str
    approval: str
    created: str
    description: str
    approval_description: str
    training_job: str | None
    metrics: dict[str, float]
    model_data: str = ""
    rolled_back_at: str | None = None  # when ``infra.ops rollback`` last put it live again
    rolled_out_by: str | None = None  # the execution that registered and rolled it out, or ``cdk-deploy``


def group_name(deployment: Deployment) -> str:
    return f"gru4rec-{deployment.stage}"


def version_arn(session: boto3.Session, deployment: Deployment, version: str) -> str:
    """The ARN of ``version`` (its number, or its ARN) in the stage's group; OpsError when it has none."""
    group = group_name(deployment)
    sagemaker = session.client("sagemaker")
    if version.isdigit() and int(version) >= 1:
        try:
            group_arn = sagemaker.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"]
        except ClientError as error:
            raise OpsError(f"no model package group {group}: {error.response['Error'].get('Message')}") from None
        arn = group_arn.replace(":model-package-group/", ":model-package/") + f"/{int(version)}"
    elif version.startswith("arn:") and f":model-package/{group}/" in version:
        arn = version
    else:
        raise OpsError(f"VERSION {version!r} is neither a version number of {group} (1, 2, ...) nor the ARN of one")
    try:
        sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        raise OpsError(f"{group} has no version {version}: {error.response['Error'].get('Message')}") from None
    return arn


def approve(session: boto3.Session, deployment: Deployment, version: str, note: str | None) -> Version:
    """Approve ``version``: its approval event starts the guarded rollout. An Approved version is refused: its
    approval was acted on already, and the same version is never rolled out twice by an approval."""
    arn = version_arn(session, deployment, version)
    current = describe(session, arn)
    if current.approval == APPROVED:
        raise OpsError(f"version {current.number} is already Approved (its approval started its rollout)")
    return _set_approval(session, arn, APPROVED, note or "approved with python -m infra.ops approve")


def reject(session: boto3.Session, deployment: Deployment, version: str, reason: str) -> Version:
    """Reject ``version`` with ``reason``; the live version is refused (roll back first)."""
    if not reason.strip():
        raise OpsError("--reason must say why the version is rejected")
    arn = version_arn(session, deployment, version)
    if arn == live_version_arn(session, deployment):
        raise OpsError(
            f"version {arn.rsplit('/', 1)[1]} is the live model: roll back to another version first "
            "(python -m infra.ops rollback), then reject it"
        )
    return _set_approval(session, arn, REJECTED, reason)


def _set_approval(session: boto3.Session, arn: str, status: str, note: str) -> Version:
    session.client("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus=status, ApprovalDescription=note[:MAX_NOTE]
    )
    return describe(session, arn)


def describe(session: boto3.Session, arn: str) -> Version:
    """The version, with the figures of its evaluation report (none when the report cannot be read)."""
    described = session.client("sagemaker").describe_model_package(ModelPackageName=arn)
    metadata = described.get("CustomerMetadataProperties", {})
    return Version(
        number=described["ModelPackageVersion"],
        arn=described["ModelPackageArn"],
        approval=described.get("ModelApprovalStatus", ""),
        created=str(described.get("CreationTime", ""))[:19],
        description=described.get("ModelPackageDescription", ""),
        approval_description=described.get("ApprovalDescription", ""),
        training_job=metadata.get("training-job"),
        metrics=_report_metrics(session, described),
        model_data=described.get("InferenceSpecification", {}).get("Containers", [{}])[0].get("ModelDataUrl", ""),
        rolled_back_at=metadata.get("rolled-back-at"),
        rolled_out_by=metadata.get("rolled-out-by"),
    )


def _report_metrics(session: boto3.Session, described: dict) -> dict[str, float]:
    uri = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")
    if not uri.startswith("s3://"):
        return {}
    bucket, _, key = uri[len("s3://") :].partition("/")
    try:
        report = json.loads(session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, ValueError):
        return {}
    return {
        name: figure["value"]
        for name, figure in report.get("recommendation_metrics", {}).items()
        if isinstance(figure, dict) and isinstance(figure.get("value"), (int, float))
    }


def versions(session: boto3.Session, deployment: Deployment, count: int = 10) -> list[Version]:
    """The group's last ``count`` versions, newest first."""
    try:
        listed = session.client("sagemaker").list_model_packages(
            ModelPackageGroupName=group_name(deployment),
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=count,
        )["ModelPackageSummaryList"]
    except ClientError:
        return []
    return [describe(session, summary["ModelPackageArn"]) for summary in listed]


def live_version_arn(session: boto3.Session, deployment: Deployment) -> str | None:
    """The version the endpoint serves: the ``model-package`` tag of its model (the pipeline's models), else the
    newest Approved version of the archive it serves (the Endpoint stack's own model: the first model, or the live
    one it was rebuilt from); None for an endpoint that does not exist or an archive the registry does not hold."""
    sagemaker = session.client("sagemaker")
    try:
        config = sagemaker.describe_endpoint(EndpointName=deployment.endpoint_name)["EndpointConfigName"]
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        live = next((v for v in variants if v["VariantName"] == LIVE_VARIANT), variants[0])
        model = sagemaker.describe_model(ModelName=live["ModelName"])
    except ClientError:
        return None
    tags = sagemaker.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
    tagged = next((tag["Value"] for tag in tags if tag["Key"] == PACKAGE_TAG), None)
    if tagged:
        return tagged
    archive = model.get("PrimaryContainer", {}).get("ModelDataUrl")
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group_name(deployment), ModelApprovalStatus=APPROVED, SortBy="CreationTime",
        SortOrder="Descending")
    try:
        for summary in (summary for page in pages for summary in page["ModelPackageSummaryList"]):
            described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if described["InferenceSpecification"]["Containers"][0].get("ModelDataUrl") == archive:
                return described["ModelPackageArn"]
    except ClientError:
        return None
    return None


def render(found: list[Version], live: str | None) -> str:
    """The versions as ``status`` prints them, the live one marked."""
    if not found:
        return "model registry: no versions yet"
    lines = ["model registry (newest first; * live):"]
    for version in found:
        figures = ", ".join(f"{name} {value:.4f}" for name, value in version.metrics.items()) or "no report"
        mark = "*" if version.arn == live else " "
        note = version.approval_description or version.description
        if version.rolled_back_at:
            note = f"put live again by rollback at {version.rolled_back_at}; {note}"
        lines.append(
            f"{mark} {version.number:>4}  {version.approval:<21} {version.created}  "
            f"{version.training_job or '-'}  {figures}  {note}"
        )
    return "\n".join(lines)
