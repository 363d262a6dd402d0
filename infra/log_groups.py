"""Log groups of a stage: named under ``/gru4rec/<stage>/``, encrypted with the stage's key."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import AppConfig


def stage_log_group(scope: Construct, construct_id: str, config: AppConfig, key: kms.IKey, leaf: str) -> logs.LogGroup:
    """Log group ``/gru4rec/<stage>/<leaf>``, KMS-encrypted, kept ``log_retention_days``, deleted with its stack (its name is fixed: a kept group would block the next deploy of the stage).

    The storage stack's key policy lets CloudWatch Logs use the key for log groups under this prefix only.
    """
    group = logs.LogGroup(scope, construct_id, log_group_name=config.log_group_name(leaf), encryption_key=key,
                          removal_policy=cdk.RemovalPolicy.DESTROY)
    # RetentionDays has no member lookup by day count; the config has validated the number
    group.node.default_child.add_property_override("RetentionInDays", config.log_retention_days)
    return group
