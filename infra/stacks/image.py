"""Image: the stage's ECR repository and the images built from the repository's Dockerfile."""
from __future__ import annotations

import aws_cdk as cdk
import cdk_ecr_deployment as ecr_deployment
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import PROJECT_ROOT, AppConfig
from infra.nag import wildcard_resource_finding
from infra.stacks.promotion_access import share_images

BUILD_TARGETS = ("train", "serve")
GPU_TARGET = "train-gpu"
# tag prefix per target: `gpu-train-`, not `train-gpu-`, which the `train-` lifecycle rule would also match
TAG_PREFIXES = {"train": "train-", "serve": "serve-", GPU_TARGET: "gpu-train-"}


class ImageStack(cdk.Stack):
    """ECR repository with the ``train`` and ``serve`` targets of the Dockerfile, tagged ``<target>-<asset hash>``.

    ``image_uri`` is the ``train`` image (TensorFlow; it can also serve); ``serve_image_uri`` the
    slimmer ``serve`` image (ONNX Runtime) for the endpoint and Batch Transform, which start
    instances faster from a smaller image. With a GPU ``training_instance_type`` the ``train-gpu``
    target (Keras on JAX with CUDA wheels, several GB) is built too, tagged ``gpu-train-<hash>``;
    ``training_image_uri`` is the image training jobs run: ``train-gpu`` there, ``train`` otherwise.
    The CDK builds the images into its bootstrap repository; a copy step (cdk-ecr-deployment) puts
    them into this stage's repository so that the stage owns its images, scans them and expires old ones.
    """

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, **kwargs) -> None:
        super().__init__(
            scope, construct_id, description=f"GRU4Rec {config.stage}: ECR repository and container images", **kwargs
        )
        self.repository = self._repository(config)
        share_images(config, self.repository)
        self._copy_role = iam.Role(self, "ImageCopyRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                                   description="Copies this stage's images from the CDK asset repository into its own")
        self._copy_policy = self._image_copy_policy()
        uris = {target: self._publish(target) for target in _targets(config)}
        self.image_uri: str = uris["train"]
        self.serve_image_uri: str = uris["serve"]
        self.training_image_uri: str = uris.get(GPU_TARGET, self.image_uri)
        cdk.CfnOutput(
            self, "RepositoryUri", value=self.repository.repository_uri, description="ECR repository of this stage"
        )
        cdk.CfnOutput(self, "TrainImageUri", value=self.image_uri, description="Training image (train target)")
        cdk.CfnOutput(self, "ServeImageUri", value=self.serve_image_uri, description="Serving image (serve target)")
        if GPU_TARGET in uris:
            cdk.CfnOutput(self, "TrainGpuImageUri", value=uris[GPU_TARGET],
                          description="GPU training image (train-gpu target), run by the training jobs")

    def _repository(self, config: AppConfig) -> ecr.Repository:
        # AES256 rather than the stage's KMS key: ECR cannot change encryption after creation, the
        # image stack stays independent of storage, and SageMaker pulls need no key grant. Images
        # hold code and libraries, no data. Deleting the stack deletes the images
        # (CloudFormation's native EmptyOnDelete; no custom resource): they are rebuilt from the repo.
        return ecr.Repository(
            self,
            "Repository",
            repository_name=config.resource_prefix,
            image_scan_on_push=True,
            encryption=ecr.RepositoryEncryption.AES_256,
            image_tag_mutability=ecr.TagMutability.MUTABLE,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            empty_on_delete=True,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    rule_priority=1,
                    description="Drop untagged images after a day",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=cdk.Duration.days(1),
                ),
                *(
                    ecr.LifecycleRule(
                        rule_priority=2 + index,
                        description=f"Keep the last {config.image_keep_count} {target} images",
                        tag_status=ecr.TagStatus.TAGGED,
                        tag_prefix_list=[TAG_PREFIXES[target]],
                        max_image_count=config.image_keep_count,
                    )
                    for index, target in enumerate(_targets(config))
                ),
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
        policy = iam.Policy(
            self,
            "ImageCopyPolicy",
            roles=[self._copy_role],
            statements=[
                iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    sid="PushToStageRepository",
                    resources=[self.repository.repository_arn],
                    actions=[
                        *_PULL_ACTIONS,
                        "ecr:InitiateLayerUpload",
                        "ecr:UploadLayerPart",
                        "ecr:CompleteLayerUpload",
                        "ecr:PutImage",
                    ],
                ),
                iam.PolicyStatement(
                    sid="WriteFunctionLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[function_log_streams],
                ),
            ],
        )
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
        name = _construct_name(target)
        asset = ecr_assets.DockerImageAsset(
            self, f"{name}Asset", directory=str(PROJECT_ROOT), target=target,
            platform=ecr_assets.Platform.LINUX_AMD64,
            display_name=f"gru4rec {target} image",
        )
        # both assets live in the CDK's asset repository: the policy keeps one copy of this statement
        self._copy_policy.add_statements(
            iam.PolicyStatement(actions=list(_PULL_ACTIONS), resources=[asset.repository.repository_arn])
        )
        image_uri = f"{self.repository.repository_uri}:{TAG_PREFIXES[target]}{asset.asset_hash}"
        copy = ecr_deployment.ECRDeployment(
            self, f"{name}ImageCopy", role=self._copy_role.without_policy_updates(), memory_limit=COPY_MEMORY_MB,
            src=ecr_deployment.DockerImageName(asset.image_uri), dest=ecr_deployment.DockerImageName(image_uri),
        )
        copy.node.add_dependency(self._copy_policy)
        return image_uri


def _targets(config: AppConfig) -> tuple[str, ...]:
    """The Dockerfile targets this stage builds: the GPU image only where training runs on a GPU."""
    return BUILD_TARGETS + ((GPU_TARGET,) if config.training_on_gpu else ())


def _construct_name(target: str) -> str:
    """``train`` -> ``Train``, ``train-gpu`` -> ``TrainGpu`` (the existing ids stay as they were)."""
    return "".join(part.capitalize() for part in target.split("-"))


# The copy function streams each layer through the function's memory; its default (512 MB) is too little for the
# GPU image's multi-GB layers. Lambda allows up to 10,240 MB
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
COPY_MEMORY_MB = 4096
_PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")


def pull_image_statements(image: ImageStack) -> list[iam.PolicyStatement]:
    """What a SageMaker execution role needs to pull this stage's images (the login token takes only '*')."""
    return [
        iam.PolicyStatement(sid="PullImage", resources=[image.repository.repository_arn], actions=list(_PULL_ACTIONS)),
        iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
    ]
