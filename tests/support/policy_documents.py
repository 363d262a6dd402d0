"""Every IAM policy document of a synthesized app, with CloudFormation intrinsics resolved to plausible ARNs.

IAM linters read ARNs, not ``{"Fn::GetAtt": [...]}``: ``AppPolicies`` replaces each reference with
the value a deploy into account ACCOUNT, region REGION would give it (a role's ARN, a bucket's
name, ...), follows ``Fn::ImportValue`` to the exporting stack's output, and evaluates ``Fn::Join``,
``Fn::Sub``, ``Fn::Select`` and ``Fn::Split``. A reference it cannot resolve raises, naming it, so a
new kind of resource is never linted as a made-up string.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.cfn_intrinsics import IntrinsicResolver

ACCOUNT = "123456789012"
REGION = "us-east-1"
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
}


@dataclass(frozen=True)
class PolicyDocument:
    """One policy document: where it sits and its resolved JSON."""

    stack: str
    logical_id: str
    kind: str  # "identity", "trust" or "resource"
    document: dict
    key_arn: str | None = None  # for a KMS key policy: the key's ARN, which "Resource": "*" means there
    # for an ECR repository policy: the repository's ARN, which a statement without "Resource" means there
    # (https://docs.aws.amazon.com/AmazonECR/latest/userguide/repository-policy-examples.html)
    repository_arn: str | None = None

    @property
    def where(self) -> str:
        return f"{self.stack}/{self.logical_id} ({self.kind})"


class AppPolicies(IntrinsicResolver):
    """The templates of one app (stack name -> template), their exports and their policy documents."""

    def documents(self) -> Iterator[PolicyDocument]:
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                key_arn = self._arn(stack, logical_id) if resource["Type"] == "AWS::KMS::Key" else None
                repository_arn = self._arn(stack, logical_id) if resource["Type"] == "AWS::ECR::Repository" else None
                for kind, document in _documents_of(resource):
                    yield PolicyDocument(stack, logical_id, kind, self.resolve(stack, document), key_arn,
                                         repository_arn)

    def _ref(self, stack: str, logical_id: str) -> Any:
        if logical_id in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[logical_id]
        parameters = self.templates[stack].get("Parameters", {})
        if logical_id in parameters:
            return parameters[logical_id].get("Default", logical_id)
        resource = self._resource(stack, logical_id)
        kind = resource["Type"]
        if kind in _REF_IS_ARN:
            return self._arn(stack, logical_id)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self._name(stack, logical_id, 'QueueName')}"
        return self._name(stack, logical_id, _NAME_PROPERTIES.get(kind, ""))

    def _attribute(self, stack: str, logical_id: str, attribute: str) -> Any:
        if attribute == "Arn":
            return self._arn(stack, logical_id)
        return f"{logical_id.lower()}-{attribute.lower()}"

    def _name(self, stack: str, logical_id: str, name_property: str) -> str:
        """The resource's physical name: its name property when the template sets one, else one derived from its id."""
        properties = self._resource(stack, logical_id).get("Properties", {})
        if name_property in properties:
            return self.resolve(stack, properties[name_property])
        return logical_id.lower()

    def _arn(self, stack: str, logical_id: str) -> str:
        kind = self._resource(stack, logical_id)["Type"]
        if kind not in _ARN_FORMATS:
            raise ValueError(f"{stack}/{logical_id}: no ARN format for {kind}; add one to _ARN_FORMATS")
        template, name_property = _ARN_FORMATS[kind]
        return template.format(region=REGION, account=ACCOUNT, name=self._name(stack, logical_id, name_property))


# resource type -> (ARN, the property that names the resource)
_ARN_FORMATS = {
    "AWS::IAM::Role": ("arn:aws:iam::{account}:role/{name}", "RoleName"),
    "AWS::IAM::ManagedPolicy": ("arn:aws:iam::{account}:policy/{name}", "ManagedPolicyName"),
    "AWS::KMS::Key": ("arn:aws:kms:{region}:{account}:key/{name}", ""),
    "AWS::S3::Bucket": ("arn:aws:s3:::{name}", "BucketName"),
    "AWS::SNS::Topic": ("arn:aws:sns:{region}:{account}:{name}", "TopicName"),
    "AWS::SQS::Queue": ("arn:aws:sqs:{region}:{account}:{name}", "QueueName"),
    "AWS::Logs::LogGroup": ("arn:aws:logs:{region}:{account}:log-group:{name}:*", "LogGroupName"),
    "AWS::ECR::Repository": ("arn:aws:ecr:{region}:{account}:repository/{name}", "RepositoryName"),
    "AWS::StepFunctions::StateMachine": ("arn:aws:states:{region}:{account}:stateMachine:{name}", "StateMachineName"),
    "AWS::Lambda::Function": ("arn:aws:lambda:{region}:{account}:function:{name}", "FunctionName"),
    "AWS::Events::Rule": ("arn:aws:events:{region}:{account}:rule/{name}", "Name"),
    "AWS::SSM::Parameter": ("arn:aws:ssm:{region}:{account}:parameter{name}", "Name"),
    "AWS::ApiGateway::RestApi": ("arn:aws:apigateway:{region}::/restapis/{name}", ""),
    "AWS::WAFv2::WebACL": ("arn:aws:wafv2:{region}:{account}:regional/webacl/{name}/id", "Name"),
}
_REF_IS_ARN = {"AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::IAM::ManagedPolicy"}
_NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName", "AWS::S3::Bucket": "BucketName", "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ECR::Repository": "RepositoryName", "AWS::SSM::Parameter": "Name", "AWS::Lambda::Function": "FunctionName",
    "AWS::ApiGateway::Stage": "StageName",
}


def _documents_of(resource: dict) -> Iterator[tuple[str, dict]]:
    """(kind, raw document) of every policy document a resource carries."""
    properties, kind = resource.get("Properties", {}), resource["Type"]
    if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        yield "identity", properties["PolicyDocument"]
    elif kind == "AWS::IAM::Role":
        yield "trust", properties["AssumeRolePolicyDocument"]
        for policy in properties.get("Policies", []):
            yield "identity", policy["PolicyDocument"]
    elif kind == "AWS::KMS::Key":
        yield "resource", properties["KeyPolicy"]
    elif kind in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
        yield "resource", properties["PolicyDocument"]
    elif kind == "AWS::ECR::Repository" and "RepositoryPolicyText" in properties:
        yield "resource", properties["RepositoryPolicyText"]
    elif kind == "AWS::SageMaker::ModelPackageGroup" and "ModelPackageGroupPolicy" in properties:
        yield "resource", properties["ModelPackageGroupPolicy"]
    elif kind == "AWS::ApiGateway::RestApi" and "Policy" in properties:
        yield "resource", properties["Policy"]
