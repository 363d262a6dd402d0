"""Cross-account promotion's templates: what a source stage shares (``promotion_target_accounts``, the ``retraining``
variant) and what a target stage's models may read (``promotion_source_account``, the ``prod`` variant). cfn-lint,
cdk-nag, parliament and the rules module hold on both variants (tests/infra/test_aws_rules.py); here, what the
grants say, read from the synthesized templates with their references resolved."""
from __future__ import annotations

import dataclasses

import pytest

from infra.stacks.promotion_access import GROUP_READ_ACTIONS, PULL_ACTIONS
from tests.support.policy_documents import ACCOUNT, REGION, AppPolicies
from tests.support.policy_lint import parliament_findings

TARGETS = ["arn:aws:iam::210987654321:root", "arn:aws:iam::310987654321:root"]
SOURCE = "109876543210"


def _resource_statements(result, stack_part: str, logical_prefix: str) -> list[dict]:
    return [statement for document in AppPolicies(result.templates).documents()
            if document.kind == "resource" and document.stack.endswith(stack_part)
            and document.logical_id.startswith(logical_prefix) for statement in document.document["Statement"]]


def _sid(statements: list[dict], sid: str) -> dict:
    (found,) = [statement for statement in statements if statement.get("Sid") == sid]
    return found


def _principals(statement: dict) -> list[str]:
    return sorted(statement["Principal"]["AWS"])


def test_the_source_group_lets_the_target_accounts_read_its_versions_and_nothing_more(variants):
    (statement,) = _resource_statements(variants["retraining"], "Storage", "ModelRegistryGroup")
    assert _principals(statement) == TARGETS and statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == sorted(GROUP_READ_ACTIONS)
    assert not any(action.startswith(("sagemaker:Update", "sagemaker:Delete", "sagemaker:Create"))
                   for action in statement["Action"]), "a target never approves or changes a source's version"
    assert sorted(statement["Resource"]) == [
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/gru4rec-dev",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/gru4rec-dev/*"]


def test_the_source_shares_its_models_key_and_images_with_the_target_accounts_only(variants):
    result = variants["retraining"]
    bucket = _sid(_resource_statements(result, "Storage", "DataPolicy"), "PromotionTargetsReadModels")
    assert _principals(bucket) == TARGETS and bucket["Action"] == "s3:GetObject"
    assert bucket["Resource"].endswith("/models/*")
    key = _sid(_resource_statements(result, "Storage", "Key"), "PromotionTargetsDecryptModels")
    assert _principals(key) == TARGETS and key["Action"] == "kms:Decrypt"
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    images = _sid(_resource_statements(result, "Image", "Repository"), "PromotionTargetsPullImages")
    assert _principals(images) == TARGETS
    assert sorted(images["Action"]) == sorted([*PULL_ACTIONS, "ecr:DescribeImages"])


def test_a_stage_without_targets_shares_nothing(synth):
    """Negative control: the default stage's group has no policy, and no resource policy names another account."""
    assert _resource_statements(synth, "Storage", "ModelRegistryGroup") == []
    text = repr([d.document for d in AppPolicies(synth.templates).documents() if d.kind == "resource"])
    assert "Promotion" not in text and "210987654321" not in text


def test_the_target_models_may_read_the_source_accounts_models_and_images(variants):
    (policy,) = [d for d in AppPolicies(variants["prod"].templates).documents()
                 if d.stack.endswith("Endpoint") and d.logical_id.startswith("ModelPolicy")]
    statements = policy.document["Statement"]
    models = _sid(statements, "ReadSourceAccountModels")
    assert models["Action"] == "s3:GetObject" and models["Resource"] == "arn:aws:s3:::*/models/*"
    assert models["Condition"] == {"StringEquals": {"s3:ResourceAccount": SOURCE}}
    keys = _sid(statements, "DecryptSourceAccountModels")
    assert keys["Resource"] == f"arn:aws:kms:{REGION}:{SOURCE}:key/*"
    assert keys["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    images = _sid(statements, "PullSourceAccountImages")
    assert images["Resource"] == f"arn:aws:ecr:{REGION}:{SOURCE}:repository/gru4rec-*"
    assert sorted(images["Action"]) == sorted(PULL_ACTIONS)
    assert "ReadSourceAccountModels" not in repr(next(
        d.document for d in AppPolicies(variants["default"].templates).documents()
        if d.stack.endswith("Endpoint") and d.logical_id.startswith("ModelPolicy")))


def test_the_target_batch_roles_may_read_the_source_accounts_models_but_pull_only_their_own_images(variants):
    """Batch Transform's models and the filter packager read the live archive and run the stage's own image."""
    documents = [d for d in AppPolicies(variants["prod"].templates).documents()
                 if d.stack.endswith("Batch") and d.logical_id.startswith(("TransformPolicy", "FilterPackager"))
                 and d.kind == "identity"]
    assert len(documents) == 2, [d.logical_id for d in documents]
    for document in documents:
        sids = {statement.get("Sid") for statement in document.document["Statement"]}
        assert {"ReadSourceAccountModels", "DecryptSourceAccountModels"} <= sids, document.where
        assert "PullSourceAccountImages" not in sids, document.where


@pytest.mark.parametrize("variant, stack_part, logical_prefix", [
    ("retraining", "Storage", "ModelRegistryGroup"), ("retraining", "Image", "Repository"),
    ("prod", "Endpoint", "ModelPolicy"), ("prod", "Batch", "TransformPolicy")])
def test_parliament_reads_the_promotion_policies_and_finds_nothing(variants, variant, stack_part, logical_prefix):
    (document,) = [d for d in AppPolicies(variants[variant].templates).documents()
                   if d.stack.endswith(stack_part) and d.logical_id.startswith(logical_prefix) and d.kind != "trust"]
    assert parliament_findings(document) == []


def test_a_repository_policy_is_read_as_applying_to_its_repository(variants):
    """Negative control of the linter's reading: ECR's statements name no Resource (the repository they are attached
    to); without the repository's ARN parliament would call the statement malformed."""
    (document,) = [d for d in AppPolicies(variants["retraining"].templates).documents()
                   if d.stack.endswith("Image") and d.logical_id.startswith("Repository")]
    assert document.repository_arn == f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/gru4rec-dev"
    unattached = dataclasses.replace(document, repository_arn=None)
    assert any("MALFORMED" in finding for finding in parliament_findings(unattached))
