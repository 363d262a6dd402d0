"""Every policy document of every synthesized stack, linted offline as IAM would read it.

parliament checks each action against its resource types and condition keys; a test of its own
checks CloudWatch Logs' ``log-group:NAME:*`` rule, which parliament does not know. Each check has
negative controls: the faults it exists for, planted in a copy of a real document, must fail it.
"""
from __future__ import annotations

import copy

import pytest

from tests.support.policy_documents import ACCOUNT, REGION, AppPolicies, PolicyDocument
from tests.support.policy_lint import logs_arn_problems, parliament_findings

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BUCKET_ARN = "arn:aws:s3:::gru4rec-dev-data"
LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs"


@pytest.fixture(scope="module")
def documents(synth) -> list[PolicyDocument]:
    return list(AppPolicies(synth.templates).documents())


def _named(documents: list[PolicyDocument], stack_part: str, logical_prefix: str) -> PolicyDocument:
    (found,) = [d for d in documents if d.stack.endswith(stack_part) and d.logical_id.startswith(logical_prefix)
                and d.kind != "trust"]
    return found


def _statement(policy: PolicyDocument, sid: str) -> dict:
    (found,) = [s for s in policy.document["Statement"] if s.get("Sid") == sid]
    return found


def _with_statements(policy: PolicyDocument, statements: list[dict]) -> PolicyDocument:
    document = copy.deepcopy(policy.document)
    document["Statement"] = statements
    return PolicyDocument(policy.stack, policy.logical_id, policy.kind, document, policy.key_arn)


def test_every_stack_has_its_policies_resolved_to_arns(documents, synth):
    # the Monitoring stack holds none: alarms, a dashboard and, when set, a budget
    assert {d.stack for d in documents} == set(synth.templates) - {synth.stacks["monitoring"].stack_name}
    for policy in documents:
        text = repr(policy.document)
        assert "Fn::" not in text and "'Ref'" not in text, policy.where
    kinds = {(d.kind, d.logical_id.rstrip("0123456789ABCDEF")) for d in documents}
    assert ("resource", "Key") in kinds and ("identity", "ModelPolicy") in kinds


def test_parliament_finds_nothing_in_any_identity_or_resource_policy(documents):
    findings = [line for policy in documents if policy.kind != "trust" for line in parliament_findings(policy)]
    assert findings == []


def test_parliament_catches_a_condition_key_the_action_never_carries(documents):
    """Negative control: DescribeKey under kms:GrantIsForAWSResource (the key exists only in grant calls)."""
    policy = _named(documents, "Training", "TrainingPolicy")
    grant = copy.deepcopy(_statement(policy, "GrantKeyToSageMakerVolumes"))
    grant["Action"] = ["kms:CreateGrant", "kms:DescribeKey"]
    findings = parliament_findings(_with_statements(policy, [grant]))
    assert len(findings) == 1 and "UNKNOWN_CONDITION_FOR_ACTION" in findings[0] and "kms:DescribeKey" in findings[0]


def test_parliament_catches_a_resource_of_the_wrong_type(documents):
    """Negative control: s3:GetObject on the bucket's ARN instead of its objects'."""
    policy = _named(documents, "Endpoint", "ModelPolicy")
    read = copy.deepcopy(_statement(policy, "ReadModelArtifacts"))
    read["Resource"] = BUCKET_ARN
    findings = parliament_findings(_with_statements(policy, [read]))
    assert len(findings) == 1 and "RESOURCE_MISMATCH" in findings[0] and "s3:GetObject" in findings[0]


def test_parliament_reads_a_key_policy_resource_star_as_the_key(documents):
    """Negative control for key policies: there Resource "*" is the key, so an action on aliases must be reported."""
    key = _named(documents, "Storage", "Key")
    alarms = copy.deepcopy(_statement(key, "AlarmsPublishToStageTopics"))
    alarms["Action"] = ["kms:Decrypt", "kms:CreateAlias"]
    findings = parliament_findings(_with_statements(key, [alarms]))
    assert any("RESOURCE_MISMATCH" in line for line in findings)
    assert findings and all("kms:CreateAlias" in line for line in findings)


def test_every_logs_statement_names_the_arns_iam_matches(documents):
    problems = [line for policy in documents for line in logs_arn_problems(policy)]
    assert problems == []
    granted = [s for policy in documents for s in policy.document["Statement"]
               if any(a.startswith("logs:") for a in _as_list(s["Action"])) and s["Resource"] != "*"]
    assert len(granted) >= 5, "the SageMaker roles' log statements are checked"


@pytest.mark.parametrize("action, resource, verdict", [
    ("logs:CreateLogGroup", LOG_GROUP, "log-group:NAME:*"),
    ("logs:DescribeLogStreams", f"{LOG_GROUP}:log-stream:gru4rec-dev-train-*", "never matched by a log-stream ARN"),
    ("logs:CreateLogStream", LOG_GROUP, "log-stream:STREAM"),
    ("logs:TagResource", f"{LOG_GROUP}:*", "without ':*'"),
    ("logs:CreateLogGroup", f"{LOG_GROUP}:*", None),
    ("logs:PutLogEvents", f"{LOG_GROUP}:log-stream:gru4rec-dev-train-*", None),
    ("logs:PutLogEvents", f"{LOG_GROUP}:*", None),
    ("logs:CreateLogDelivery", "*", None),
])
def test_logs_rule(action, resource, verdict):
    """The rule itself, including the forms the review found (a bare group, a group action on streams)."""
    policy = PolicyDocument("Stack", "Policy", "identity", {"Version": "2012-10-17", "Statement": [
        {"Sid": "Logs", "Effect": "Allow", "Action": [action], "Resource": [resource]}]})
    problems = logs_arn_problems(policy)
    if verdict is None:
        assert problems == []
    else:
        assert len(problems) == 1 and verdict in problems[0] and action.lower() in problems[0]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
