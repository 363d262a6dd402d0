"""The Endpoint stack's model archive without a pointer: ``Custom::LiveModelData`` reads it from the endpoint.

The stack's model is replaced when anything it is built from changes (the image, the role, the container's
environment, network isolation). A replacement must serve the live model, the one the training pipeline,
rollback or A/B promote put on the endpoint since, never the first model again. The custom resource's
properties are those very inputs (``model``: the model's properties but its archive), so CloudFormation sends it
an Update, and it reads the endpoint again, exactly when the model could be replaced; otherwise ``Fn::GetAtt``
keeps the archive of its last read and the template leaves the model alone
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-update.html). On the stage's
first deploy there is no endpoint yet: the first model's archive. The function is
``infra/functions/live_model_data``.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import AppConfig
from infra.stacks.live_model import WILDCARD_REASON, live_model_arns
from infra.stacks.stage_function import stage_function
from infra.stacks.storage import StorageStack
from infra.stacks.workflow import sagemaker_arn

RESOURCE_TYPE = "Custom::LiveModelData"
ATTRIBUTE = "ModelDataUrl"
TIMEOUT = cdk.Duration.minutes(1)
MEMORY_MB = 256


class LiveModelData(Construct):
    """``model_data``: the archive the stack's model is built from. ``model``: the model's other properties."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, storage: StorageStack,
                 model: dict) -> None:
        super().__init__(scope, construct_id)
        configs, models = live_model_arns(self)
        self.function = stage_function(
            self, config, storage, code="live_model_data", log_leaf="live-model-data",
            role_description="reads the archive of the model the endpoint serves, for the Endpoint stack",
            description="the archive of the endpoint's live model (the first model before the endpoint exists)",
            statements=[
                iam.PolicyStatement(sid="ReadEndpoint", actions=["sagemaker:DescribeEndpoint"],
                                    resources=[sagemaker_arn(self, "endpoint", config.endpoint_name)]),
                iam.PolicyStatement(sid="ReadLiveModel", resources=[configs, models],
                                    actions=["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"]),
            ],
            wildcards={configs: WILDCARD_REASON, models: WILDCARD_REASON},
            timeout=TIMEOUT, memory_mb=MEMORY_MB,
        )
        self.resource = cdk.CustomResource(
            self, "Read", service_token=self.function.function_arn, resource_type=RESOURCE_TYPE,
            properties={"EndpointName": config.endpoint_name, "FirstModelData": storage.initial_model.uri,
                        "Model": model},
        )
        self.model_data = self.resource.get_att_string(ATTRIBUTE)
