"""The stage's record of models: a SageMaker Model Registry group, and the version each trained model becomes.

Every model the training pipeline trains is registered in the group ``gru4rec-<stage>``
(``AppConfig.model_package_group_name``) with the gate's verdict as its approval status: ``Rejected`` below the
floor or the live model, else ``Approved`` (``approval=auto``) or ``PendingManualApproval`` (``approval=manual``).
A version carries the serve image and the archive (its inference specification), the evaluation report
(model quality statistics, a JSON object in the bucket beside the archive) and the run's metadata.

API: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateModelPackage.html (a versioned package
names its group, never a ``ModelPackageName``; ``ModelApprovalStatus`` may be set at creation;
``CustomerMetadataProperties``: at most 50 entries, keys 1-128 and values 1-256 characters of letters, digits,
spaces and ``_.:/=+-@``). Group: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-sagemaker-modelpackagegroup.html
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.config import AppConfig
from infra.log_groups import stage_log_group
from infra.stacks.initial_model import acknowledge_provider_role
from infra.stacks.workflow import acknowledge_wildcards

APPROVED = "Approved"
PENDING = "PendingManualApproval"
REJECTED = "Rejected"
# what the container answers and reads (inference.contracts): JSON for the API, JSON lines for Batch Transform
CONTENT_TYPES = ["application/json", "application/jsonlines"]
EVALUATION_REPORT = "evaluation.json"
EVALUATION_CONTENT_TYPE = "application/json"
# the report's one group of metrics, in the "<kind>_metrics": {name: {"value": v}} shape of SageMaker's model
# quality statistics (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html)
METRICS_GROUP = "recommendation_metrics"
# metadata of a version that was put live when it was registered (by its training run, or by the first deploy): the
# registry's approval event of it rolls nothing out
ROLLED_OUT_BY = "rolled-out-by"
FIRST_DEPLOY = "cdk-deploy"
# CustomerMetadataProperties values: what the API's pattern allows, and its limits
METADATA_VALUE_MAX = 256
METADATA_ENTRIES_MAX = 50
METADATA_DISALLOWED = r"/[^A-Za-z0-9 _.:\/=+\-@]/"


def approval_on_pass(config: AppConfig) -> str:
    """The status a model that passed the gate is registered with on this stage."""
    return APPROVED if config.approval_mode == "auto" else PENDING


def inference_specification(config: AppConfig, image_uri: str, model_data: str) -> dict:
    """The version's one container (the serve image on the archive), what it answers, and where it may run: the
    stage's endpoint instance type (none for a serverless endpoint, which names no instance type) and its
    Batch Transform instance type."""
    specification = {
        "Containers": [{"Image": image_uri, "ModelDataUrl": model_data}],
        "SupportedContentTypes": CONTENT_TYPES,
        "SupportedResponseMIMETypes": CONTENT_TYPES,
        "SupportedTransformInstanceTypes": [config.transform_instance_type],
    }
    if not config.serverless:
        specification["SupportedRealtimeInferenceInstanceTypes"] = [config.endpoint_instance_type]
    return specification


def metadata_value(expression: str) -> str:
    """JSONata: ``expression`` as a CustomerMetadataProperties value the API accepts (other characters as ``_``,
    at most 256 of them, ``-`` for an empty or missing value)."""
    return (
        f"($value := $string({expression}); $value = '' ? '-' : "
        f"$substring($replace($value, {METADATA_DISALLOWED}, '_'), 0, {METADATA_VALUE_MAX}))"
    )


class ModelRegistry(Construct):
    """The stage's model package group. Retained with the stack's deletion: it is the history of the stage's
    models (CloudFormation could not delete a group that still holds versions anyway)."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig) -> None:
        super().__init__(scope, construct_id)
        self.group_name = config.model_package_group_name
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=self.group_name,
            model_package_group_description=f"GRU4Rec {config.stage}: every model the training pipeline trained, "
            f"with its metrics and the quality gate's verdict",
            tags=[cdk.CfnTag(key="project", value="gru4rec"), cdk.CfnTag(key="stage", value=config.stage)],
        )
        self.group.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        self.group_arn = self.group.attr_model_package_group_arn

    def package_arn_pattern(self, scope: cdk.Stack) -> str:
        """The ARNs of the group's versions (``model-package/<group>/<n>``), for IAM."""
        return scope.format_arn(service="sagemaker", resource="model-package", resource_name=f"{self.group_name}/*")


class FirstModelVersion(Construct):
    """The first model registered as the group's first version, Approved, when the stack is created: the history
    of versions starts at the first deploy. CloudFormation puts that model live itself, so the version says so
    (``rolled-out-by: cdk-deploy``) and its approval event rolls nothing out. Created once (no update call: a new
    ``initial_model_version`` changes the seed of new stages, not the record) and never deleted with the stack."""

    def __init__(
        self, scope: Construct, construct_id: str, config: AppConfig, image_uri: str, model_data: str, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        group = config.model_package_group_name
        versions = stack.format_arn(service="sagemaker", resource="model-package", resource_name=f"{group}/*")
        register = cr.AwsSdkCall(
            service="SageMaker",
            action="createModelPackage",
            physical_resource_id=cr.PhysicalResourceId.from_response("ModelPackageArn"),
            parameters={
                "ModelPackageGroupName": group,
                "ModelApprovalStatus": APPROVED,
                "ModelPackageDescription": f"the first model ({config.initial_model_version}), put live by the "
                "stage's first deploy; no quality gate judged it",
                "InferenceSpecification": inference_specification(config, image_uri, model_data),
                "CustomerMetadataProperties": {
                    "model-version": config.initial_model_version,
                    ROLLED_OUT_BY: FIRST_DEPLOY,
                },
                "Tags": [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": config.stage}],
            },
        )
        self.resource = cr.AwsCustomResource(
            self,
            "Register",
            on_create=register,
            install_latest_aws_sdk=False,
            log_group=stage_log_group(self, "RegisterLogs", config, key, "first-model-version"),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        sid="RegisterFirstModel",
                        actions=["sagemaker:CreateModelPackage"],
                        resources=[
                            stack.format_arn(service="sagemaker", resource="model-package-group", resource_name=group),
                            versions,
                        ],
                    ),
                    iam.PolicyStatement(
                        sid="TagFirstModelVersion", actions=["sagemaker:AddTags"], resources=[versions]
                    ),
                ]
            ),
        )
        self.arn = self.resource.get_response_field("ModelPackageArn")
        acknowledge_provider_role(self)
        acknowledge_wildcards(
            self.resource,
            {versions: f"Versions of {group} are numbered by SageMaker as they are registered: this group's only."},
        )
