"""Storage: the stage's KMS key, the data bucket, its access-log bucket, the first model and the model registry."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import AppConfig
from infra.layout import (
    ATHENA_RESULTS_PREFIX,
    BATCH_MANIFESTS_PREFIX,
    BATCH_MODELS_EXPIRATION_DAYS,
    BATCH_MODELS_PREFIX,
    BATCH_SHARDS_PREFIX,
    CAPTURE_PREFIX,
    CHECKPOINTS_PREFIX,
    GROUPED_SESSIONS_PREFIX,
    INCOMING_EVENTS_PREFIX,
    INCOMING_SESSIONS_PREFIX,
    SCORED_SESSIONS_PREFIX,
)
from infra.registry import ModelRegistry
from infra.stacks.initial_model import InitialModel
from infra.stacks.promotion_access import share_group, share_models

# the encryption context key SNS sends with its KMS requests for an encrypted topic
SNS_TOPIC_CONTEXT = "kms:EncryptionContext:aws:sns:topicArn"


class StorageStack(cdk.Stack):
    """KMS key, data bucket and access-log bucket, the first model and the stage's model package group.

    ``key`` encrypts the data bucket, the endpoint's volumes and data capture, and the log groups and
    topics of the other stacks. ``initial_model`` is the first model.tar.gz, uploaded as a file asset
    whose hash is fixed by ``initial_model_version`` (a rebuilt tarball changes nothing) and copied to a
    .tar.gz key (:mod:`infra.stacks.initial_model`), which the Endpoint stack serves until a model of the
    registry replaces it. ``registry`` (:mod:`infra.registry`) is the record of the stage's models.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, **kwargs) -> None:
        super().__init__(
            scope,
            construct_id,
            description=f"GRU4Rec {config.stage}: KMS key, data and log buckets, model registry",
            **kwargs,
        )
        self.key = self._key(config)
        self.log_bucket = self._log_bucket(config)
        self.bucket = self._data_bucket(config)
        self.initial_model = InitialModel(self, "InitialModel", config, self.bucket, self.key)
        self.registry = ModelRegistry(self, "ModelRegistry", config)
        share_group(config, self.registry.group,
                    self.format_arn(service="sagemaker", resource="model-package-group",
                                    resource_name=self.registry.group_name),
                    self.registry.package_arn_pattern(self))
        share_models(config, self.bucket, self.key)
        self.bucket_arn_export_name = f"{config.resource_prefix}-data-bucket-arn"
        self._bucket_arn_import = self.export_value(self.bucket.bucket_arn, name=self.bucket_arn_export_name)
        cdk.CfnOutput(self, "DataBucketName", value=self.bucket.bucket_name, description="Data bucket of this stage")

    @property
    def bucket_arn(self) -> str:
        """The data bucket's ARN through the same named export as :meth:`objects_arn`, for other stacks' policies."""
        return self._bucket_arn_import

    def objects_arn(self, prefix: str) -> str:
        """ARN pattern of the data bucket's objects under ``prefix`` (e.g. ``models/``), for other stacks' IAM policies.

        It imports the bucket ARN through a named export, so it resolves the same while the app is
        built and when cdk-nag checks it: ``infra.nag.wildcard_resource_finding`` gives the finding's id.
        """
        return f"{self._bucket_arn_import}/{prefix}*"

    def _key(self, config: AppConfig) -> kms.Key:
        key = kms.Key(
            self, "Key", alias=f"alias/{config.resource_prefix}", enable_key_rotation=True,
            description=f"GRU4Rec {config.stage}: data bucket, endpoint storage and data capture, logs, topics",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        key.add_to_resource_policy(self._logs_may_use_key(config))
        key.add_to_resource_policy(self._alarms_may_publish(config))
        if config.monthly_budget_usd:
            key.add_to_resource_policy(self._budgets_may_publish(config))
        return key

    def _budgets_may_publish(self, config: AppConfig) -> iam.PolicyStatement:
        """AWS Budgets publishes the stage budget's notifications to the endpoint's alarm topic, which this key
        encrypts: a service publishing to an encrypted topic needs a data key from its key (the SNS page cited
        in :meth:`_alarms_may_publish`), and Budgets publishes as budgets.amazonaws.com. Only the encryption
        context that SNS itself sends ties it down: the
        topic's policy limits publishing to this account's budgets, and a source condition that the
        service's key request might not carry would drop the notifications without an error."""
        topic = self.format_arn(service="sns", resource=config.topic_name("endpoint-alarms"),
                                arn_format=cdk.ArnFormat.NO_RESOURCE_NAME)
        return iam.PolicyStatement(
            sid="BudgetsPublishToStageTopic", principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=["*"],
            conditions={"StringEquals": {SNS_TOPIC_CONTEXT: topic}},
        )

    def _alarms_may_publish(self, config: AppConfig) -> iam.PolicyStatement:
        """CloudWatch alarms publish to the stage's topics, which this key encrypts; only this account's
        alarms, only for the stage's topics (``gru4rec-<stage>-*``).

        The conditions are those AWS documents for event sources publishing to encrypted topics
        (Amazon SNS, "Enable compatibility between event sources from AWS services and encrypted
        topics": https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services):
        ``aws:SourceArn`` (the alarm) and the encryption context ``aws:sns:topicArn``, which SNS sends
        with each data key request. A condition a service's request does not carry would drop its
        notifications without an error: the same page says EventBridge's requests cannot be tied by
        ``aws:SourceArn`` / ``aws:SourceAccount``, so the stage's EventBridge rules publish with an IAM
        role of their own (``infra.stacks.workflow.notify_abnormal_ends``) and the key names no
        events.amazonaws.com principal.
        """
        topics = self.format_arn(
            service="sns", resource=config.topic_name("*"), arn_format=cdk.ArnFormat.NO_RESOURCE_NAME
        )
        alarms = self.format_arn(service="cloudwatch", resource="alarm", resource_name="*",
                                 arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        return iam.PolicyStatement(
            sid="AlarmsPublishToStageTopics", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=["*"],
            # the encryption context keys are strings (the Service Authorization Reference): a String operator
            conditions={"ArnLike": {"aws:SourceArn": alarms}, "StringLike": {SNS_TOPIC_CONTEXT: topics}},
        )

    def _logs_may_use_key(self, config: AppConfig) -> iam.PolicyStatement:
        """CloudWatch Logs may encrypt this stage's log groups (``/gru4rec/<stage>/...``, Step Functions' vended
        logs, the endpoint's ``/aws/sagemaker/Endpoints/<endpoint>`` and the firewall's
        ``aws-waf-logs-gru4rec-<stage>``)."""

        def log_group_arn(name_pattern: str) -> str:
            return self.format_arn(service="logs", resource="log-group", resource_name=name_pattern,
                                   arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)

        # kms:DescribeKey carries no encryption context, so under this condition it would never be allowed
        return iam.PolicyStatement(
            sid="CloudWatchLogsEncryptsStageLogGroups",
            principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
            actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                     "kms:GenerateDataKeyWithoutPlaintext"],
            resources=["*"],
            # the encryption context keys are strings (the Service Authorization Reference): String operators
            conditions={"StringLike": {"kms:EncryptionContext:aws:logs:arn": [
                log_group_arn(config.log_group_name("*")),
                log_group_arn(f"/aws/vendedlogs/states/{config.resource_prefix}-*"),
                log_group_arn(config.endpoint_log_group_name),
                log_group_arn(config.waf_log_group_name),
            ]}},
        )

    def _log_bucket(self, config: AppConfig) -> s3.Bucket:
        # S3 server access logging delivers only to a target bucket with SSE-S3 default encryption,
        # not SSE-KMS, so this bucket cannot use the stage's key.
        bucket = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True, minimum_tls_version=1.2,
            versioned=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, removal_policy=cdk.RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(
                id="ExpireAccessLogs", expiration=cdk.Duration.days(config.access_log_expiration_days),
                noncurrent_version_expiration=cdk.Duration.days(config.noncurrent_version_expiration_days),
            )],
        )
        cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-S1",
            reason="This is the server access log target; logging its own accesses would log the log deliveries.",
        ))
        return bucket

    def _data_bucket(self, config: AppConfig) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.RETAIN,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                *(
                    s3.LifecycleRule(id=rule_id, prefix=prefix, expiration=cdk.Duration.days(days))
                    for rule_id, prefix, days in _expiring_prefixes(config)
                ),
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=cdk.Duration.days(config.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                ),
                # an expired current version leaves a delete marker, alone once its noncurrent versions expire:
                # "Indicates whether Amazon S3 will remove a delete marker with no noncurrent versions ... This cannot
                # be specified with Days or Date"
                # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_LifecycleExpiration.html)
                s3.LifecycleRule(id="RemoveExpiredDeleteMarkers", expired_object_delete_marker=True),
            ],
        )
        # S3 sends object events to EventBridge natively; the L2 ``event_bridge_enabled`` would add a
        # Lambda-backed custom resource to do the same.
        cfn_bucket: s3.CfnBucket = bucket.node.default_child
        cfn_bucket.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        return bucket


def _expiring_prefixes(config: AppConfig) -> list[tuple[str, str, int]]:
    """(rule id, key prefix, days) of the data that has no use once it is old: the rest (training data,
    models) is kept, and only its old versions expire."""
    return [
        ("ExpireIncomingSessions", INCOMING_SESSIONS_PREFIX, config.incoming_expiration_days),
        ("ExpireScoredSessions", SCORED_SESSIONS_PREFIX, config.scored_expiration_days),
        ("ExpireDataCapture", CAPTURE_PREFIX, config.capture_expiration_days),
        ("ExpireCheckpoints", CHECKPOINTS_PREFIX, config.checkpoint_expiration_days),
        ("ExpireBatchModels", BATCH_MODELS_PREFIX, BATCH_MODELS_EXPIRATION_DAYS),
        ("ExpireBatchManifests", BATCH_MANIFESTS_PREFIX, BATCH_MODELS_EXPIRATION_DAYS),
        ("ExpireBatchShards", BATCH_SHARDS_PREFIX, BATCH_MODELS_EXPIRATION_DAYS),
        ("ExpireIncomingEvents", INCOMING_EVENTS_PREFIX, config.events_expiration_days),
        ("ExpireGroupedSessions", GROUPED_SESSIONS_PREFIX, config.grouped_expiration_days),
        ("ExpireAthenaResults", ATHENA_RESULTS_PREFIX, config.athena_results_expiration_days),
    ]
