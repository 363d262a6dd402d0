"""A synthesized app's pipelines ready to run offline: moto holding what a deployed stage holds.

``offline_stage(result)`` (a ``SynthResult``) yields a :class:`Stage`: the data bucket, every failure
topic, the Athena workgroups, the model package group, the
endpoint serving the first model and the live-model parameter exist in moto, the state machines
are created on first run, and every request of a run can be checked against botocore's service model
(:func:`assert_well_formed`).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from infra.layout import LIVE_VARIANT
from tests.support.cfn_values import ACCOUNT, REGION, Stacks
from tests.support.service_model import problems
from tests.support.sfn_executor import Boundary, Pipelines, Run, offline_aws
from tests.support.stand_ins import EndpointDescriptions

# the first model: a deploy-time asset, outside the bucket's models/ prefix
FIRST_MODEL = "s3://cdk-hnb659fds-assets-123456789012-eu-west-1/0123abcd.tar.gz"
# a training job's final metrics that pass the default gate (stand_ins.TrainingJobs), and a rollout that
# ends serving the new configuration (stand_ins.Endpoint)
PASSING = {"": {"validation:recall@20": 0.31, "recall@20": 0.30, "mrr@20": 0.12}}
ROLLOUT = [("InService", "old"), ("Updating", "old"), ("Updating", "new"), ("InService", "new")]


@dataclass
class Stage:
    """One stage in moto: ``pipelines`` (state machines by name), ``boundary`` (requests, stand-ins),
    ``bucket`` (the data bucket's name), ``config`` (the app's)."""

    pipelines: Pipelines
    boundary: Boundary
    bucket: str
    config: Any
    rollouts: int = 0

    def machine(self, pipeline: str) -> str:
        return f"{self.config.resource_prefix}-{pipeline}"

    def run(self, pipeline: str, execution_input: Any = None, name: str | None = None) -> Run:
        return self.pipelines.run(self.machine(pipeline), execution_input, name)

    def definition(self, pipeline: str) -> dict:
        return self.pipelines.definition(self.machine(pipeline))

    def live_model(self, uri: str) -> None:
        """Put the model archive ``uri`` live: the endpoint (moto's) serves a model of it from a configuration of
        its own, as after a rollout."""
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.rollouts += 1
        name = f"{self.config.resource_prefix}-live-{self.rollouts}"
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model",
                               PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gru4rec:1",
                                                 "ModelDataUrl": uri})
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
            {"VariantName": LIVE_VARIANT, "ModelName": name, "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}])
        if self.rollouts > 1:
            sagemaker.delete_endpoint(EndpointName=self.config.endpoint_name)
        sagemaker.create_endpoint(EndpointName=self.config.endpoint_name, EndpointConfigName=name)

    def parameter(self, name: str) -> str | None:
        ssm = boto3.client("ssm", region_name=REGION)
        try:
            return ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            return None

    def put_object(self, key: str, body: bytes) -> None:
        boto3.client("s3", region_name=REGION).put_object(Bucket=self.bucket, Key=key, Body=body)

    def get_object(self, key: str) -> bytes:
        return boto3.client("s3", region_name=REGION).get_object(Bucket=self.bucket, Key=key)["Body"].read()


def data_bucket(result) -> str:
    """The name the data bucket of ``result`` (a ``SynthResult``) has offline."""
    storage = result.stacks["storage"].stack_name
    (bucket_id,) = [logical for logical, resource in result.templates[storage]["Resources"].items()
                    if resource["Type"] == "AWS::S3::Bucket" and logical.startswith("Data")]
    return Stacks(result.templates).resolve(storage, {"Ref": bucket_id})


@contextmanager
def offline_stage(result) -> Iterator[Stage]:
    with offline_aws() as boundary:
        pipelines = Pipelines(result.templates, boundary)
        bucket = data_bucket(result)
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        sns, athena = boto3.client("sns", region_name=REGION), boto3.client("athena", region_name=REGION)
        sagemaker = boto3.client("sagemaker", region_name=REGION)
        for stack, template in result.templates.items():
            for logical, resource in template["Resources"].items():
                if resource["Type"] == "AWS::SageMaker::ModelPackageGroup":
                    sagemaker.create_model_package_group(ModelPackageGroupName=pipelines.stacks.resolve(
                        stack, resource["Properties"]["ModelPackageGroupName"]))
                if resource["Type"] == "AWS::SNS::Topic":
                    sns.create_topic(Name=pipelines.stacks.resolve(stack, {"Ref": logical}).rsplit(":", 1)[1])
                if resource["Type"] == "AWS::Athena::WorkGroup":
                    athena.create_work_group(Name=pipelines.stacks.resolve(stack, resource["Properties"]["Name"]))
        stage = Stage(pipelines, boundary, bucket, result.config)
        EndpointDescriptions(boundary)
        stage.live_model(FIRST_MODEL)
        yield stage


def assert_well_formed(run: Run) -> None:
    """Every request of ``run`` is one AWS would accept, and every Describe answer (moto's or a stand-in's)
    has the shape AWS gives."""
    found = []
    for request in run.requests:
        found += problems(request.service, request.operation, request.params)
        if isinstance(request.response, dict) and request.operation.startswith(("Describe", "GetQuery")):
            answer = {key: value for key, value in request.response.items() if key != "ResponseMetadata"}
            found += problems(request.service, request.operation, answer, output=True)
    assert found == [], found


def published(run: Run) -> list[dict]:
    """The failure notifications of ``run`` (SNS Publish), their messages parsed."""
    return [json.loads(params["Message"]) for params in run.calls("sns", "Publish")]
