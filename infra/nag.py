"""cdk-nag finding ids, computed the way cdk-nag writes them, for narrow acknowledgements.

cdk-nag names a wildcard or managed-policy finding after the resolved CloudFormation value
(``AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:...:log-stream:*]``). How that value
resolves depends on whether the stack's region is known at synth (a literal partition and region,
or references to pseudo parameters), so the ids are derived from the same value, not written out.
"""
from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct


def flatten_reference(value: Any) -> str:
    """A resolved CloudFormation value as one string: ``{"Ref": X}`` -> ``<X>``, ``Fn::GetAtt`` -> ``<X.Attr>``,
    ``Fn::ImportValue`` -> the export name, ``Fn::Join`` joined, ``${X}`` -> ``<X>`` (cdk-nag's rendering)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(flatten_reference(item) for item in items)
        if "Fn::Sub" in value:
            return flatten_reference(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten_reference(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten_reference(value['Ref'])}>"
    raise ValueError(f"cannot flatten {value!r} the way cdk-nag does")


def wildcard_resource_finding(scope: Construct, resource: str) -> str:
    """Id of the AwsSolutions-IAM5 finding for a policy statement on ``resource`` (an ARN pattern with '*')."""
    return f"AwsSolutions-IAM5[Resource::{flatten_reference(cdk.Stack.of(scope).resolve(resource))}]"


def managed_policy_finding(scope: Construct, policy_name: str) -> str:
    """Id of the AwsSolutions-IAM4 finding for the AWS managed policy ``policy_name`` (e.g. ``service-role/X``)."""
    arn = iam.ManagedPolicy.from_aws_managed_policy_name(policy_name).managed_policy_arn
    return f"AwsSolutions-IAM4[Policy::{flatten_reference(cdk.Stack.of(scope).resolve(arn))}]"
