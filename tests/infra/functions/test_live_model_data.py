"""The Endpoint stack's read of the live model's archive (infra/functions/live_model_data) against SageMaker in moto,
and its answers to CloudFormation."""
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.functions.live_model_data import index as read
from infra.layout import CHALLENGER_VARIANT, LIVE_VARIANT

REGION = "us-east-1"
ENDPOINT = "gru4rec-dev"
FIRST = "s3://stage-data/initial-models/initial-1/model.tar.gz"
LIVE = "s3://stage-data/models/gru4rec-dev-train-20261201-000000-0a1b2c3d/output/model.tar.gz"
CHALLENGER = "s3://stage-data/models/challenger/model.tar.gz"
ROLE = "arn:aws:iam::123456789012:role/model"


def _event(kind: str = "Create") -> dict:
    return {"RequestType": kind, "ResponseURL": "https://cloudformation-custom-resource-response.example/x",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Gru4Rec-Dev-Endpoint/1",
            "RequestId": "request-1", "LogicalResourceId": "LiveModelDataRead", "ResourceType": "Custom::LiveModelData",
            "ResourceProperties": {"EndpointName": ENDPOINT, "FirstModelData": FIRST, "Model": {}}}


@pytest.fixture
def sagemaker():
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


def _serve(sagemaker, variants: dict[str, str]) -> None:
    """The endpoint, serving a model of each archive under its variant's name."""
    for variant, archive in variants.items():
        sagemaker.create_model(ModelName=f"model-{variant}", ExecutionRoleArn=ROLE,
                               PrimaryContainer={"Image": "serve:1", "ModelDataUrl": archive})
    sagemaker.create_endpoint_config(EndpointConfigName="config-1", ProductionVariants=[
        {"VariantName": variant, "ModelName": f"model-{variant}", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"} for variant in variants])
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="config-1")


def _answer(sagemaker, kind: str = "Create") -> dict:
    sent = []
    response = read.handler(_event(kind), sagemaker=sagemaker, send=lambda url, body: sent.append((url, body)))
    assert sent == [(_event()["ResponseURL"], response)], "exactly one answer, to the request's URL"
    return response


def test_before_the_endpoint_exists_the_first_model(sagemaker):
    response = _answer(sagemaker)
    assert response["Status"] == "SUCCESS" and response["Data"] == {"ModelDataUrl": FIRST}
    assert response["PhysicalResourceId"] == f"{ENDPOINT}-live-model-data"
    assert {k: response[k] for k in ("StackId", "RequestId", "LogicalResourceId")} == {
        k: _event()[k] for k in ("StackId", "RequestId", "LogicalResourceId")}


def test_once_the_endpoint_serves_a_model_its_archive(sagemaker):
    _serve(sagemaker, {LIVE_VARIANT: LIVE})
    assert _answer(sagemaker, "Update")["Data"] == {"ModelDataUrl": LIVE}


def test_during_an_ab_test_the_live_variants_archive_not_the_challengers(sagemaker):
    _serve(sagemaker, {CHALLENGER_VARIANT: CHALLENGER, LIVE_VARIANT: LIVE})
    assert _answer(sagemaker, "Update")["Data"] == {"ModelDataUrl": LIVE}


def test_an_endpoint_without_a_live_variant_fails_the_deploy_naming_it(sagemaker):
    _serve(sagemaker, {CHALLENGER_VARIANT: CHALLENGER})
    response = _answer(sagemaker, "Update")
    assert response["Status"] == "FAILED" and response["Data"] == {}
    assert f"config-1 has no {LIVE_VARIANT} variant (it has {CHALLENGER_VARIANT})" in response["Reason"]


class _Refusing:
    """A SageMaker client whose DescribeEndpoint fails with ``code`` and ``message``."""

    def __init__(self, code: str = "AccessDeniedException", message: str = "not allowed"):
        self.error = ClientError({"Error": {"Code": code, "Message": message}}, "DescribeEndpoint")

    def describe_endpoint(self, **_):
        raise self.error


def test_a_refused_read_fails_rather_than_falling_back_to_the_first_model():
    """Negative control of the fallback: only a missing endpoint means the first model."""
    response = read.handler(_event("Update"), sagemaker=_Refusing(), send=lambda url, body: None)
    assert response["Status"] == "FAILED" and "not allowed" in response["Reason"]
    missing = _Refusing("ValidationException", f'Could not find endpoint "{ENDPOINT}".')
    assert read.handler(_event(), sagemaker=missing, send=lambda url, body: None)["Data"] == {"ModelDataUrl": FIRST}


def test_delete_reads_nothing():
    response = read.handler({**_event("Delete"), "PhysicalResourceId": "kept"}, sagemaker=object(),
                            send=lambda url, body: None)
    assert response["Status"] == "SUCCESS" and response["PhysicalResourceId"] == "kept"


def test_the_answer_is_a_put_with_an_empty_content_type(monkeypatch):
    """What the presigned URL accepts (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)."""
    sent = []

    class _Answer:
        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

        def read(self):
            return b""

    monkeypatch.setattr(read.urllib.request, "urlopen", lambda request, timeout: sent.append(request) or _Answer())
    read._put("https://example.com/response", {"Status": "SUCCESS"})
    (request,) = sent
    assert request.get_method() == "PUT" and request.get_header("Content-type") == ""
    assert json.loads(request.data) == {"Status": "SUCCESS"}


def test_the_function_names_the_projects_live_variant():
    assert read.LIVE_VARIANT == LIVE_VARIANT


def test_a_long_failure_still_fits_the_response_cloudformation_accepts():
    """"The total size of the response body can't exceed 4096 bytes" (crpg-ref-responses.html)."""
    long = _Refusing(message="x" * 10_000)
    response = read.handler(_event("Update"), sagemaker=long, send=lambda url, body: None)
    assert response["Status"] == "FAILED" and len(json.dumps(response).encode()) <= 4096
