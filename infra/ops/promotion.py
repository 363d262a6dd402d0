"""Promote an Approved model version from one stage's Model Registry group to another's, where a person approves it.

The target stage's group gets a new version, ``PendingManualApproval``, with the source version's archive, the
same image digest, its evaluation report and metadata, and a link to the source version (metadata
``source-version``). Approving it there (``infra.ops approve N --stage <target>``) starts the target's guarded
rollout through the registry's state-change event (``infra.stacks.model_versions``).

- One account: each stage owns its bucket, key and image repository, so the archive and its evaluation report are
  copied into the target's bucket under the same keys (byte for byte), and the image must already be in the
  target's repository under the same digest (both stages deployed from the same code), or ``--image`` names one
  of the target's images to use instead.
- Across accounts: the target's version points at the source's archive, report and image (by digest); nothing is
  copied. The source grants the target account read access (context ``promotion_target_accounts``: the group's
  resource policy, the bucket, key and repository), and the target's roles may read them (``promotion_source_account``).

What a target needs to deploy a version: the archive (``ModelDataUrl``) and the image its model role may pull.
https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-version.html (versions, approval);
cross-account groups: https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram.html
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from infra.layout import MODELS_PREFIX
from infra.ops import registry
from infra.ops.deployment import Deployment
from infra.ops.errors import OpsError

if TYPE_CHECKING:
    import boto3

# metadata of a promoted version (CustomerMetadataProperties: at most 50 entries in all)
SOURCE_VERSION, SOURCE_STAGE, IMAGE_DIGEST, MODEL_NAME = "source-version", "source-stage", "image-digest", "model-name"
# the entries a version's rollout acts on in the stage that registered it, never carried to another stage
NOT_CARRIED = ("rolled-out-by",)
METADATA_ENTRIES_MAX = 50
REALTIME_TYPES = "SupportedRealtimeInferenceInstanceTypes"
DIGEST_MARK = "@sha256:"


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` registered: the target's version and where its archive and image are."""

    source_arn: str
    target_arn: str
    target_version: int
    image: str
    model_data: str
    copied: bool


def promote(session: boto3.Session, source_stage: str, version: str, target: Deployment,
            image: str | None = None) -> Promotion:
    """Register ``version`` (a number of ``gru4rec-<source_stage>`` or a version's ARN, of this account or another)
    in ``target``'s group as PendingManualApproval. OpsError, before anything is written, when the version is not
    Approved or the target cannot run its image."""
    if source_stage == target.stage:
        raise OpsError(f"--to {target.stage}: the version is in that stage already (promote to another stage)")
    source_arn = registry.version_arn(session, Deployment(stage=source_stage, region=target.region, stacks={}), version)
    described = session.client("sagemaker").describe_model_package(ModelPackageName=source_arn)
    if described.get("ModelApprovalStatus") != registry.APPROVED:
        raise OpsError(f"version {described['ModelPackageVersion']} of {described['ModelPackageGroupName']} is "
                       f"{described.get('ModelApprovalStatus')}: only an Approved version is promoted")
    held = promoted_as(session, target, source_arn)
    if held:
        raise OpsError(f"gru4rec-{target.stage} holds this version already, as {held} (approve or reject it there)")
    container = described["InferenceSpecification"]["Containers"][0]
    cross_account = _account(source_arn) != session.client("sts").get_caller_identity()["Account"]
    digest = source_digest(session, container)
    target_image = target_image_uri(session, target, container["Image"], digest, cross_account, image)
    model_data, report = container["ModelDataUrl"], _report_uri(described)
    if not cross_account:
        number = described["ModelPackageVersion"]
        model_data = _copy_object(session, model_data, target.data_bucket, source_stage, number)
        report = report and _copy_object(session, report, target.data_bucket, source_stage, number)
    request = registration_request(described, source_stage, target, target_image, model_data, report,
                                   endpoint_instance_types(session, target))
    arn = session.client("sagemaker").create_model_package(**request)["ModelPackageArn"]
    return Promotion(source_arn, arn, int(arn.rsplit("/", 1)[1]), target_image, model_data, not cross_account)


def promoted_as(session: boto3.Session, target: Deployment, source_arn: str) -> str | None:
    """The target's version promoted from ``source_arn``, if any: a second one would name the same model."""
    sagemaker = session.client("sagemaker")
    pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=registry.group_name(target))
    for page in pages:
        for summary in page["ModelPackageSummaryList"]:
            described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if described.get("CustomerMetadataProperties", {}).get(SOURCE_VERSION) == source_arn:
                return summary["ModelPackageArn"]
    return None


def source_digest(session: boto3.Session, container: dict) -> str:
    """The digest (``sha256:...``) of the version's image: from its URI when it names one, else SageMaker's record of
    it, else the repository's answer for its tag."""
    uri = container["Image"]
    if DIGEST_MARK in uri:
        return "sha256:" + uri.split(DIGEST_MARK, 1)[1]
    if container.get("ImageDigest", "").startswith("sha256:"):
        return container["ImageDigest"]
    registry_id, repository, tag = _image_parts(uri)
    try:
        found = session.client("ecr").describe_images(registryId=registry_id, repositoryName=repository,
                                                      imageIds=[{"imageTag": tag}])["imageDetails"]
    except ClientError as error:
        raise OpsError(f"cannot read the version's image {uri}: {error.response['Error'].get('Message')}") from None
    return found[0]["imageDigest"]


def target_image_uri(session: boto3.Session, target: Deployment, source_image: str, digest: str, cross_account: bool,
                     image: str | None) -> str:
    """The image the target's version names, by digest: ``image`` (one of the target's own), else the version's
    image where the target can pull it (its own repository in one account, the source's across accounts)."""
    if image:
        if not image.startswith(target.repository_uri + ":") and not image.startswith(target.repository_uri + "@"):
            raise OpsError(f"--image {image}: name an image of stage {target.stage}'s repository "
                           f"{target.repository_uri} (the one its models may pull from)")
        registry_id, repository, reference = _image_parts(image)
        return f"{target.repository_uri}@{_digest_in(session, registry_id, repository, reference, image)}"
    repository_uri = source_image.split("@", 1)[0].rsplit(":", 1)[0] if cross_account else target.repository_uri
    registry_id, repository, _ = _image_parts(repository_uri + "@" + digest)
    if _digest_in(session, registry_id, repository, digest, None) is None:
        remedy = ("the source's image is gone (its repository keeps the last image_keep_count)" if cross_account else
                  f"deploy {target.stage} from the same code")
        raise OpsError(f"repository {repository_uri} has no image {digest} (the image of the version): {remedy}, "
                       f"or name one of stage {target.stage}'s images with --image")
    return f"{repository_uri}@{digest}"


def _digest_in(session: boto3.Session, registry_id: str, repository: str, reference: str,
               named: str | None) -> str | None:
    """The digest of ``reference`` (a tag or a digest) in the repository; None when it holds no such image (OpsError
    when ``named``, the image the command was given)."""
    image_id = {"imageDigest": reference} if reference.startswith("sha256:") else {"imageTag": reference}
    try:
        found = session.client("ecr").describe_images(registryId=registry_id, repositoryName=repository,
                                                      imageIds=[image_id])["imageDetails"]
    except ClientError as error:
        if named is not None or error.response["Error"].get("Code") != "ImageNotFoundException":
            raise OpsError(f"cannot find image {named or reference} in {repository}: "
                           f"{error.response['Error'].get('Message')}") from None
        return None
    return found[0]["imageDigest"]


def registration_request(described: dict, source_stage: str, target: Deployment, image: str, model_data: str,
                         report: str | None, realtime_types: list[str] | None = None) -> dict:
    """CreateModelPackage of the target's version: the source's inference specification with the target's image and
    archive (and ``realtime_types``, the target endpoint's instance types, where known: [] for a serverless one),
    its evaluation report, its metadata (less what only its own stage acts on) and the link to it."""
    specification = {key: value for key, value in described["InferenceSpecification"].items() if key != "Containers"}
    specification["Containers"] = [{"Image": image, "ModelDataUrl": model_data}]
    if realtime_types is not None:
        specification.pop(REALTIME_TYPES, None)
        if realtime_types:
            specification[REALTIME_TYPES] = realtime_types
    number = described["ModelPackageVersion"]
    link = {SOURCE_VERSION: described["ModelPackageArn"], SOURCE_STAGE: source_stage,
            IMAGE_DIGEST: image.split("@", 1)[1], MODEL_NAME: promoted_model_name(source_stage, number, target.stage)}
    carried = {key: value for key, value in described.get("CustomerMetadataProperties", {}).items()
               if key not in NOT_CARRIED and key not in link}
    kept = dict(list(carried.items())[:METADATA_ENTRIES_MAX - len(link)])
    request = {
        "ModelPackageGroupName": registry.group_name(target),
        "ModelPackageDescription": f"promoted from gru4rec-{source_stage} version {number}: "
                                   f"{described.get('ModelPackageDescription', '')}"[:1024],
        "ModelApprovalStatus": registry.PENDING,
        "InferenceSpecification": specification,
        "CustomerMetadataProperties": {**kept, **link},
        "MetadataProperties": {"GeneratedBy": "python -m infra.ops promote"},
        "Tags": [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": target.stage},
                 {"Key": "promoted-from", "Value": f"gru4rec-{source_stage}/{number}"}],
    }
    if report:
        request["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report}}}
    return request


def endpoint_instance_types(session: boto3.Session, target: Deployment) -> list[str] | None:
    """The instance types the target's endpoint runs ([] on a serverless endpoint); None when it cannot be read."""
    sagemaker = session.client("sagemaker")
    try:
        config = sagemaker.describe_endpoint(EndpointName=target.endpoint_name)["EndpointConfigName"]
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
    except (ClientError, OpsError):
        return None
    return sorted({variant["InstanceType"] for variant in variants if "InstanceType" in variant})


def promoted_model_name(source_stage: str, number: int, target_stage: str) -> str:
    """The name the target's rollout gives the model, endpoint config (and training-pipeline records) of a promoted
    version: under the target pipeline's names (``gru4rec-<stage>-train-``), which its grants cover."""
    return f"gru4rec-{target_stage}-train-from-{source_stage}-{number}"


def _copy_object(session: boto3.Session, uri: str, bucket: str, source_stage: str, number: int) -> str:
    """Copy ``uri`` into ``bucket`` (its default encryption applies); the copy's URI. A trained model's objects keep
    their key (``models/<job>/...``, a job of the source stage's names); any other (the first model's
    ``initial-models/...``, which the target has its own of) goes under ``models/from-<stage>-<n>/``, where the
    target's models may read it."""
    source_bucket, _, source_key = uri[len("s3://"):].partition("/")
    key = (source_key if source_key.startswith(MODELS_PREFIX)
           else f"{MODELS_PREFIX}from-{source_stage}-{number}/{source_key}")
    try:
        session.client("s3").copy_object(Bucket=bucket, Key=key,
                                         CopySource={"Bucket": source_bucket, "Key": source_key})
    except ClientError as error:
        raise OpsError(f"cannot copy {uri} into {bucket}: {error.response['Error'].get('Message')}") from None
    return f"s3://{bucket}/{key}"


def _report_uri(described: dict) -> str | None:
    uri = described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")
    return uri if uri.startswith("s3://") else None


def _account(arn: str) -> str:
    return arn.split(":")[4]


def _image_parts(uri: str) -> tuple[str, str, str]:
    """(registry id, repository name, tag or digest) of an ECR image URI
    ``<account>.dkr.ecr.<region>.<domain>/<repo>:<tag>``
    or ``...@sha256:<hex>``."""
    host, _, path = uri.partition("/")
    if "@" in path:
        repository, _, reference = path.partition("@")
    else:
        repository, _, reference = path.rpartition(":")
    if not host.split(".")[0].isdigit() or not repository or not reference:
        raise OpsError(f"image {uri} is not an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<name>:<tag>)")
    return host.split(".")[0], repository, reference
