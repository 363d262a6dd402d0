"""How the endpoint moves to another model: one spelling of SageMaker's deployment guardrails for
CloudFormation's ``AWS::SageMaker::Endpoint`` and the SageMaker API's ``UpdateEndpoint`` (the training
pipeline, and ``python -m infra.ops rollback``, which reads it from the pipeline's definition).

Every update is blue/green: SageMaker starts a new fleet beside the old one, shifts traffic to it as
``rollout`` says (all at once, a canary share then the rest, or linear steps), keeps the old fleet for
a baking period of ``rollout_wait_minutes``, and rolls back to the old fleet on its own when one of the
stage's alarms fires meanwhile ("Auto-Rollback Configuration and Monitoring",
https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html).
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import AppConfig

# SageMaker's bound on a whole blue/green deployment (API_BlueGreenUpdatePolicy: 600-14400 s)
MAX_EXECUTION_TIMEOUT_SECONDS = 14400
ALARM_LEAVES = ("5xx", "model-latency", "model-errors")

# An update keeps what autoscaling and operators set on the variant (instance count and weight), while
# data capture follows the new configuration: RetainAllVariantProperties would keep DataCaptureConfig too
# (API_VariantProperty), so it is left out of what is retained.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateEndpoint.html
RETAINED_VARIANT_PROPERTIES = {
    "RetainAllVariantProperties": True,
    "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DataCaptureConfig"}],
}


def rollback_alarm_names(config: AppConfig) -> list[str]:
    """The endpoint's alarms (5xx errors, model latency, model errors) that roll a deployment back."""
    return [f"{config.endpoint_name}-{leaf}" for leaf in ALARM_LEAVES]


def deployment_config(config: AppConfig) -> dict:
    """``DeploymentConfig`` of every endpoint update: blue/green per ``rollout``, rolled back on the stage's alarms."""
    wait_seconds = config.rollout_wait_minutes * 60
    routing: dict = {"Type": config.rollout.upper(), "WaitIntervalInSeconds": wait_seconds}
    share = {"Type": "CAPACITY_PERCENT", "Value": config.rollout_traffic_percent}
    if config.rollout == "canary":
        routing["CanarySize"] = share
    elif config.rollout == "linear":
        routing["LinearStepSize"] = share
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": wait_seconds,
            "MaximumExecutionTimeoutInSeconds": MAX_EXECUTION_TIMEOUT_SECONDS,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in rollback_alarm_names(config)]},
    }



def read_rollback_alarms_statement(scope: Construct, config: AppConfig) -> iam.PolicyStatement:
    """``cloudwatch:DescribeAlarms`` on the rollback alarms, for the endpoint's execution role and every caller
    that creates or updates the endpoint: "Ensure that your IAM execution role has permission to perform the
    cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify" (the page cited above)."""
    stack = cdk.Stack.of(scope)
    alarms = [stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name,
                               arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME) for name in rollback_alarm_names(config)]
    return iam.PolicyStatement(sid="ReadRollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=alarms)
