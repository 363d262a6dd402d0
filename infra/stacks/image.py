"""Image: the stage's ECR repository and the two images built from the repository's Dockerfile."""
from __future__ import annotations

import aws_cdk as cdk
import cdk_ecr_deployment as ecr_deployment
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import PROJECT_ROOT, AppConfig
from infra.nag import wildcard_resource_finding

BUILD_TARGETS = ("train", "serve")


class ImageStack(cdk.Stack):
    """ECR repository with the ``train`` and ``serve`` targets of the Dockerfile, tagged ``<target>-<asset hash>``.

    ``image_uri`` is the ``train`` image (TensorFlow; it can also serve) for training jobs;
    ``serve_image_uri`` the slimmer ``serve`` image (ONNX Runtime) for the endpoint and Batch
    Transform, which start instances faster from a smaller image. The CDK builds both into its
    bootstrap repository; a copy step (cdk-ecr-deployment) puts them into this stage's repository so
    that the stage owns its images, scans them and expires old ones.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"GRU4Rec {config.stage}: ECR repository and container images", **kwargs)
        self.repository = self._repository(config)
        self._copy_role = iam.Role(self, "ImageCopyRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                                   description="Copies this stage's images from the CDK asset repository into its own")
        self._copy_policy = self._image_copy_policy()
        uris = {target: self._publish(target) for target in BUILD_TARGETS}
        self.image_uri: str = uris["train"]
        self.serve_image_uri: str = uris["serve"]
        cdk.CfnOutput(self, "RepositoryUri", value=self.repository.repository_uri, description="ECR repository of this stage")
        cdk.CfnOutput(self, "TrainImageUri", value=self.image_uri, description="Training image (train target)")
        cdk.CfnOutput(self, "ServeImageUri", value=self.serve_image_uri, description="Serving image (serve target)")

    def _repository(self, config: AppConfig) -> ecr.Repository:
        # AES256 rather than the stage's KMS key: ECR cannot change encryption after creation, the
        # image stack stays independent of storage, and SageMaker pulls need no key grant. Images
        # hold code and libraries, no data. Deleting the stack deletes the images
        # (CloudFormation's native EmptyOnDelete; no custom resource): they are rebuilt from the repo.
        return ecr.Repository(
            self, "Repository", repository_name=config.resource_prefix, image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.AES_256, image_tag_mutability=ecr.TagMutability.MUTABLE,
            removal_policy=cdk.RemovalPolicy.DESTROY, empty_on_delete=True,
            lifecycle_rules=[
                ecr.LifecycleRule(rule_priority=1, description="Drop untagged images after a day",
                                  tag_status=ecr.TagStatus.UNTAGGED, max_image_age=cdk.Duration.days(1)),
                *(ecr.LifecycleRule(rule_priority=2 + index, description=f"Keep the last {config.image_keep_count} {target} images",
                                    tag_status=ecr.TagStatus.TAGGED, tag_prefix_list=[f"{target}-"],
                                    max_image_count=config.image_keep_count)
                  for index, target in enumerate(BUILD_TARGETS)),
            ],
        )

    def _image_copy_policy(self) -> iam.Policy:
        """Rights of the copy function (cdk-ecr-deployment): push to this repository, write its own logs.

        The construct would grant its function push rights on every repository of the account; it
        gets an immutable role instead, and this policy. Pull rights on the asset repository are
        added per image in ``_publish``.
        """
        function_log_streams = self.format_arn(
            service="logs", resource="log-group", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            resource_name=f"/aws/lambda/{self.stack_name}-*:log-stream:*",
        )
        policy = iam.Policy(self, "ImageCopyPolicy", roles=[self._copy_role], statements=[
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(sid="PushToStageRepository", resources=[self.repository.repository_arn], actions=[
                *_PULL_ACTIONS, "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
            ]),
            iam.PolicyStatement(sid="WriteFunctionLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[function_log_streams]),
        ])
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-IAM5[Resource::*]",
                               reason="Only ecr:GetAuthorizationToken uses '*': it has no resource-level permissions."),
            cdk.Acknowledgment(
                id=wildcard_resource_finding(self, function_log_streams),
                reason="The copy function's name is generated by CloudFormation from this stack's name; "
                       "its log streams are named by Lambda.",
            ),
        )
        return policy

    def _publish(self, target: str) -> str:
        """Build ``target`` as an image asset, copy it into the repository; its URI there."""
        asset = ecr_assets.DockerImageAsset(
            self, f"{target.capitalize()}Asset", directory=str(PROJECT_ROOT), target=target,
            platform=ecr_assets.Platform.LINUX_AMD64,
            display_name=f"gru4rec {target} image",
        )
        # both assets live in the CDK's asset repository: the policy keeps one copy of this statement
        self._copy_policy.add_statements(iam.PolicyStatement(actions=list(_PULL_ACTIONS), resources=[asset.repository.repository_arn]))
        image_uri = f"{self.repository.repository_uri}:{target}-{asset.asset_hash}"
        copy = ecr_deployment.ECRDeployment(
            self, f"{target.capitalize()}ImageCopy", role=self._copy_role.without_policy_updates(),
            src=ecr_deployment.DockerImageName(asset.image_uri), dest=ecr_deployment.DockerImageName(image_uri),
        )
        copy.node.add_dependency(self._copy_policy)
        return image_uri


_PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")


def pull_image_statements(image: ImageStack) -> list[iam.PolicyStatement]:
    """What a SageMaker execution role needs to pull this stage's images (the login token takes only '*')."""
    return [
        iam.PolicyStatement(sid="PullImage", resources=[image.repository.repository_arn], actions=list(_PULL_ACTIONS)),
        iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
    ]
