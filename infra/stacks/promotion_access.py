"""Cross-account promotion: what a source stage shares with the accounts its versions are promoted to, and what a
target stage's models may read of its source account.

A version promoted across accounts (``infra.ops promote``, run in the target account) is registered in the target's
group with the source's archive and image (by digest): nothing is copied, the target's models read the source's
objects where they are. Both sides must allow it (cross-account access needs the resource's policy and the caller's
identity policy: https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies-cross-account-resource-access.html).

Source (``promotion_target_accounts``):
- the model package group's resource policy (``ModelPackageGroupPolicy``,
  https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-sagemaker-modelpackagegroup.html):
  the target accounts may describe the group and list and describe its versions (the promotion reads the version;
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-registry-ram.html), and nothing more: they neither approve
  nor change a version of the source;
- the data bucket's policy: read ``models/*`` (archives and evaluation reports), nothing else;
- the stage key's policy: decrypt, only through S3 in this region (``kms:ViaService``), the bucket's objects being
  encrypted with it (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html);
- the image repository's policy: pull (``ecr:BatchGetImage``, ``ecr:GetDownloadUrlForLayer``,
  ``ecr:BatchCheckLayerAvailability``) and ``ecr:DescribeImages`` (the promotion checks the digest). The repository
  is AES256-encrypted: no key grant
  (https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html).

Target (``promotion_source_account``): its models' execution role may read ``models/*`` objects of buckets the
source account owns (``s3:ResourceAccount``), decrypt with that account's keys through S3 only, and pull from its
``gru4rec-*`` repositories; Batch Transform's role and the filter packager's, which read the live model's archive
(and run the stage's own image), may read and decrypt the same.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker

from infra.config import AppConfig
from infra.layout import MODELS_PREFIX
from infra.nag import wildcard_resource_finding

GROUP_READ_ACTIONS = ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage",
                      "sagemaker:ListModelPackages"]
PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
# every stage's repository is named gru4rec-<stage> (``AppConfig.resource_prefix``)
REPOSITORY_PATTERN = "gru4rec-*"


def _accounts(config: AppConfig) -> list[iam.AccountPrincipal]:
    return [iam.AccountPrincipal(account) for account in config.promotion_targets]


def share_group(config: AppConfig, group: sagemaker.CfnModelPackageGroup, group_arn: str, versions_arn: str) -> None:
    """The group's resource policy: the target accounts may read the group and its versions."""
    if not config.promotion_targets:
        return
    group.model_package_group_policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PromotionTargetsReadVersions", "Effect": "Allow",
        "Principal": {"AWS": [f"arn:{cdk.Aws.PARTITION}:iam::{account}:root" for account in config.promotion_targets]},
        "Action": GROUP_READ_ACTIONS, "Resource": [group_arn, versions_arn],
    }]}


def share_models(config: AppConfig, bucket: s3.IBucket, key: kms.IKey) -> None:
    """The bucket's and the key's policies: the target accounts may read the archives and reports under ``models/``."""
    if not config.promotion_targets:
        return
    bucket.add_to_resource_policy(iam.PolicyStatement(
        sid="PromotionTargetsReadModels", principals=_accounts(config), actions=["s3:GetObject"],
        resources=[bucket.arn_for_objects(f"{MODELS_PREFIX}*")]))
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="PromotionTargetsDecryptModels", principals=_accounts(config), actions=["kms:Decrypt"], resources=["*"],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}}))


def share_images(config: AppConfig, repository: ecr.IRepository) -> None:
    """The repository's policy: the target accounts may pull its images and check their digests."""
    if not config.promotion_targets:
        return
    repository.add_to_resource_policy(iam.PolicyStatement(
        sid="PromotionTargetsPullImages", principals=_accounts(config), actions=[*PULL_ACTIONS, "ecr:DescribeImages"]))


def read_source_statements(config: AppConfig, scope: cdk.Stack,
                           pull_images: bool = True) -> list[iam.PolicyStatement]:
    """A target's role that reads model archives (the endpoint's models, Batch Transform's, the filter packager):
    read the source account's models and decrypt them through S3; pull its images with ``pull_images`` (the models
    of a version run its image)."""
    if not config.promotion_source_account:
        return []
    statements = [
        iam.PolicyStatement(sid="ReadSourceAccountModels", actions=["s3:GetObject"], resources=[_source_models()],
                            conditions={"StringEquals": {"s3:ResourceAccount": config.promotion_source_account}}),
        iam.PolicyStatement(sid="DecryptSourceAccountModels", actions=["kms:Decrypt"],
                            resources=[_source_keys(config, scope)],
                            conditions={"StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}}),
    ]
    if pull_images:
        statements.append(iam.PolicyStatement(sid="PullSourceAccountImages", actions=PULL_ACTIONS,
                                              resources=[_source_repositories(config, scope)]))
    return statements


def source_read_reasons(config: AppConfig, scope: cdk.Stack, pull_images: bool = True) -> dict[str, str]:
    """Why each ARN pattern of :func:`read_source_statements` is as narrow as it can be (for cdk-nag's IAM5)."""
    if not config.promotion_source_account:
        return {}
    reasons = {
        _source_models(): "The source account's bucket is named by CloudFormation there: the grant is limited to "
                          "models/ objects of buckets that account owns (s3:ResourceAccount), read only.",
        _source_keys(config, scope): "The source account's stage key, unknown here: decrypt only, only through S3 "
                                     "in this region (kms:ViaService), where that key's policy grants this account.",
    }
    if pull_images:
        reasons[_source_repositories(config, scope)] = (
            "The source account's stage repositories (gru4rec-<stage>): pull only, where their repository policies "
            "grant this account.")
    return reasons


def acknowledge_source_reads(config: AppConfig, policy: iam.Policy, pull_images: bool = True) -> None:
    """Acknowledge the cdk-nag findings of :func:`read_source_statements` on ``policy``."""
    reasons = source_read_reasons(config, cdk.Stack.of(policy), pull_images)
    if reasons:
        cdk.Validations.of(policy).acknowledge(*(
            cdk.Acknowledgment(id=wildcard_resource_finding(policy, pattern), reason=reason)
            for pattern, reason in reasons.items()))


def _source_models() -> str:
    return f"arn:{cdk.Aws.PARTITION}:s3:::*/{MODELS_PREFIX}*"


def _source_keys(config: AppConfig, scope: cdk.Stack) -> str:
    return scope.format_arn(service="kms", account=config.promotion_source_account, resource="key", resource_name="*")


def _source_repositories(config: AppConfig, scope: cdk.Stack) -> str:
    return scope.format_arn(service="ecr", account=config.promotion_source_account, resource="repository",
                            resource_name=REPOSITORY_PATTERN)
