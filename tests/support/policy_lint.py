"""Offline IAM checks of resolved policy documents: parliament's, and CloudWatch Logs' ARN rule.

parliament (PyPI) knows each action's resource types and condition keys; it lints identity and
resource policies. Two adjustments make its input what IAM evaluates:

- in a KMS key policy, ``"Resource": "*"`` means the key itself ("In a key policy, the value of the
  Resource element is "*", which means "this KMS key"",
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html): it is linted as
  the key's ARN, not as every resource;
- the statement of a key policy that gives the account root ``kms:*`` is AWS's default key policy
  ("Allows access to the AWS account and enables IAM policies",
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html); parliament would
  expand ``kms:*`` to the actions that act on aliases and the account, which no key policy can name:
  that one statement is left out;
- condition values are strings in IAM's grammar (a JSON number such as the TLS version 1.2 is
  compared as text); parliament reads only strings, so scalars are passed as text.

Documents are linted statement by statement, and two kinds of finding are dropped, narrowly:
parliament's ``Numeric`` type accepts whole numbers only, while IAM's numeric operators compare
decimals (S3's own example denies ``"NumericLessThan": {"s3:TlsVersion": 1.2}``:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html); and a condition
key unknown to some actions of a Deny over a whole service (the buckets' ``s3:*`` TLS guard) only
means those actions are not denied by it: a Deny never grants, so it cannot fail a deploy's calls.

Trust policies (``AssumeRolePolicyDocument``) have no Resource element and are not parliament's
to lint. parliament does not know that IAM matches CloudWatch Logs actions against
``log-group:NAME:*``: :func:`logs_arn_problems` checks that.
"""
from __future__ import annotations

import copy
import json
import re

import parliament

from tests.support.policy_documents import PolicyDocument

# Actions whose log-group resource is the ARN without the trailing ":*" (the CloudWatch Logs page
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/iam-access-control-overview-cwl.html)
BARE_LOG_GROUP_ACTIONS = {"logs:tagresource", "logs:untagresource", "logs:listtagsforresource"}
# Actions on a log stream: the stream's ARN, log-group:NAME:log-stream:STREAM (or log-group:NAME:*, which covers it)
LOG_STREAM_ACTIONS = {"logs:createlogstream", "logs:putlogevents", "logs:getlogevents"}
_NUMERIC_MISMATCH = re.compile(r"Type mismatch: \S+ requires a value of type Numeric but given \['(?P<value>[^']*)'\]")
_DECIMAL = re.compile(r"\d+\.\d+")
_LOG_GROUP = re.compile(r"arn:[^:]+:logs:[^:]*:[^:]*:log-group:(?P<rest>.+)")


def parliament_findings(policy: PolicyDocument) -> list[str]:
    """parliament's findings for one identity or resource policy, statement by statement, as
    ``where statement: ISSUE detail`` lines."""
    document = _as_iam_reads_it(policy.document, policy.key_arn, policy.repository_arn)
    found = []
    for index, statement in enumerate(_statements(document)):
        single = {"Version": document.get("Version", "2012-10-17"), "Statement": [statement]}
        findings = parliament.analyze_policy_string(json.dumps(single)).findings
        name = statement.get("Sid", f"#{index}")
        found += [f"{policy.where} {name}: {finding.issue} {finding.detail}" for finding in findings
                  if not _decimal_for_numeric(finding) and not _narrows_a_service_wide_deny(statement, finding)]
    return found


def _narrows_a_service_wide_deny(statement: dict, finding) -> bool:
    """An unknown condition key in a Deny of every action of a service (``s3:*`` unless TLS 1.2): the
    actions without that key are not denied by it, which allows nothing."""
    actions = _as_list(statement.get("Action", []))
    return (finding.issue == "UNKNOWN_CONDITION_FOR_ACTION" and statement.get("Effect") == "Deny"
            and all(action.endswith(":*") for action in actions))


def _decimal_for_numeric(finding) -> bool:
    """parliament's MISMATCHED_TYPE for a decimal value of a Numeric condition key (IAM compares decimals)."""
    match = _NUMERIC_MISMATCH.fullmatch(str(finding.detail))
    return finding.issue == "MISMATCHED_TYPE" and bool(match) and bool(_DECIMAL.fullmatch(match.group("value")))


def _as_iam_reads_it(document: dict, key_arn: str | None, repository_arn: str | None = None) -> dict:
    document = copy.deepcopy(document)
    if key_arn:
        document["Statement"] = [s for s in _statements(document) if not _default_key_statement(s, key_arn)]
    for statement in _statements(document):
        if key_arn and statement.get("Resource") == "*":
            statement["Resource"] = key_arn
        if repository_arn and "Resource" not in statement and "NotResource" not in statement:
            statement["Resource"] = repository_arn
        for operator, block in statement.get("Condition", {}).items():
            statement["Condition"][operator] = {
                key: [_as_text(v) for v in values] if isinstance(values, list) else _as_text(values)
                for key, values in block.items()
            }
    return document


def _default_key_statement(statement: dict, key_arn: str) -> bool:
    """The account root's ``kms:*`` on the key: AWS's default key policy statement."""
    account = key_arn.split(":")[4]
    root = statement.get("Principal", {}).get("AWS")
    return statement.get("Action") == "kms:*" and root in (f"arn:aws:iam::{account}:root", account)


def _as_text(value):
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, (int, float)) else value


def logs_arn_problems(policy: PolicyDocument) -> list[str]:
    """Statements granting a ``logs:`` action on a resource IAM never matches for it.

    A log-group action is checked against ``arn:...:log-group:NAME:*``, so a bare ``log-group:NAME``
    (or a log-stream pattern) never allows it; a log-stream action needs the stream's ARN. '*' and
    resources of other services are left alone (mixed statements are parliament's to judge).
    """
    problems = []
    for statement in _statements(policy.document):
        actions = [action.lower() for action in _as_list(statement.get("Action", []))]
        for action in (a for a in actions if a.startswith("logs:")):
            for resource in _as_list(statement.get("Resource", [])):
                problem = _logs_resource_problem(action, resource)
                if problem:
                    problems.append(f"{policy.where} {statement.get('Sid', '')}: {action} on {resource}: {problem}")
    return problems


def _logs_resource_problem(action: str, resource: str) -> str | None:
    match = _LOG_GROUP.fullmatch(resource)
    if resource == "*" or not match:
        return None
    rest = match.group("rest")
    names_streams = ":log-stream:" in rest
    if action in BARE_LOG_GROUP_ACTIONS:
        return None if not rest.endswith(":*") and not names_streams else "tagging actions take the ARN without ':*'"
    if action in LOG_STREAM_ACTIONS:
        return None if names_streams or rest.endswith(":*") else "a log stream is log-group:NAME:log-stream:STREAM"
    if names_streams:
        return "a log-group action is never matched by a log-stream ARN: use log-group:NAME:*"
    return None if rest.endswith(":*") else "IAM checks log-group actions against log-group:NAME:*"


def _statements(document: dict) -> list[dict]:
    return _as_list(document.get("Statement", []))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
