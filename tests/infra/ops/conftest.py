"""The operator CLI's fixtures: moto's AWS (``aws``), stage ``dev`` deployed in it (``stage``), and ``no_aws``
(a command that reaches for AWS before its local checks fails the test) and ``update_endpoint`` (moto has no
UpdateEndpoint)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from tests.support.ops_stage import BUCKET, IMAGE, REGION, create_endpoint, outputs_stack, training_definition


@pytest.fixture
def aws(monkeypatch):
    """moto's fake credentials and a region."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture
def stage(aws):
    """Stage `dev` deployed in moto: six stacks with the agreed outputs and what they name."""
    iam = aws.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    role_arn = iam.create_role(RoleName="gru4rec-dev-training", AssumeRolePolicyDocument=trust)[
        "Role"
    ]["Arn"]
    aws.client("s3").create_bucket(Bucket=BUCKET)
    sfn = aws.client("stepfunctions")
    training_arn = sfn.create_state_machine(
        name="gru4rec-dev-training",
        definition=json.dumps(training_definition(role_arn)),
        roleArn=role_arn,
    )["stateMachineArn"]
    batch_arn = sfn.create_state_machine(
        name="gru4rec-dev-batch",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        roleArn=role_arn,
    )["stateMachineArn"]
    api_key = aws.client("apigateway").create_api_key(name="gru4rec-dev", enabled=True)
    create_endpoint(aws.client("sagemaker"), role_arn, "gru4rec-dev")
    api_url = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/"
    outputs = {
        "Storage": {"DataBucketName": BUCKET},
        "Image": {"RepositoryUri": IMAGE.split(":")[0]},
        "Endpoint": {"EndpointName": "gru4rec-dev"},
        "Api": {"ApiUrl": api_url, "ApiKeyId": api_key["id"]},
        "Training": {"TrainingStateMachineArn": training_arn, "TrainWindowDays": "28"},
        "Batch": {"BatchStateMachineArn": batch_arn},
    }
    cloudformation = aws.client("cloudformation")
    for part, values in outputs.items():
        outputs_stack(cloudformation, f"Gru4Rec-Dev-{part}", values)
    return SimpleNamespace(
        session=aws, role_arn=role_arn, training_arn=training_arn, batch_arn=batch_arn,
        api_key=api_key, api_url=api_url,
    )


@pytest.fixture
def no_aws(monkeypatch):
    """Fail the test if a command reaches for AWS at all."""
    def refuse(args):
        raise AssertionError("an AWS session was made before the local checks")

    monkeypatch.setattr("infra.ops.__main__.make_session", refuse)


@pytest.fixture
def update_endpoint(monkeypatch):
    """UpdateEndpoint, which moto 5.2.5 lacks: records the call and moves the endpoint to the new configuration,
    or (``rolls_back``) leaves it on the old one with a reason, as SageMaker does when an alarm fires."""
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse

    control = SimpleNamespace(calls=[], rolls_back=False)

    def update(self):
        request = json.loads(self.body)
        control.calls.append(request)
        endpoint = sagemaker_backends[self.current_account][self.region].endpoints[request["EndpointName"]]
        if control.rolls_back:
            endpoint.failure_reason = "alarm gru4rec-dev-5xx fired during the canary"
        else:
            endpoint.endpoint_config_name = request["EndpointConfigName"]
        return json.dumps({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update, raising=False)
    return control
