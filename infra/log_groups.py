"""Log groups a stage owns (encrypted with the stage's key) and the ARNs IAM matches for log groups and streams."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import AppConfig


def stage_log_group(scope: Construct, construct_id: str, config: AppConfig, key: kms.IKey, leaf: str) -> logs.LogGroup:
    """Log group ``/gru4rec/<stage>/<leaf>`` (see :func:`owned_log_group`).

    The storage stack's key policy lets CloudWatch Logs use the key for log groups under this prefix.
    """
    return owned_log_group(scope, construct_id, config, key, config.log_group_name(leaf))


def owned_log_group(scope: Construct, construct_id: str, config: AppConfig, key: kms.IKey, name: str) -> logs.LogGroup:
    """Log group ``name``, KMS-encrypted, kept ``log_retention_days``, deleted with its stack (its name is fixed: a
    kept group would block the next deploy of the stage). The key policy must let CloudWatch Logs use ``key`` for it."""
    group = logs.LogGroup(scope, construct_id, log_group_name=name, encryption_key=key,
                          removal_policy=cdk.RemovalPolicy.DESTROY)
    # RetentionDays has no member lookup by day count; the config has validated the number
    group.node.default_child.add_property_override("RetentionInDays", config.log_retention_days)
    return group


def log_group_arn(scope: Construct, name: str) -> str:
    """The ARN IAM matches for actions on the log group ``name``: ``arn:...:log-group:<name>:*``.

    CloudWatch Logs: "Use the second version, with the trailing :*, to refer to the ARN when
    specifying permissions in IAM policies" for every action but TagResource, UntagResource and
    ListTagsForResource; it also covers the group's log streams.
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/iam-access-control-overview-cwl.html
    """
    return _log_group_base(scope, name) + ":*"


def log_streams_arn(scope: Construct, name: str, stream_pattern: str) -> str:
    """ARN pattern of the streams ``stream_pattern`` of the log group ``name`` (CreateLogStream, PutLogEvents)."""
    return f"{_log_group_base(scope, name)}:log-stream:{stream_pattern}"


def _log_group_base(scope: Construct, name: str) -> str:
    return cdk.Stack.of(scope).format_arn(service="logs", resource="log-group", resource_name=name,
                                          arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
