"""What the REST API answers, run offline: the synthesized mapping templates through a Velocity engine
(tests/support/apigw_vtl.py), the gateway responses and the access-log format substituted the way API
Gateway does. Every answer must be JSON and carry a status (and headers) that docs/deploy.md ("What the API
answers") and infra/api/openapi.yaml promise, whatever the messages hold."""
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from inference.contracts import parse_json_request
from inference.predictor import create_app
from tests.infra.test_openapi import BAD_REQUESTS, GOOD_REQUESTS, OPENAPI_FILE
from tests.support import apigw_vtl as vtl

DEPLOY_GUIDE = Path(__file__).resolve().parents[3] / "docs" / "deploy.md"
# messages with what breaks naive templates: quotes, backslashes, newlines, non-ASCII
AWKWARD_MESSAGES = [
    'Invalid key=value pair (missing equal-sign) in Authorization header: \'AWS4 "x"\'.',
    'a \\ backslash, a \\" escaped quote and a trailing backslash \\',
    "first line\nsecond line\r\n\ttabbed",
    "Forbidden",
    "é ü 中文 \u2028 \U0001f600",
]
# SageMaker's own errors as they reach the integration: status and JSON body
# (throttling: https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html, a 400 whose
# message is null: https://github.com/opensearch-project/ml-commons/issues/2429)
THROTTLED = {"status": 429, "headers": {"Retry-After": "1"}}
SAGEMAKER_ERRORS = {
    "throttling, message null": (400, '{"message": null}', THROTTLED),
    "throttling, no message": (400, "{}", THROTTLED),
    "throttling, empty body": (400, "", THROTTLED),
    "throttling, Rate exceeded": (400, '{"message": "Rate exceeded"}', THROTTLED),
    "throttling, named in Message": (400, '{"Message": "ThrottlingException: slow\\ndown, \\"please\\""}', THROTTLED),
    # a serverless endpoint's refusal of a body above 4 MB (https://github.com/aws/sagemaker-python-sdk/issues/4271)
    "oversize body": (400, '{"message": "Request 0f3c-example has oversize body."}', {"status": 413, "headers": {}}),
    "model not ready": (429, '{"message": "Model is not ready yet"}', THROTTLED),
    "validation error": (
        400,
        '{"message": "Endpoint gru4rec-dev of account 123456789012 not found."}',
        {"status": 400, "headers": {}},
    ),
    "validation error, multi-line with quotes": (
        400,
        '{"message": "line \\"one\\"\\nline \\\\ two"}',
        {"status": 400, "headers": {}},
    ),
    "access denied": (
        403,
        '{"message": "User: arn:aws:sts::123456789012:assumed-role/x is not authorized"}',
        {"status": 502, "headers": {}},
    ),
    "internal failure": (500, '{"message": null}', {"status": 502, "headers": {}}),
    "service unavailable": (503, '{"message": "Service Unavailable"}', {"status": 502, "headers": {}}),
}
# a container answer SageMaker wraps in a 424 ModelError: the container's status and body -> the API's status
CONTAINER_TEXT_ERRORS = {
    "nginx page, multi-line with quotes": (
        413,
        '<html>\n<head><title>413 "Request Entity Too Large"</title></head>\n</html>\n',
        413,
    ),
    "plain text with a backslash": (400, 'bad input: "items" \\ is wrong\nsee the docs', 400),
    "empty body": (415, "", 415),
    "container failure": (500, '{"error": "internal error: the request was not answered"}', 502),
    "model not loaded": (503, '{"error": "the model is not available: cannot load"}', 502),
    "a path the integration never calls": (404, '{"error": "not found"}', 502),
    "Accept refused": (406, '{"error": "Accept \'text/html\' allows no format"}', 502),
}


def model_error(status: int, body: str) -> str:
    """SageMaker's 424 ModelError body for a container answer (fields of the InvokeEndpoint ModelError)."""
    return json.dumps({
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500 else "SERVER_ERROR_FROM_MODEL",
        "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/gru4rec-dev",
        "Message": f'Received client error ({status}) from primary with message "{body}". See the logs.',
        "OriginalMessage": body, "OriginalStatusCode": status,
    })


@pytest.fixture(scope="module")
def api(synth) -> dict:
    return synth.template_dict("api")


@pytest.fixture(scope="module")
def integration(api) -> dict:
    method, = [r["Properties"] for r in api["Resources"].values() if r["Type"] == "AWS::ApiGateway::Method"]
    return method["Integration"]


@pytest.fixture(scope="module")
def gateway_responses(api) -> dict[str, dict]:
    return {r["Properties"]["ResponseType"]: r["Properties"] for r in api["Resources"].values()
            if r["Type"] == "AWS::ApiGateway::GatewayResponse"}


@pytest.fixture(scope="module")
def access_log_format(api) -> str:
    stage, = [r["Properties"] for r in api["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    return stage["AccessLogSetting"]["Format"]


@pytest.fixture(scope="module")
def promised():
    """The answers the deployment guide and the OpenAPI description promise: status -> documented headers, and the
    statuses of the guide's table."""
    openapi = yaml.safe_load(OPENAPI_FILE.read_text())
    responses = openapi["paths"]["/recommendations"]["post"]["responses"]
    section = DEPLOY_GUIDE.read_text().split("### What the API answers", 1)[1].split("\n#", 1)[0]
    guide_statuses = {int(status) for status in re.findall(r"^\| (\d{3}) \|", section, re.M)}
    assert guide_statuses, "docs/deploy.md has no status table under 'What the API answers'"
    error_schema = openapi["components"]["schemas"]["Error"]
    return {"openapi": {int(status): set(r.get("headers", {})) for status, r in responses.items()},
            "guide": guide_statuses, "error_schema": error_schema}


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    """The serving container's Flask app: its own answers to bad requests (no model needed for those)."""
    return create_app(tmp_path_factory.mktemp("no_model")).test_client()


def check(answer: vtl.Answer, promised: dict, where: str):
    """The answer's body parsed, after checking it is JSON and that its status and headers are the promised ones."""
    body = vtl.json_body(answer.body, where)
    assert answer.status in promised["openapi"], f"{where}: status {answer.status} is not in openapi.yaml"
    assert answer.status in promised["guide"], f"{where}: status {answer.status} is not in docs/deploy.md's table"
    assert set(answer.headers) <= promised["openapi"][answer.status], f"{where}: undocumented headers {answer.headers}"
    if answer.status >= 400:
        jsonschema.Draft4Validator(promised["error_schema"]).validate(body)
    return body


# --- requests: the model validates, the request template passes the body on ------------------------------

def validation_error_string(errors: list[jsonschema.ValidationError]) -> str:
    """A validator message in API Gateway's form: bracketed, with the quotes such messages hold."""
    return (
        "[" + "; ".join(error.message for error in errors) + ']; [object has missing required properties (["items"])]'
    )


@pytest.mark.parametrize("request_body", GOOD_REQUESTS + [{"items": ["a \"quoted\"\nitem", "é\\"]}])
def test_a_valid_request_reaches_the_model_unchanged(integration, request_body):
    raw = json.dumps(request_body, ensure_ascii=False, indent=1)
    sent = vtl.render(integration["RequestTemplates"][vtl.JSON], raw)
    assert sent == raw
    assert parse_json_request(sent.encode()).sessions


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_an_invalid_request_is_answered_400_in_json_with_the_validation_detail_in_a_header(
        api, gateway_responses, promised, case):
    model, = [r["Properties"]["Schema"] for r in api["Resources"].values() if r["Type"] == "AWS::ApiGateway::Model"]
    errors = list(jsonschema.Draft4Validator(model).iter_errors(BAD_REQUESTS[case]))
    assert errors, "the request model must refuse it"
    detail = validation_error_string(errors)
    response = vtl.gateway_response_for(gateway_responses, "BAD_REQUEST_BODY", 400)
    answer = vtl.gateway_answer(response, 400, {"context.error.message": "Invalid request body",
                                                "context.error.validationErrorString": detail})
    body = check(answer, promised, f"BAD_REQUEST_BODY for {case}")
    assert answer.status == 400 and "request schema" in body["error"]
    assert answer.headers == {"X-Validation-Error": detail}


# --- SageMaker's answers through the integration responses ------------------------------------------------

def test_recommendations_pass_through_unchanged(integration, promised):
    answer_text = '{"recommendations": [{"item_id": "b\\"c", "score": 1.5}], "unknown_items": 0}\n'
    answer = vtl.integration_answer(integration, 200, answer_text)
    assert answer.status == 200 and answer.body == answer_text and answer.headers == {}
    check(answer, promised, "200")


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS) + ["too many sessions"])
def test_the_containers_own_error_passes_through_with_its_status_and_body(integration, container, promised, case):
    request_body = {"sessions": [{"items": ["a"]}] * 10_001} if case == "too many sessions" else BAD_REQUESTS[case]
    refused = container.post("/invocations", json=request_body)
    assert 400 <= refused.status_code < 500
    answer = vtl.integration_answer(integration, 424, model_error(refused.status_code, refused.get_data(as_text=True)))
    assert answer.status == refused.status_code
    assert check(answer, promised, f"ModelError for {case}") == refused.get_json()


@pytest.mark.parametrize("case", sorted(CONTAINER_TEXT_ERRORS))
def test_any_other_container_answer_is_json_and_keeps_no_internals(integration, promised, case):
    container_status, text, expected_status = CONTAINER_TEXT_ERRORS[case]
    answer = vtl.integration_answer(integration, 424, model_error(container_status, text))
    body = check(answer, promised, f"ModelError {case}")
    assert answer.status == expected_status
    if expected_status == 502:
        assert body == {"error": "the recommendation model failed to answer"}
    elif text:
        assert body == {"error": text}


def test_a_model_error_without_a_status_is_a_failure(integration, promised):
    answer = vtl.integration_answer(integration, 424, '{"Message": "no original status"}')
    assert answer.status == 502
    check(answer, promised, "ModelError without OriginalStatusCode")


@pytest.mark.parametrize("case", sorted(SAGEMAKER_ERRORS))
def test_sagemakers_own_errors(integration, promised, case):
    backend_status, backend_body, expected = SAGEMAKER_ERRORS[case]
    answer = vtl.integration_answer(integration, backend_status, backend_body)
    body = check(answer, promised, case)
    assert (answer.status, answer.headers) == (expected["status"], expected["headers"])
    assert "123456789012" not in answer.body and set(body) == {"error"}


# --- errors API Gateway answers itself, and the access log -------------------------------------------------

@pytest.mark.parametrize(("response_type", "status"), [
    ("MISSING_AUTHENTICATION_TOKEN", 403), ("INVALID_API_KEY", 403), ("INVALID_SIGNATURE", 403),
    ("REQUEST_TOO_LARGE", 413), ("UNSUPPORTED_MEDIA_TYPE", 415), ("THROTTLED", 429), ("QUOTA_EXCEEDED", 429),
    ("API_CONFIGURATION_ERROR", 500), ("INTEGRATION_TIMEOUT", 504), ("INTEGRATION_FAILURE", 504),
])
@pytest.mark.parametrize("message", AWKWARD_MESSAGES)
def test_gateway_errors_are_json_whatever_the_message(gateway_responses, promised, response_type, status, message):
    response = vtl.gateway_response_for(gateway_responses, response_type, status)
    answer = vtl.gateway_answer(response, status, {"context.error.message": message})
    assert check(answer, promised, response_type) == {"error": message}
    assert answer.status == status
    # a throttled caller retries in a second; a key over its daily quota, in an hour at the soonest
    retry_after = {"THROTTLED": {"Retry-After": "1"}, "QUOTA_EXCEEDED": {"Retry-After": "3600"}}
    assert answer.headers == retry_after.get(response_type, {})


@pytest.mark.parametrize("message", [*AWKWARD_MESSAGES, None])
def test_every_access_log_line_is_json(access_log_format, message):
    variables = {"context.requestId": "c0ffee00-0000-4000-8000-000000000000", "context.status": "403",
                 "context.error.message": message, "context.error.responseType": message and "ACCESS_DENIED"}
    line = vtl.access_log_line(access_log_format, variables)
    assert "\n" not in line.strip()
    record = vtl.json_body(line, "the access-log line")
    assert record["status"] == "403" and record["requestId"] == variables["context.requestId"]
    assert record["error"] == (message if message is not None else "-")
    assert record["caller"] == "-"


# --- negative controls: the checks catch a template that embeds a raw message inside quotes ---------------

def test_a_raw_message_inside_quotes_fails_the_check(integration, gateway_responses, promised):
    naive_integration = {"IntegrationResponses": [
        {"StatusCode": "200"},
        {"SelectionPattern": "424", "StatusCode": "400",
         "ResponseTemplates": {vtl.JSON: """{"error": "$input.path('$.OriginalMessage')"}"""}},
    ]}
    with pytest.raises(AssertionError, match="not JSON"):
        check(vtl.integration_answer(naive_integration, 424, model_error(400, '{"error": "bad"}')), promised, "naive")
    naive_gateway = {
        "ResponseTemplates": {vtl.JSON: '{"error": "the body is invalid: $context.error.validationErrorString"}'}
    }
    with pytest.raises(AssertionError, match="not JSON"):
        check(vtl.gateway_answer(naive_gateway, 400, {"context.error.validationErrorString": '[missing (["items"])]'}),
              promised, "naive")
    with pytest.raises(AssertionError, match="not JSON"):
        vtl.json_body(
            vtl.access_log_line('{"error": "$context.error.message"}', {"context.error.message": 'a "b"'}), "naive"
        )
