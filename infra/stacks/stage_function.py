"""A stage's own Lambda function: Python code from ``infra/functions/<name>``, a role of its own whose policy
holds the statements the function needs plus the stage key and its own log streams, and a log group under the
stage key. The batch pipeline's helpers (the filter packager, the session sharder) are made with it."""
from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import AppConfig
from infra.log_groups import log_streams_arn, stage_log_group
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import acknowledge_wildcards

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
RUNTIME = lambda_.Runtime.PYTHON_3_14


def stage_function(scope: Construct, config: AppConfig, storage: StorageStack, *, code: str, log_leaf: str,
                   role_description: str, description: str, statements: list[iam.PolicyStatement],
                   wildcards: dict[str, str], timeout: cdk.Duration, memory_mb: int,
                   ephemeral_storage: cdk.Size | None = None) -> lambda_.Function:
    """The function of ``infra/functions/<code>`` as ``scope``'s children Logs, Role, Policy and Function.

    ``statements`` are what the function itself needs; ``wildcards`` maps each of their resources that
    holds a wildcard to the reason cdk-nag is told. The function waits for its policy, so its first run
    (which a deploy may trigger) already has it.
    """
    log_group = stage_log_group(scope, "Logs", config, storage.key, log_leaf)
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                    description=f"GRU4Rec {config.stage}: {role_description}")
    streams = log_streams_arn(scope, log_group.log_group_name, "*")
    policy = iam.Policy(scope, "Policy", roles=[role], statements=[
        *statements,
        iam.PolicyStatement(sid="UseStageKey", actions=["kms:Decrypt", "kms:GenerateDataKey"],
                            resources=[storage.key.key_arn]),
        iam.PolicyStatement(sid="WriteLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[streams]),
    ])
    acknowledge_wildcards(policy, {
        **wildcards,
        streams: "Lambda names its log streams by date and instance; the function's own log group only.",
    })
    function = lambda_.Function(
        scope, "Function", runtime=RUNTIME, handler="index.handler",
        code=lambda_.Code.from_asset(str(FUNCTIONS / code), exclude=["__pycache__", "__init__.py"]),
        role=role, timeout=timeout, memory_size=memory_mb, ephemeral_storage_size=ephemeral_storage,
        log_group=log_group, description=f"GRU4Rec {config.stage}: {description}",
    )
    function.node.add_dependency(policy)
    return function
