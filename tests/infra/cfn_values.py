"""CloudFormation values resolved the way a deployment would, to plausible fake names and ARNs.

A synthesized template refers to resources by ``Ref``, ``Fn::GetAtt`` and ``Fn::ImportValue`` (another
stack's export). :func:`resolve` turns such a value into the string CloudFormation would pass on, in
account ``ACCOUNT`` and region ``REGION``: a resource's name property where the template sets one, its
logical id (lower case where the service wants it) where it does not. An intrinsic or attribute it does
not know raises ``ValueError`` naming it, rather than guessing.
"""
from __future__ import annotations

import hashlib
from typing import Any

ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARTITION = "aws"
PSEUDO_PARAMETERS = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                     "AWS::URLSuffix": "amazonaws.com"}

# resource type -> (name property, whether the service wants the name in lower case)
NAME_PROPERTIES = {
    "AWS::S3::Bucket": ("BucketName", True),
    "AWS::SNS::Topic": ("TopicName", False),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", False),
    "AWS::ECR::Repository": ("RepositoryName", True),
    "AWS::IAM::Role": ("RoleName", False),
    "AWS::Lambda::Function": ("FunctionName", False),
    "AWS::SQS::Queue": ("QueueName", False),
}


class Stacks:
    """The templates of one synthesized app (stack name -> template), for values that cross stacks."""

    def __init__(self, templates: dict[str, dict]):
        self.templates = templates
        self._exports = {output["Export"]["Name"]: (stack, output["Value"])
                         for stack, template in templates.items()
                         for output in template.get("Outputs", {}).values() if "Export" in output}

    def resolve(self, value: Any, stack: str) -> Any:
        """``value`` of a resource property in ``stack`` with every intrinsic function resolved."""
        if isinstance(value, list):
            return [self.resolve(item, stack) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (function, argument), = value.items()
            if function == "Ref" or function.startswith("Fn::"):
                return self._intrinsic(function, argument, stack)
        return {key: self.resolve(item, stack) for key, item in value.items()}

    def _intrinsic(self, function: str, argument: Any, stack: str) -> Any:
        if function == "Ref":
            return PSEUDO_PARAMETERS.get(argument) or self._ref(argument, stack)
        if function == "Fn::GetAtt":
            return self._attribute(*argument, stack)
        if function == "Fn::ImportValue":
            exporter, exported = self._exports[self.resolve(argument, stack)]
            return self.resolve(exported, exporter)
        if function == "Fn::Join":
            delimiter, parts = argument
            return delimiter.join(str(self.resolve(part, stack)) for part in parts)
        if function == "Fn::Split":
            delimiter, text = argument
            return self.resolve(text, stack).split(delimiter)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items, stack)[int(index)]
        raise ValueError(f"{stack}: cannot resolve {function}")

    def _resource(self, logical_id: str, stack: str) -> dict:
        try:
            return self.templates[stack]["Resources"][logical_id]
        except KeyError:
            raise ValueError(f"{stack} has no resource {logical_id}") from None

    def _name(self, logical_id: str, stack: str) -> str:
        resource = self._resource(logical_id, stack)
        prop, lower = NAME_PROPERTIES.get(resource["Type"], (None, False))
        given = resource.get("Properties", {}).get(prop) if prop else None
        name = self.resolve(given, stack) if given is not None else logical_id
        return name.lower() if lower else name

    def _ref(self, logical_id: str, stack: str) -> str:
        kind = self._resource(logical_id, stack)["Type"]
        name = self._name(logical_id, stack)
        if kind == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{name}"
        if kind == "AWS::StepFunctions::StateMachine":
            return f"arn:{PARTITION}:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        if kind == "AWS::KMS::Key":
            digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()
            return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        return name

    def _attribute(self, logical_id: str, attribute: str, stack: str) -> str:
        kind = self._resource(logical_id, stack)["Type"]
        if attribute != "Arn":
            raise ValueError(f"{stack}: no stand-in value for {logical_id}.{attribute} ({kind})")
        name = self._ref(logical_id, stack)
        arns = {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::KMS::Key": f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}",
            "AWS::ECR::Repository": f"arn:{PARTITION}:ecr:{REGION}:{ACCOUNT}:repository/{name}",
            "AWS::SNS::Topic": name,
            "AWS::StepFunctions::StateMachine": name,
        }
        if kind not in arns:
            raise ValueError(f"{stack}: no stand-in ARN for {logical_id} ({kind})")
        return arns[kind]
