"""The live model as a pipeline reads it: the model the stage's endpoint serves, not a record kept beside it.

DescribeEndpoint names the endpoint configuration, whose live variant (``AllTraffic``; during an A/B test the
challenger is the other one) names the model, whose container names the model archive (``$modelData``).
Whoever puts a model live (the training pipeline, rollback, A/B promote, cdk deploy) moves the endpoint, and
with it what the batch pipelines read.
"""
from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.config import AppConfig
from infra.layout import LIVE_VARIANT
from infra.stacks.workflow import sagemaker_arn

FIND_CONFIG, FIND_MODEL, READ_MODEL = "Find live endpoint config", "Find live model", "Read live model"
STATES = (FIND_CONFIG, FIND_MODEL, READ_MODEL)
# why the two Describe grants name every configuration and model of the account and region
WILDCARD_REASON = ("Read-only Describe of the endpoint's configuration and model, whose names CloudFormation, the "
                   "training pipeline, rollback and A/B promote choose: the live model is whichever the endpoint "
                   "serves.")


def live_model_arns(scope: Construct) -> tuple[str, str]:
    """The endpoint configurations and the models the read may describe (for the wildcard acknowledgement)."""
    return sagemaker_arn(scope, "endpoint-config", "*"), sagemaker_arn(scope, "model", "*")


# the live model's archive, in the last state's assignment
MODEL_DATA_URL = "$states.result.PrimaryContainer.ModelDataUrl"


def read_live_model(scope: Construct, config: AppConfig, assign: dict[str, str] | None = None,
                    ) -> tuple[list[tasks.CallAwsService], sfn.Chain]:
    """The three states that assign ``$modelData``, the archive of the endpoint's live model (or ``assign``, made
    of ``MODEL_DATA_URL``), as a chain, and the states for the caller's Catch."""
    configs, models = live_model_arns(scope)
    endpoint = tasks.CallAwsService.jsonata(
        scope, FIND_CONFIG, service="sagemaker", action="describeEndpoint",
        iam_resources=[sagemaker_arn(scope, "endpoint", config.endpoint_name)],
        parameters={"EndpointName": config.endpoint_name},
        assign={"liveConfig": "{% $states.result.EndpointConfigName %}"},
    )
    variant = tasks.CallAwsService.jsonata(
        scope, FIND_MODEL, service="sagemaker", action="describeEndpointConfig", iam_resources=[configs],
        parameters={"EndpointConfigName": "{% $liveConfig %}"},
        assign={"liveModel": f"{{% $states.result.ProductionVariants[VariantName = '{LIVE_VARIANT}'].ModelName %}}"},
    )
    model = tasks.CallAwsService.jsonata(
        scope, READ_MODEL, service="sagemaker", action="describeModel", iam_resources=[models],
        parameters={"ModelName": "{% $liveModel %}"},
        assign=assign or {"modelData": f"{{% {MODEL_DATA_URL} %}}"},
    )
    return [endpoint, variant, model], sfn.Chain.start(endpoint).next(variant).next(model)
