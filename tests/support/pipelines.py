"""Helpers for the pipeline stack tests: read a state machine's definition, run its JSONata.

A definition is stored as ``Fn::Join`` of strings and CloudFormation references; ``definition``
joins it with each reference replaced by a marker (``<Resource.Attr>``, ``<import:Export>``, ...),
so it parses as JSON and the tests read it as Step Functions will. ``evaluate`` runs a state's
JSONata with jsonata-python, standing in the Step Functions additions the pipelines use.
"""
from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import jsonata
from jsonata.utils import Utils

PARTITION = "aws"


def marker(value: Any) -> str:
    """A CloudFormation reference as a marker string (the partition as ``aws``)."""
    if value == {"Ref": "AWS::Partition"}:
        return PARTITION
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Fn::ImportValue" in value:
        return f"<import:{value['Fn::ImportValue']}>"
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(marker(part) for part in parts)
    return "<token>"


def resources(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: body for name, body in template["Resources"].items() if body["Type"] == resource_type}


def logical_id(template: dict, resource_type: str, prefix: str) -> str:
    """The one resource of ``resource_type`` whose logical id starts with ``prefix``."""
    (name,) = [name for name in resources(template, resource_type) if name.startswith(prefix)]
    return name


def policy_of(template: dict, prefix: str) -> list[dict]:
    """The statements of the IAM policy whose logical id starts with ``prefix``."""
    return resources(template, "AWS::IAM::Policy")[logical_id(template, "AWS::IAM::Policy", prefix)]["Properties"][
        "PolicyDocument"]["Statement"]


def state_machine(template: dict, pipeline: str | None = None) -> dict:
    """The properties of the state machine ``gru4rec-<stage>-<pipeline>``; without ``pipeline``, of the
    stack's own one (a construct's inside the stack has a logical id of its construct's name first)."""
    machines = resources(template, "AWS::StepFunctions::StateMachine")
    if pipeline is None:
        (machine,) = [body for name, body in machines.items() if name.startswith("StateMachine")]
    else:
        (machine,) = [
            body for body in machines.values() if body["Properties"]["StateMachineName"].endswith(f"-{pipeline}")
        ]
    return machine["Properties"]


def definition(template: dict, pipeline: str | None = None) -> dict:
    """A state machine's definition (as :func:`state_machine` picks it), references replaced by markers."""
    raw = state_machine(template, pipeline)["DefinitionString"]
    return json.loads(marker(raw) if isinstance(raw, dict) else raw)


def main_path(states: dict, start: str, via: dict[str, str] | None = None) -> list[str]:
    """State names from ``start`` along Next, stopping at an end or a state seen before.

    A Choice goes on to its Default, or to ``via[choice name]``, which must be one of its branches.
    """
    path, name, via = [], start, via or {}
    while name and name not in path:
        path.append(name)
        state = states[name]
        if name in via:
            assert via[name] in [rule["Next"] for rule in state["Choices"]], f"{name} has no branch to {via[name]}"
            name = via[name]
        else:
            name = state.get("Next") or state.get("Default")
    return path


def evaluate(expression: str, variables: dict[str, Any] | None = None, states: dict[str, Any] | None = None,
             seed: int = 0) -> Any:
    """Evaluate ``{% expression %}`` with ``$states`` and workflow variables bound.

    ``$hash`` and ``$random`` stand in for Step Functions' own: SHA-256 hex and a seeded generator.
    Python None is JSON null on the way in (jsonata-python's own None means "undefined") and out.
    """
    body = expression.strip()
    assert body.startswith("{%") and body.endswith("%}"), f"not a JSONata field: {expression!r}"
    compiled = jsonata.Jsonata(body[2:-2])
    compiled.register_lambda("hash", lambda value, algorithm: _hash(value, algorithm))
    generator = random.Random(seed)
    compiled.register_lambda("random", generator.random)
    frame = compiled.create_frame()
    for name, value in {**(variables or {}), "states": states or {}}.items():
        frame.bind(name, _json_nulls(value))
    return compiled.evaluate(None, frame)


def _json_nulls(value: Any) -> Any:
    """A copy of ``value`` with None as jsonata-python's JSON null."""
    if value is None:
        return Utils.NULL_VALUE
    if isinstance(value, dict):
        return {key: _json_nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_nulls(item) for item in value]
    return value


def _hash(value: str, algorithm: str) -> str:
    assert algorithm == "SHA-256", algorithm
    return hashlib.sha256(value.encode()).hexdigest()


def policy_statements(template: dict) -> list[dict]:
    """Every statement of the template's IAM policies (as written by the CDK: Action and Resource may be lists)."""
    statements = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def actions_on(statements: list[dict], resource_marker_part: str) -> set[str]:
    """Actions granted on resources whose marker form contains ``resource_marker_part``."""
    return {action for statement in statements
            for resource in as_list(statement["Resource"]) if resource_marker_part in marker(resource)
            for action in as_list(statement["Action"])}
