"""`python -m infra.ops smoke --teardown`: remove a smoke stage and everything it made, kept resources included.

The stacks go first; then what they keep on deletion (the buckets, emptied of every version, and the KMS key,
scheduled for deletion), the models and endpoint configs the training pipeline made, and the stage's SSM
parameters. Only stages named like the smoke test's own (``smoke...``) are torn down.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from infra.layout import PARTS, parameter_name
from infra.ops import cleanup
from infra.ops.deployment import Deployment, load_deployment
from infra.ops.errors import OpsError

STAGE_PREFIX = "smoke"
"""The first letters of every smoke stage's name, and of the only stages the teardown removes."""
KEPT_TYPES = ("AWS::S3::Bucket", "AWS::KMS::Key")
"""What the stacks keep on deletion (RemovalPolicy.RETAIN) and the teardown removes itself."""
REFILL_PAUSE_SECONDS = 30.0
"""How long to wait before emptying a bucket again that late deliveries (access logs) refilled."""


def _kept_resources(cloudformation, deployment: Deployment) -> dict[str, list[str]]:
    """The physical ids of the buckets and KMS keys of the stage's stacks, by type."""
    kept: dict[str, list[str]] = {kind: [] for kind in KEPT_TYPES}
    for part in PARTS:
        if deployment.has(part):
            pages = cloudformation.get_paginator("list_stack_resources").paginate(
                StackName=deployment.stacks[part].name
            )
            for page in pages:
                for resource in page["StackResourceSummaries"]:
                    if resource["ResourceType"] in kept and resource.get("PhysicalResourceId"):
                        kept[resource["ResourceType"]].append(resource["PhysicalResourceId"])
    return kept


def empty_bucket(s3, bucket: str) -> int:
    """Delete every object version and delete marker; how many were deleted."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if batch:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted


def remove_bucket(s3, bucket: str, sleep: Callable[[float], None], attempts: int = 3) -> str:
    """Empty and delete a bucket; again after a pause when late deliveries (access logs) refilled it."""
    versions, attempt = 0, 1
    while True:
        try:
            versions += empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
            return f"bucket {bucket} emptied ({versions} object versions) and deleted"
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "NoSuchBucket":
                return f"bucket {bucket} already gone"
            if code != "BucketNotEmpty" or attempt == attempts:
                raise
        sleep(REFILL_PAUSE_SECONDS)
        attempt += 1


def _delete_stacks(cloudformation, deployment: Deployment) -> list[str]:
    lines = []
    waiter = cloudformation.get_waiter("stack_delete_complete")
    for part in reversed(PARTS):
        if deployment.has(part):
            name = deployment.stacks[part].name
            cloudformation.delete_stack(StackName=name)
            waiter.wait(StackName=name, WaiterConfig={"Delay": 15, "MaxAttempts": 240})
            lines.append(f"stack {name} deleted")
    return lines


def _delete_parameters(ssm, stage: str) -> list[str]:
    """The SSM parameters left under the stage's path (the pipeline's live-model records)."""
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=parameter_name(stage, ""), Recursive=True)
    names = [p["Name"] for page in pages for p in page["Parameters"]]
    for start in range(0, len(names), 10):
        ssm.delete_parameters(Names=names[start:start + 10])
    return [f"parameter {name} deleted" for name in names]


def teardown(session, stage: str, sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Remove everything the stage made: stacks, then the kept buckets and key, the pipeline's models and
    endpoint configs, its SSM parameters. Works on a half-deployed stage; what is already gone is skipped."""
    if not stage.startswith(STAGE_PREFIX):
        raise OpsError(
            f"refusing to tear down stage {stage!r}: the smoke test removes only its own {STAGE_PREFIX}* stages"
        )
    cloudformation = session.client("cloudformation")
    deployment = load_deployment(session, stage, allow_none=True)
    kept = _kept_resources(cloudformation, deployment)
    lines = _delete_stacks(cloudformation, deployment)
    s3 = session.client("s3")
    lines += [remove_bucket(s3, bucket, sleep) for bucket in kept["AWS::S3::Bucket"]]
    kms = session.client("kms")
    for key in kept["AWS::KMS::Key"]:
        kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
        lines.append(f"KMS key {key} scheduled for deletion in 7 days (the shortest wait KMS allows)")
    leftovers = cleanup.find_leftovers(session, load_deployment(session, stage, allow_none=True))
    cleanup.delete_leftovers(session.client("sagemaker"), leftovers)
    lines += [f"model {name} deleted" for name in leftovers.models]
    lines += [f"endpoint config {name} deleted" for name in leftovers.endpoint_configs]
    return lines + _delete_parameters(session.client("ssm"), stage)
