"""The first model: a CDK file asset, copied into the data bucket under a ``.tar.gz`` key.

The asset's key keeps one extension (``<hash>.gz``), while ``ModelDataUrl``, the one way Batch Transform
and serverless endpoints take a model, "must point to a single gzip compressed tar archive (.tar.gz
suffix)" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ContainerDefinition.html). The
copy, ``initial-models/<initial_model_version>/model.tar.gz``, is made by an S3 CopyObject call when the
stack is created and whenever the version changes (a rebuilt tarball under the same version changes
nothing); earlier versions' copies stay, so a rollback to one still finds it.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import AppConfig
from infra.layout import INITIAL_MODEL_ARCHIVE, INITIAL_MODELS_PREFIX
from infra.log_groups import stage_log_group
from infra.nag import managed_policy_finding

# a model of a large catalogue is a few hundred MB; CopyObject copies up to 5 GB in one call
COPY_TIMEOUT = cdk.Duration.minutes(10)


class InitialModel(Construct):
    """``asset`` (the file as built), ``key`` / ``uri`` / ``object_arn`` (its .tar.gz copy) and ``copy`` (the copy's
    custom resource, which whatever reads the copy at deploy time depends on)."""

    def __init__(
        self, scope: Construct, construct_id: str, config: AppConfig, bucket: s3.IBucket, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(
            self, "Asset", path=config.initial_model_artifact,
            asset_hash=config.initial_model_version, asset_hash_type=cdk.AssetHashType.CUSTOM,
        )
        self.key = f"{INITIAL_MODELS_PREFIX}{config.initial_model_version}/{INITIAL_MODEL_ARCHIVE}"
        self.uri = bucket.s3_url_for_object(self.key)
        self.object_arn = bucket.arn_for_objects(self.key)
        call = cr.AwsSdkCall(
            service="S3", action="copyObject", physical_resource_id=cr.PhysicalResourceId.of(self.key),
            # the copy is encrypted by the bucket's default (the stage key); the asset carries no tags to copy
            parameters={"Bucket": bucket.bucket_name, "Key": self.key, "TaggingDirective": "REPLACE",
                        "CopySource": f"{self.asset.s3_bucket_name}/{self.asset.s3_object_key}"},
        )
        self.copy = cr.AwsCustomResource(
            self, "Copy", on_create=call, on_update=call, install_latest_aws_sdk=False, timeout=COPY_TIMEOUT,
            log_group=stage_log_group(self, "CopyLogs", config, key, "initial-model-copy"),
            policy=cr.AwsCustomResourcePolicy.from_statements([
                iam.PolicyStatement(sid="ReadAsset", actions=["s3:GetObject"],
                                    resources=[self.asset.bucket.arn_for_objects(self.asset.s3_object_key)]),
                iam.PolicyStatement(sid="WriteCopy", actions=["s3:PutObject"], resources=[self.object_arn]),
                iam.PolicyStatement(sid="UseStageKey", actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                    resources=[key.key_arn]),
            ]),
        )
        acknowledge_provider_role(self)


def acknowledge_provider_role(scope: Construct) -> None:
    """The stack's one AwsCustomResource function writes its logs through the Lambda basic execution policy."""
    provider = cdk.Stack.of(scope).node.find_child("AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", ""))
    cdk.Validations.of(provider).acknowledge(cdk.Acknowledgment(
        id=managed_policy_finding(scope, "service-role/AWSLambdaBasicExecutionRole"),
        reason="The CDK's AwsCustomResource function gets AWSLambdaBasicExecutionRole for its own logs; its "
               "calls are granted by the statements given to each resource, on named objects and keys only.",
    ))
