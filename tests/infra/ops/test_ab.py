"""`infra.ops ab promote`: ending an A/B test on moto's SageMaker, UpdateEndpoint stood in as SageMaker runs it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from infra.ops import ab, live_model
from infra.ops.deployment import Deployment, Stack
from infra.ops.errors import OpsError
from infra.ops.registry import Version

REGION, ACCOUNT, ENDPOINT = "eu-west-1", "123456789012", "gru4rec-dev"
LIVE_DATA, CHALLENGER_DATA = (
    "s3://bucket/models/job-1/output/model.tar.gz",
    "s3://bucket/models/job-2/output/model.tar.gz",
)
ROLLOUT = {
    "DeploymentConfig": {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 600,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            }
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "gru4rec-dev-5xx"}]},
    },
    "RetainAllVariantProperties": True,
}


def _model(sagemaker, name: str, data: str, role: str) -> None:
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=role,
        EnableNetworkIsolation=True,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gru4rec:serve", "ModelDataUrl": data},
        Tags=[{"Key": "stage", "Value": "dev"}],
    )


@pytest.fixture
def stage(monkeypatch):
    """An endpoint in an A/B test (AllTraffic 90 on job-1, Challenger 10 on job-2), the pipeline's guardrails,
    the live-model records."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        role = session.client("iam").create_role(RoleName="model", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        sagemaker = session.client("sagemaker")
        _model(sagemaker, "live", LIVE_DATA, role)
        _model(sagemaker, "challenger", CHALLENGER_DATA, role)
        variant = {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
        sagemaker.create_endpoint_config(
            EndpointConfigName="ab",
            ProductionVariants=[
                {**variant, "VariantName": "AllTraffic", "ModelName": "live", "InitialVariantWeight": 90},
                {**variant, "VariantName": "Challenger", "ModelName": "challenger", "InitialVariantWeight": 10},
            ],
            DataCaptureConfig={
                "EnableCapture": True,
                "InitialSamplingPercentage": 10,
                "DestinationS3Uri": "s3://bucket/capture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
        )
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="ab")
        definition = {
            "QueryLanguage": "JSONata",
            "StartAt": "Update endpoint",
            "States": {
                "Update endpoint": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::sagemaker:updateEndpoint",
                    "End": True,
                    "Arguments": {"EndpointName": ENDPOINT, "EndpointConfigName": "{% $jobName %}", **ROLLOUT},
                }
            },
        }
        arn = session.client("stepfunctions").create_state_machine(
            name="gru4rec-dev-training", definition=json.dumps(definition), roleArn=role
        )["stateMachineArn"]
        outputs = {"Endpoint": {"EndpointName": ENDPOINT}, "Training": {"TrainingStateMachineArn": arn}}
        deployment = Deployment(
            "dev",
            REGION,
            {
                part: Stack(part, "CREATE_COMPLETE", outputs.get(part, {}))
                for part in ("Storage", "Endpoint", "Training")
            },
        )
        yield SimpleNamespace(session=session, deployment=deployment, sagemaker=sagemaker)


def _promote(stage, variant):
    return ab.promote(stage.session, stage.deployment, variant, sleep=lambda seconds: None, report=lambda line: None)


def _variants(stage, config_name):
    return {
        v["VariantName"]: v
        for v in stage.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    }


def _served(stage):
    """The archive and the name of the model the endpoint's AllTraffic variant serves: the live model."""
    config = stage.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    model = _variants(stage, config)["AllTraffic"]["ModelName"]
    return stage.sagemaker.describe_model(ModelName=model)["PrimaryContainer"]["ModelDataUrl"], model


def test_promoting_the_challenger_rolls_the_live_variant_to_it_under_guardrails_then_drops_the_other(
    stage, update_endpoint
):
    done = _promote(stage, "Challenger")
    guarded, final = update_endpoint.calls
    assert {key: guarded[key] for key in ROLLOUT} == ROLLOUT, "the training pipeline's guardrails"
    during = _variants(stage, guarded["EndpointConfigName"])
    assert sorted(during) == ["AllTraffic", "Challenger"], "a guarded update keeps the variants' names"
    assert during["Challenger"]["ModelName"] == "challenger" and during["AllTraffic"]["InitialVariantWeight"] == 90
    model = stage.sagemaker.describe_model(ModelName=during["AllTraffic"]["ModelName"])
    # (moto keeps no EnableNetworkIsolation: the copy passes on what DescribeModel gives)
    assert model["PrimaryContainer"]["ModelDataUrl"] == CHALLENGER_DATA
    assert "DeploymentConfig" not in final, "SageMaker guards no update that changes the variants"
    (only,) = _variants(stage, final["EndpointConfigName"]).values()
    assert (only["VariantName"], only["ModelName"]) == ("AllTraffic", done.model_name)
    config = stage.sagemaker.describe_endpoint_config(EndpointConfigName=final["EndpointConfigName"])
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    assert _served(stage) == (CHALLENGER_DATA, done.model_name)


def test_promoting_the_live_variant_only_drops_the_challenger(stage, update_endpoint):
    _promote(stage, "AllTraffic")
    (final,) = update_endpoint.calls
    (only,) = _variants(stage, final["EndpointConfigName"]).values()
    assert (only["VariantName"], only["ModelName"], only["InitialVariantWeight"]) == ("AllTraffic", "live", 1)
    assert _served(stage) == (LIVE_DATA, "live")


def test_alarms_that_roll_the_guarded_step_back_leave_the_test_running(stage, update_endpoint):
    update_endpoint.rolls_back = True
    with pytest.raises(OpsError, match="did not finish.*alarm gru4rec-dev-5xx.*the A/B test goes on"):
        _promote(stage, "Challenger")
    assert len(update_endpoint.calls) == 1 and _served(stage) == (LIVE_DATA, "live")


def test_without_a_test_there_is_nothing_to_promote(stage, update_endpoint):
    _promote(stage, "AllTraffic")
    with pytest.raises(OpsError, match="no A/B test runs on endpoint gru4rec-dev: its variants are AllTraffic"):
        _promote(stage, "Challenger")


def test_a_rollback_waits_for_the_test_to_end(stage, update_endpoint):
    target = Version(number=1, arn=f"arn:aws:sagemaker:{REGION}:123456789012:model-package/gru4rec-dev/1",
                     approval="Approved", created="", description="", approval_description="", training_job="job-0",
                     metrics={})
    with pytest.raises(OpsError, match="A/B test.*ab promote"):
        live_model.roll_back(stage.session, stage.deployment, target, None, sleep=lambda s: None,
                             report=lambda line: None)
    assert update_endpoint.calls == []
    assert stage.session.client("stepfunctions").list_executions(
        stateMachineArn=stage.deployment.training_state_machine_arn)["executions"] == [], "nothing started"
