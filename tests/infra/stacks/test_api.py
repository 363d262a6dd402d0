"""API stack: the direct SageMaker integration, validation, error mapping, auth modes, throttling, logs."""
import json

import pytest

from infra.stacks.api import MODEL_ERROR_TEMPLATE, REJECTED_TEMPLATE, request_schema
from tests.infra.conftest import synthesize
from tests.support.apigw_vtl import select_integration_response


@pytest.fixture(scope="module")
def api(synth) -> dict:
    return synth.template_dict("api")


@pytest.fixture(scope="module")
def api_key_only(tmp_path_factory, dummy_model_artifact):
    """The app synthesized again with ``api_auth=api_key``."""
    return synthesize(tmp_path_factory.mktemp("cdk_out_api_key"),
                      {"initial_model_artifact": str(dummy_model_artifact), "api_auth": "api_key"})


def _one(template: dict, resource_type: str) -> tuple[str, dict]:
    (logical_id, resource), = [(k, v) for k, v in template["Resources"].items() if v["Type"] == resource_type]
    return logical_id, resource


def _method(template: dict) -> dict:
    _, method = _one(template, "AWS::ApiGateway::Method")
    return method["Properties"]


def test_post_recommendations_calls_the_endpoint_directly_with_json(api):
    method = _method(api)
    _, resource = _one(api, "AWS::ApiGateway::Resource")
    assert resource["Properties"]["PathPart"] == "recommendations" and method["HttpMethod"] == "POST"
    integration = method["Integration"]
    assert integration["Type"] == "AWS" and integration["IntegrationHttpMethod"] == "POST"
    assert integration["Uri"]["Fn::Join"][1][-1] == ":runtime.sagemaker:path/endpoints/gru4rec-dev/invocations"
    assert integration["RequestParameters"]["integration.request.header.Content-Type"] == "'application/json'"
    assert integration["RequestTemplates"] == {"application/json": "$input.body"}
    assert integration["PassthroughBehavior"] == "NEVER"  # any other content type: 415
    assert not any(r["Type"] == "AWS::Lambda::Function" for r in api["Resources"].values())


def test_the_integration_role_may_invoke_only_this_endpoint(api):
    role_id = _method(api)["Integration"]["Credentials"]["Fn::GetAtt"][0]
    role = api["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    policies = [r["Properties"] for r in api["Resources"].values()
                if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]]
    statement, = policies[0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Resource"]["Fn::Join"][1][-1] == ":endpoint/gru4rec-dev"


def test_request_body_is_validated_against_the_request_schema(api):
    method = _method(api)
    model_id = method["RequestModels"]["application/json"]["Ref"]
    model = api["Resources"][model_id]["Properties"]
    assert model["ContentType"] == "application/json"
    assert model["Schema"] == request_schema()
    validator = api["Resources"][method["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestBody"] is True


@pytest.mark.parametrize(("backend", "status", "body_has"), [
    (200, "200", None),
    (424, "400", "OriginalMessage"),  # the container's own 4xx: its status and {"error": ...} body, passed on
    (400, "400", "refused"),  # or 429 where it is SageMaker's throttling (tests/infra/stacks/test_api_answers.py)
    (429, "429", "too many requests"),
    (403, "502", "unavailable"),  # this stage misconfigured: not the caller's fault
    (404, "502", "unavailable"),
    (500, "502", "unavailable"),
    (503, "502", "unavailable"),
])
def test_sagemaker_statuses_map_to_client_facing_ones(api, backend, status, body_has):
    response = select_integration_response(_method(api)["Integration"]["IntegrationResponses"], backend)
    assert response["StatusCode"] == status
    if body_has is None:
        assert "ResponseTemplates" not in response  # passthrough of the container's JSON
    else:
        assert body_has in response["ResponseTemplates"]["application/json"]


def test_fixed_error_bodies_written_by_the_api_are_json_without_internals(api):
    for response in _method(api)["Integration"]["IntegrationResponses"]:
        template = response.get("ResponseTemplates", {}).get("application/json")
        if template is None or template in (MODEL_ERROR_TEMPLATE, REJECTED_TEMPLATE):
            continue  # rendered through the VTL engine in tests/infra/stacks/test_api_answers.py
        assert json.loads(template).keys() == {"error"}


def test_every_429_says_when_to_retry(api):
    method = _method(api)
    declared, = [r for r in method["MethodResponses"] if r["StatusCode"] == "429"]
    assert declared["ResponseParameters"] == {"method.response.header.Retry-After": True}
    throttled = select_integration_response(method["Integration"]["IntegrationResponses"], 429)
    assert throttled["ResponseParameters"] == {"method.response.header.Retry-After": "'1'"}
    assert "#set($context.responseOverride.header.Retry-After = '1')" in REJECTED_TEMPLATE


def test_every_status_the_integration_can_answer_is_a_declared_method_response(api):
    method = _method(api)
    declared = {r["StatusCode"] for r in method["MethodResponses"]}
    produced = {r["StatusCode"] for r in method["Integration"]["IntegrationResponses"]}
    overridden = {"413", "415", "429", "502"}  # container statuses passed on, and the overrides in the templates
    assert produced | overridden <= declared


def test_gateway_errors_carry_the_message_as_a_json_string_and_the_validation_detail_in_a_header(api):
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in api["Resources"].values()
                 if r["Type"] == "AWS::ApiGateway::GatewayResponse"}
    assert set(responses) == {"BAD_REQUEST_BODY", "THROTTLED", "QUOTA_EXCEEDED", "DEFAULT_4XX", "DEFAULT_5XX"}
    bad_body = responses["BAD_REQUEST_BODY"]
    assert bad_body["StatusCode"] == "400"
    assert bad_body["ResponseParameters"] == {
        "gatewayresponse.header.X-Validation-Error": "context.error.validationErrorString"
    }
    assert "$context" not in bad_body["ResponseTemplates"]["application/json"]
    assert responses["THROTTLED"]["StatusCode"] == "429"
    # a key over its daily quota is told to come back in an hour at the soonest
    assert responses["QUOTA_EXCEEDED"]["StatusCode"] == "429"
    assert responses["QUOTA_EXCEEDED"]["ResponseParameters"] == {"gatewayresponse.header.Retry-After": "'3600'"}
    for kind in ("THROTTLED", "QUOTA_EXCEEDED", "DEFAULT_4XX", "DEFAULT_5XX"):
        assert responses[kind]["ResponseTemplates"] == {"application/json": '{"error": $context.error.messageString}'}


def test_iam_auth_and_an_api_key_by_default(api):
    method = _method(api)
    assert method["AuthorizationType"] == "AWS_IAM"
    assert method["ApiKeyRequired"] is True


def test_api_key_mode_drops_iam_keeps_the_key_and_passes_cdk_nag(api_key_only):
    method = _method(api_key_only.template_dict("api"))
    assert method["AuthorizationType"] == "NONE"
    assert method["ApiKeyRequired"] is True
    assert api_key_only.nag_error is None
    acknowledged = api_key_only.acknowledged_rules()["/Gru4Rec-Dev-Api/Api/Default/recommendations/POST"]
    assert set(acknowledged) == {"AwsSolutions-COG4", "AwsSolutions-APIG4"}


def test_usage_plan_throttles_and_caps_the_key_on_this_stage(synth, api):
    stage_id, _ = _one(api, "AWS::ApiGateway::Stage")
    plan_id, plan = _one(api, "AWS::ApiGateway::UsagePlan")
    properties = plan["Properties"]
    assert properties["Throttle"] == {"RateLimit": synth.config.api_throttle_rate_limit,
                                      "BurstLimit": synth.config.api_throttle_burst_limit}
    assert properties["Quota"] == {"Limit": synth.config.api_quota_limit, "Period": synth.config.api_quota_period}
    assert properties["ApiStages"][0]["Stage"] == {"Ref": stage_id}
    key_id, _ = _one(api, "AWS::ApiGateway::ApiKey")
    _, link = _one(api, "AWS::ApiGateway::UsagePlanKey")
    assert link["Properties"]["KeyId"] == {"Ref": key_id} and link["Properties"]["UsagePlanId"] == {"Ref": plan_id}
    assert api["Outputs"]["ApiKeyId"]["Value"] == {"Ref": key_id}


def test_stage_is_named_traced_and_logs_access_to_an_encrypted_group(api):
    _, stage = _one(api, "AWS::ApiGateway::Stage")
    properties = stage["Properties"]
    assert properties["StageName"] == "dev" and properties["TracingEnabled"] is True
    log_group_id, log_group = _one(api, "AWS::Logs::LogGroup")
    assert log_group["Properties"]["LogGroupName"] == "/gru4rec/dev/api-access"
    assert "Fn::ImportValue" in log_group["Properties"]["KmsKeyId"]
    assert {"Ref": log_group_id} in properties["AccessLogSetting"]["DestinationArn"]["Fn::Join"][1]
    assert (
        '"status": "$context.status"' in properties["AccessLogSetting"]["Format"]
    )  # every line JSON: test_api_answers.py
    assert properties["MethodSettings"][0]["LoggingLevel"] == "ERROR"


def test_api_url_is_the_stage_base_url(api):
    stage_id, _ = _one(api, "AWS::ApiGateway::Stage")
    parts = api["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert parts[0] == "https://" and parts[-2:] == [{"Ref": stage_id}, "/"]
