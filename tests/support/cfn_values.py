"""CloudFormation values resolved the way a deployment would, to plausible fake names and ARNs.

A synthesized template refers to resources by ``Ref``, ``Fn::GetAtt`` and ``Fn::ImportValue`` (another
stack's export). :meth:`Stacks.resolve` (``stack``, value) turns such a value into the string CloudFormation would pass
on, in account ``ACCOUNT`` and region ``REGION``: a resource's name property where the template sets one, its
logical id (lower case where the service wants it) where it does not. An intrinsic or attribute it does
not know raises ``ValueError`` naming it, rather than guessing.
"""
from __future__ import annotations

import hashlib

from tests.support.cfn_intrinsics import IntrinsicResolver

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


class Stacks(IntrinsicResolver):
    """The templates of one synthesized app (stack name -> template), for values that cross stacks."""

    def _name(self, stack: str, logical_id: str) -> str:
        resource = self._resource(stack, logical_id)
        prop, lower = NAME_PROPERTIES.get(resource["Type"], (None, False))
        given = resource.get("Properties", {}).get(prop) if prop else None
        name = self.resolve(stack, given) if given is not None else logical_id
        return name.lower() if lower else name

    def _ref(self, stack: str, logical_id: str) -> str:
        if logical_id in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[logical_id]
        kind = self._resource(stack, logical_id)["Type"]
        name = self._name(stack, logical_id)
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

    def _attribute(self, stack: str, logical_id: str, attribute: str) -> str:
        kind = self._resource(stack, logical_id)["Type"]
        if attribute != "Arn":
            raise ValueError(f"{stack}: no stand-in value for {logical_id}.{attribute} ({kind})")
        name = self._ref(stack, logical_id)
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
