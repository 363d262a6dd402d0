"""The offline executor itself: moto's JSONata hook is where the executor fills it, Step Functions' own
functions, the boundary, and the service model check (each problem found, by path)."""
from __future__ import annotations

import hashlib
import importlib
import json
import time

import boto3
import pytest

from tests.support.cfn_values import ACCOUNT, REGION, Stacks
from tests.support.service_model import problems
from tests.support.sfn_executor import HOOK_MODULE, HOOK_NAME, ROLE_ARN, offline_aws, service_error


def _run_one(definition: dict) -> dict:
    client = boto3.client("stepfunctions", region_name=REGION)
    arn = client.create_state_machine(name="probe", definition=json.dumps(definition), roleArn=ROLE_ARN)[
        "stateMachineArn"
    ]
    execution = client.start_execution(stateMachineArn=arn, name="run-1", input=json.dumps({"id": "run-1"}))[
        "executionArn"
    ]
    while (described := client.describe_execution(executionArn=execution))["status"] == "RUNNING":
        time.sleep(0.02)
    return described


def test_moto_leaves_the_jsonata_hook_empty_where_the_executor_fills_it():
    """Fails when a moto upgrade moves or fills the hook: tests/support/sfn_executor.py must follow it."""
    hook = importlib.import_module(HOOK_MODULE)
    assert getattr(hook, HOOK_NAME) is None
    with offline_aws():
        assert getattr(hook, HOOK_NAME) is not None
    assert getattr(hook, HOOK_NAME) is None


def test_jsonata_states_run_with_step_functions_hash_and_the_waits_are_recorded():
    definition = {"QueryLanguage": "JSONata", "StartAt": "Keep", "States": {
        "Keep": {"Type": "Pass", "Assign": {"id": "{% $states.input.id %}"}, "Next": "Wait"},
        "Wait": {"Type": "Wait", "Seconds": 3600, "Next": "Say"},
        "Say": {"Type": "Pass", "Output": {"hash": "{% $hash($id, 'SHA-256') %}", "id": "{% $id %}"}, "End": True}}}
    with offline_aws() as boundary:
        described = _run_one(definition)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"hash": hashlib.sha256(b"run-1").hexdigest(), "id": "run-1"}
    assert boundary.waits == [3600]


def test_without_the_executor_moto_cannot_run_jsonata():
    """The negative control of the hook: moto alone fails the first JSONata state."""
    from moto import mock_aws
    definition = {"QueryLanguage": "JSONata", "StartAt": "Say", "States": {
        "Say": {"Type": "Pass", "Output": {"id": "{% $states.input.id %}"}, "End": True}}}
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        described = _run_one(definition)
    assert described["status"] == "FAILED"


def test_the_boundary_records_calls_and_prefers_stand_ins():
    with offline_aws() as boundary:
        boundary.stand_in("sagemaker", "UpdateEndpoint", lambda params: (_ for _ in ()).throw(
            service_error("UpdateEndpoint", "ValidationException", "busy")))
        definition = {"QueryLanguage": "JSONata", "StartAt": "Update", "States": {"Update": {
            "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sagemaker:updateEndpoint",
            "Arguments": {"EndpointName": "e", "EndpointConfigName": "c"}, "End": True}}}
        described = _run_one(definition)
    assert described["status"] == "FAILED"
    assert boundary.operations() == ["sagemaker:UpdateEndpoint"]
    assert boundary.calls("sagemaker", "UpdateEndpoint") == [{"EndpointName": "e", "EndpointConfigName": "c"}]


GOOD_JOB = {
    "TrainingJobName": "gru4rec-dev-train-20261201-000000-0a1b2c3d",
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/training",
    "AlgorithmSpecification": {"TrainingImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gru4rec:train",
                               "TrainingInputMode": "File"},
    "HyperParameters": {"epochs": "3"},
    "OutputDataConfig": {"S3OutputPath": "s3://bucket/models/"},
    "ResourceConfig": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    "Tags": [{"Key": "project", "Value": "gru4rec"}],
}


def test_a_well_formed_request_has_no_problems():
    assert problems("sagemaker", "CreateTrainingJob", GOOD_JOB) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"TrainingJobName": "j" * 64}, "CreateTrainingJob.TrainingJobName: length 64 is above the maximum 63"),
        ({"TrainingJobName": "bad_name"}, "CreateTrainingJob.TrainingJobName: 'bad_name' does not match the pattern"),
        ({"RoleArn": None}, "CreateTrainingJob.RoleArn: required, missing"),
        (
            {"ResourceConfig": {"InstanceType": "ml.c5.huge", "InstanceCount": 1, "VolumeSizeInGB": 30}},
            "CreateTrainingJob.ResourceConfig.InstanceType: 'ml.c5.huge' is not one of",
        ),
        (
            {"ResourceConfig": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": "1", "VolumeSizeInGB": 30}},
            "CreateTrainingJob.ResourceConfig.InstanceCount: expected an integer, got str",
        ),
        ({"HyperParameters": {"epochs": 3}}, "CreateTrainingJob.HyperParameters.epochs: expected a string, got int"),
        (
            {"StoppingCondition": {"MaxRuntimeInSeconds": 0}},
            "CreateTrainingJob.StoppingCondition.MaxRuntimeInSeconds: value 0 is below",
        ),
        (
            {"Tags": [{"Key": "k", "Value": "v" * 257}]},
            "CreateTrainingJob.Tags[0].Value: length 257 is above the maximum 256",
        ),
        (
            {"Tags": [{"Key": "k", "Value": "a\tb"}]},
            "CreateTrainingJob.Tags[0].Value: 'a\\tb' does not match the pattern",
        ),
        ({"EnableManagedSpotTraining": "true"}, "CreateTrainingJob.EnableManagedSpotTraining: expected a boolean"),
        ({"Checkpoints": {}}, "CreateTrainingJob.Checkpoints: not a member of CreateTrainingJobRequest"),
    ],
)
def test_each_problem_is_named_by_its_path(change, expected):
    request = {**GOOD_JOB, **change}
    request = {key: value for key, value in request.items() if value is not None}
    found = problems("sagemaker", "CreateTrainingJob", request)
    assert [problem for problem in found if problem.startswith(expected)], found


def test_template_values_resolve_across_stacks_and_unknown_ones_are_refused():
    templates = {
        "A": {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}}},
              "Outputs": {"Out": {"Value": {"Fn::GetAtt": ["Bucket", "Arn"]}, "Export": {"Name": "A:Bucket"}}}},
        "B": {"Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}},
                            "Thing": {"Type": "AWS::Custom::Thing", "Properties": {}}}},
    }
    stacks = Stacks(templates)
    value = {"Fn::Join": ["", [{"Fn::ImportValue": "A:Bucket"}, "|", {"Ref": "Topic"}, "|", {"Ref": "AWS::Region"}]]}
    assert stacks.resolve("B", value) == f"arn:aws:s3:::bucket|arn:aws:sns:{REGION}:{ACCOUNT}:t|{REGION}"
    with pytest.raises(ValueError, match="Thing"):
        stacks.resolve("B", {"Fn::GetAtt": ["Thing", "Arn"]})
