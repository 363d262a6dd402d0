"""A storefront page calling the API: CORS on every answer, the preflight, guest identities, the user pool
authorizer, throttling without a key, and the web firewall (the ``storefront_*`` variants of conftest.py)."""
import json

import pytest

from infra.stacks.api import EXPOSED_HEADERS
from tests.infra.conftest import VARIANTS
from tests.support.apigw_vtl import gateway_answer, gateway_response_for, integration_answer, json_body
from tests.support.aws_rules import AppView
from tests.support.policy_documents import ACCOUNT, REGION

STOREFRONTS = ["storefront_guests", "storefront_users"]
# Gateway errors a page meets, with API Gateway's default status for each ("Gateway response types",
# https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)
GATEWAY_ERRORS = [
    ("ACCESS_DENIED", 403),
    ("MISSING_AUTHENTICATION_TOKEN", 403),
    ("INVALID_SIGNATURE", 403),
    ("EXPIRED_TOKEN", 403),
    ("UNAUTHORIZED", 401),
    ("WAF_FILTERED", 403),
    ("THROTTLED", 429),
    ("QUOTA_EXCEEDED", 429),
    ("BAD_REQUEST_BODY", 400),
    ("INTEGRATION_FAILURE", 504),
    ("DEFAULT_5XX", 500),
]
# (back-end status, body) SageMaker may answer, as test_api_answers.py feeds them
BACKEND_ANSWERS = [
    (200, '{"items": []}'),
    (424, '{"OriginalStatusCode": 400, "OriginalMessage": "{\\"error\\": \\"x\\"}"}'),
    (400, '{"message": "Rate exceeded"}'),
    (429, "{}"),
    (500, "{}"),
]


def _api(variants, name: str) -> dict:
    return variants[name].template_dict("api")


def _of_type(template: dict, kind: str) -> list[dict]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def _method(template: dict, verb: str) -> dict:
    (method,) = [m for m in _of_type(template, "AWS::ApiGateway::Method") if m["HttpMethod"] == verb]
    return method


def _gateway_responses(template: dict) -> dict[str, dict]:
    return {r["ResponseType"]: r for r in _of_type(template, "AWS::ApiGateway::GatewayResponse")}


@pytest.mark.parametrize("variant", STOREFRONTS)
@pytest.mark.parametrize(("response_type", "status"), GATEWAY_ERRORS)
def test_every_gateway_error_a_page_meets_carries_its_origin(variants, variant, response_type, status):
    response = gateway_response_for(_gateway_responses(_api(variants, variant)), response_type, status)
    answer = gateway_answer(response, status, {"context.error.message": "Forbidden"})
    assert answer.headers["Access-Control-Allow-Origin"] == VARIANTS[variant]["cors_allowed_origins"]
    assert answer.headers["Access-Control-Expose-Headers"].split(",") == list(EXPOSED_HEADERS)
    assert "error" in json_body(answer.body, response_type)


def test_without_cors_no_answer_names_an_origin(synth):
    """The negative control: the default stage (no cors_allowed_origins) sends no CORS header anywhere."""
    template = json.dumps(synth.template_dict("api"))
    assert "Access-Control-" not in template
    assert _of_type(synth.template_dict("api"), "AWS::ApiGateway::Method")[0]["HttpMethod"] == "POST"


@pytest.mark.parametrize("variant", STOREFRONTS)
@pytest.mark.parametrize(("backend_status", "backend_body"), BACKEND_ANSWERS)
def test_every_answer_of_the_method_carries_the_origin(variants, variant, backend_status, backend_body):
    method = _method(_api(variants, variant), "POST")
    answer = integration_answer(method["Integration"], backend_status, backend_body)
    assert answer.headers["Access-Control-Allow-Origin"] == VARIANTS[variant]["cors_allowed_origins"]
    declared, = [r for r in method["MethodResponses"] if r["StatusCode"] == str(answer.status)]
    assert declared["ResponseParameters"]["method.response.header.Access-Control-Allow-Origin"] is True


@pytest.mark.parametrize("variant", STOREFRONTS)
def test_the_preflight_is_answered_by_the_api_without_credentials(variants, variant):
    preflight = _method(_api(variants, variant), "OPTIONS")
    assert (preflight["AuthorizationType"], preflight["ApiKeyRequired"], preflight["Integration"]["Type"]) == (
        "NONE",
        False,
        "MOCK",
    )
    (response,) = preflight["Integration"]["IntegrationResponses"]
    headers = {
        k.removeprefix("method.response.header."): v.strip("'") for k, v in response["ResponseParameters"].items()
    }
    assert headers["Access-Control-Allow-Origin"] == VARIANTS[variant]["cors_allowed_origins"]
    assert headers["Access-Control-Allow-Methods"] == "POST"
    # what SigV4 with guest credentials adds to a request, and a user pool's token
    assert {"Content-Type", "Authorization", "X-Amz-Date", "X-Amz-Security-Token"} <= set(
        headers["Access-Control-Allow-Headers"].split(",")
    )


@pytest.mark.parametrize(
    ("variant", "authorization"), [("storefront_guests", "AWS_IAM"), ("storefront_users", "COGNITO_USER_POOLS")]
)
def test_pages_need_no_key_and_the_stage_throttles_every_caller(variants, variant, authorization):
    method = _method(_api(variants, variant), "POST")
    assert (method["AuthorizationType"], method["ApiKeyRequired"]) == (authorization, False)
    (stage,) = _of_type(_api(variants, variant), "AWS::ApiGateway::Stage")
    config = variants[variant].config
    assert stage["MethodSettings"][0]["ResourcePath"] == "/*"
    assert (stage["MethodSettings"][0]["ThrottlingRateLimit"], stage["MethodSettings"][0]["ThrottlingBurstLimit"]) == (
        config.api_throttle_rate_limit, config.api_throttle_burst_limit)


def test_backends_keep_the_key_and_no_stage_throttle_without_pages(synth):
    (stage,) = _of_type(synth.template_dict("api"), "AWS::ApiGateway::Stage")
    assert "ThrottlingRateLimit" not in stage["MethodSettings"][0]
    assert _method(synth.template_dict("api"), "POST")["ApiKeyRequired"] is True


def test_the_user_pool_authorizer_reads_the_pool_of_the_context(variants):
    (authorizer,) = _of_type(_api(variants, "storefront_users"), "AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["ProviderARNs"] == [VARIANTS["storefront_users"]["api_user_pool_arn"]]
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"


def test_guests_may_invoke_the_recommendation_method_and_nothing_else(variants):
    view = AppView(variants["storefront_guests"].templates)
    roles = {kind: role for _, _, properties in view.resources("AWS::Cognito::IdentityPoolRoleAttachment")
             for kind, role in properties["Roles"].items()}
    (api_id,) = [
        view.policies.resolve(stack, {"Ref": logical_id})
        for stack, logical_id, _ in view.resources("AWS::ApiGateway::RestApi")
    ]
    stage = variants["storefront_guests"].config.stage
    method_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/{stage}/POST/recommendations"
    statements = view.role_statements(roles["unauthenticated"])
    assert [(s["Action"], s["Resource"]) for s in statements] == [("execute-api:Invoke", method_arn)]
    assert view.role_statements(roles["authenticated"]) == []


def test_the_firewall_runs_the_common_rules_and_a_per_ip_rate_on_the_stage(variants):
    result = variants["storefront_guests"]
    view = AppView(result.templates)
    (_, _, acl), = view.resources("AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    common, rate = sorted(acl["Rules"], key=lambda rule: rule["Priority"])
    assert common["Statement"]["ManagedRuleGroupStatement"] == {
        "VendorName": "AWS",
        "Name": "AWSManagedRulesCommonRuleSet",
    }
    assert common["OverrideAction"] == {"None": {}}
    assert rate["Statement"]["RateBasedStatement"] == {"Limit": result.config.waf_rate_limit, "AggregateKeyType": "IP",
                                                       "EvaluationWindowSec": 300}
    assert rate["Action"] == {"Block": {}}
    (_, _, association), = view.resources("AWS::WAFv2::WebACLAssociation")
    (api,) = [
        view.policies.resolve(stack, {"Ref": lid}) for stack, lid, _ in view.resources("AWS::ApiGateway::RestApi")
    ]
    (stage,) = [
        view.policies.resolve(stack, {"Ref": lid}) for stack, lid, _ in view.resources("AWS::ApiGateway::Stage")
    ]
    # a REST API stage's ARN, as WAF's AssociateWebACL takes it
    assert association["ResourceArn"] == f"arn:aws:apigateway:{REGION}::/restapis/{api}/stages/{stage}"


def test_the_firewall_logs_to_a_group_the_stage_key_may_encrypt(variants):
    view = AppView(variants["storefront_guests"].templates)
    (_, _, logging), = view.resources("AWS::WAFv2::LoggingConfiguration")
    (destination,) = logging["LogDestinationConfigs"]
    assert destination == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:aws-waf-logs-gru4rec-dev:*"
    groups = {p["LogGroupName"]: p for _, _, p in view.resources("AWS::Logs::LogGroup")}
    (_, _, key), = view.resources("AWS::KMS::Key")
    assert groups["aws-waf-logs-gru4rec-dev"]["KmsKeyId"].startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    (logs_statement,) = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsEncryptsStageLogGroups"
    ]
    allowed = logs_statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:logs:arn"]
    # CloudWatch Logs' encryption context is the group's ARN without the trailing :*
    assert destination.removesuffix(":*") in allowed
